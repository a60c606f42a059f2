"""The benchmark end to end: prepare plans and data, train every arm's folds, collect, evaluate, tabulate.

Layout of ``OUT``::

    logs/                    one log per nnU-Net command
    cv/<arm>/                cross-validation predictions (all requested folds merged)
    eval/<arm>/              evaluate_folders report (metrics.json, metrics.md, figures/)
    gt/                      the labels of the evaluated cases (and dataset.json)
    export/<arm>/            packed INT8/INT4 export (quantized arms)
    table1.md, table1.json, fig3_arms.png
    loso/...                 the same for --leave-one-scanner-out (table_loso.md/.json, fig_loso.png)
"""
from __future__ import annotations

import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nnunet_phyjoint.benchmark import runner
from nnunet_phyjoint.benchmark.arms import (
    PHYJOINT_PLANS, STOCK_ON_PHYJOINT_INPUT_PLANS, STOCK_PLANS, Arm, resolve_arms,
)
from nnunet_phyjoint.paths import find_dataset_name, preprocessed_dir, raw_dir


@dataclass
class BenchmarkConfig:
    dataset: str
    out: Path
    folds: list[int] = field(default_factory=lambda: [0, 1, 2, 3])
    epochs: int = 10
    arms: list[str] | None = None
    device: str = "cpu"
    encoder: str = "efficientnet_b6"
    size: int = 256
    batch_size: int = 16
    phyjoint_plans: str = PHYJOINT_PLANS
    num_processes: int = 1
    n_bootstrap: int = 1000
    n_speed_images: int = 4
    leave_one_scanner_out: bool = False
    loso_dataset_id: int | None = None


def _machine() -> dict[str, Any]:
    import torch

    return {"platform": platform.platform(), "python": sys.version.split()[0], "torch": torch.__version__,
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def prepare(cfg: BenchmarkConfig, dataset_name: str, arms: list[Arm], log_dir: Path) -> None:
    """Plans and preprocessed data for every plans file the arms use (each step only if missing)."""
    plans_used = {a.plans for a in arms}
    runner.ensure_phyjoint_plans(dataset_name, cfg.phyjoint_plans, cfg.encoder, cfg.size, cfg.batch_size,
                                 cfg.num_processes)
    runner.ensure_preprocessed(dataset_name, cfg.phyjoint_plans, log_dir, cfg.num_processes)
    if STOCK_PLANS in plans_used:
        runner.ensure_stock_plans(dataset_name, log_dir)
        runner.ensure_preprocessed(dataset_name, STOCK_PLANS, log_dir, cfg.num_processes)
    if STOCK_ON_PHYJOINT_INPUT_PLANS in plans_used:
        runner.ensure_stock_on_phyjoint_input_plans(dataset_name, cfg.phyjoint_plans, STOCK_ON_PHYJOINT_INPUT_PLANS)


def _plans_of(arm: Arm, cfg: BenchmarkConfig) -> str:
    return cfg.phyjoint_plans if arm.plans == PHYJOINT_PLANS else arm.plans


def train_all(cfg: BenchmarkConfig, dataset_name: str, arms: list[Arm], folds: list[int], log_dir: Path,
              runs_file: Path) -> dict[str, Any]:
    """Every arm x fold through ``nnUNetv2_train`` (done folds skipped); run records kept in ``runs_file``."""
    from nnunet_phyjoint.evaluation.io import write_json

    runs = json.loads(runs_file.read_text()) if runs_file.is_file() else {}
    total = len(arms) * len(folds)
    start = time.perf_counter()
    for i, arm in enumerate(arms):
        trainer = arm.trainer(cfg.epochs)
        for j, fold in enumerate(folds):
            k = i * len(folds) + j + 1
            label = f"{k}/{total} {arm.name} fold {fold}, {time.perf_counter() - start:.0f} s elapsed"
            record = runner.train_fold(dataset_name, trainer, _plans_of(arm, cfg), fold, cfg.device, log_dir, label)
            if record["status"] != "done before" or f"{arm.name}/{fold}" not in runs:
                runs[f"{arm.name}/{fold}"] = {"trainer": trainer, "plans": _plans_of(arm, cfg), **record}
                write_json(runs_file, runs)
    return runs


def run_benchmark(cfg: BenchmarkConfig) -> dict[str, Any]:
    """Table 1 + Fig. 3 (or, with ``leave_one_scanner_out``, the scanner-shift table); returns the JSON."""
    import torch

    from nnunet_phyjoint.benchmark.collect import collect_cv_predictions, evaluate_predictions, ground_truth_subset
    from nnunet_phyjoint.benchmark.costs import arm_costs
    from nnunet_phyjoint.benchmark.figures import plot_arms
    from nnunet_phyjoint.benchmark.table import markdown_table, render_report
    from nnunet_phyjoint.atomic_io import atomic_write_text
    from nnunet_phyjoint.evaluation.io import write_json

    started = time.perf_counter()
    arms, skipped = resolve_arms(cfg.arms, cfg.epochs)
    for name, reason in skipped:
        print(f"[benchmark] skipping arm {name}: {reason}", flush=True)
    if not arms:
        raise ValueError("no arm can run (all skipped)")
    dataset_name = find_dataset_name(cfg.dataset)
    if cfg.leave_one_scanner_out:
        from nnunet_phyjoint.benchmark.loso import run_loso

        return run_loso(cfg, dataset_name, arms, skipped)

    out = Path(cfg.out)
    log_dir = out / "logs"
    prepare(cfg, dataset_name, arms, log_dir)
    splits = json.loads((preprocessed_dir() / dataset_name / "splits_final.json").read_text())
    bad = [f for f in cfg.folds if f >= len(splits)]
    if bad:
        raise ValueError(f"folds {bad} do not exist: {preprocessed_dir() / dataset_name / 'splits_final.json'} "
                         f"has {len(splits)} folds")
    runs = train_all(cfg, dataset_name, arms, cfg.folds, log_dir, out / "runs.json")

    raw = raw_dir() / dataset_name
    val_cases = sorted(c for f in cfg.folds for c in splits[f]["val"])
    gt = ground_truth_subset(raw, val_cases, out / "gt")
    device = torch.device(cfg.device)
    rows = []
    for arm in arms:
        print(f"[benchmark] evaluating {arm.name}", flush=True)
        plans = _plans_of(arm, cfg)
        folder = runner.model_folder(dataset_name, arm.trainer(cfg.epochs), plans)
        collect_cv_predictions(folder, cfg.folds, out / "cv" / arm.name)
        metrics = evaluate_predictions(gt, out / "cv" / arm.name, raw, out / "eval" / arm.name, cfg.n_bootstrap)
        costs = arm_costs(dataset_name, plans, arm.trainer(cfg.epochs), folder, cfg.folds, arm.export_bits,
                          out / "export" / arm.name, device, cfg.n_speed_images)
        rows.append({"arm": arm.name, "trainer": arm.trainer(cfg.epochs), "plans": plans,
                     "description": arm.description, "model_folder": str(folder),
                     "metrics": {k: metrics.get(k) for k in ("n_cases", "segmentation", "classification")},
                     "costs": costs})

    table = markdown_table(rows)
    figure = plot_arms(rows, out / "fig3_arms.png",
                       f"{dataset_name}: {len(cfg.folds)} folds pooled, {cfg.epochs} epochs per arm")
    context = [
        f"dataset `{dataset_name}`, folds {cfg.folds} ({len(val_cases)} validation cases pooled), "
        f"{cfg.epochs} epochs of one pass over the training fold for every arm, device `{cfg.device}`",
        "values: point estimate [bootstrap 95% CI over cases, "
        f"{cfg.n_bootstrap} resamples]; lesion-only = cases whose ground truth has a lesion, "
        "all-image = every case (empty prediction on empty ground truth counts as 1)",
        "size: float32 checkpoint weights of fold 0 (packed export for INT8/INT4); train time: sum over folds of "
        "nnU-Net's logged epoch durations; inference: nnU-Net predictor, batch 1, with mirroring, "
        f"{cfg.n_speed_images} images",
        "arms: " + "; ".join(f"`{r['arm']}` = {r['trainer']} on {r['plans']} ({r['description']})" for r in rows),
    ]
    notes = [f"`{name}` skipped: {reason}" for name, reason in skipped]
    notes += [f"`{r['arm']}`: stock nnU-Net has no diagnosis head, so F1 and AUC are {chr(8212)} (segmentation only)"
              for r in rows if r["metrics"].get("classification") is None]
    wall = time.perf_counter() - started
    trained = sum(r["seconds"] or 0 for r in runs.values())
    notes.append(f"wall time of all nnUNetv2_train runs recorded in runs.json: {trained / 60:.1f} min; "
                 f"this invocation: {wall / 60:.1f} min")
    result = {"format_version": 1, "protocol": "cross-validation", "dataset": dataset_name, "folds": cfg.folds,
              "epochs": cfg.epochs, "device": cfg.device, "machine": _machine(), "rows": rows,
              "skipped": [{"arm": n, "reason": r} for n, r in skipped], "runs": runs, "wall_seconds": wall,
              "command": " ".join(["phyjoint", *sys.argv[1:]]) if sys.argv and "phyjoint" in sys.argv[0] else None}
    write_json(out / "table1.json", result)
    report = render_report("Benchmark (Table 1)", table, context, notes, [figure.name])
    atomic_write_text(out / "table1.md", report)
    print("\n" + table + "\n", flush=True)
    for n in notes:
        print(f"  {n}")
    print(f"written: {out / 'table1.md'}, {out / 'table1.json'}, {figure}", flush=True)
    return result
