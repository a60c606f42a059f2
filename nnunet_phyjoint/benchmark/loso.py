"""Leave-one-scanner-out protocol: train on every scanner but one, evaluate on the unseen one.

nnU-Net reads its folds from ``splits_final.json`` in the dataset's preprocessed folder, so the
protocol runs on a copy of the dataset under another id (default ID+100, ID-100 above 899): the raw folder is
copied (hard links where possible), its dataset.json renamed, planned and preprocessed as usual,
and the leave-one-scanner-out splits (one fold per scanner) written there.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from nnunet_phyjoint.atomic_io import atomic_folder
from nnunet_phyjoint.benchmark.arms import Arm
from nnunet_phyjoint.benchmark.stages import BenchmarkConfig, budget_context, machine_info, plans_of, prepare, train_all
from nnunet_phyjoint.paths import raw_dir

COPY_KEY = "benchmark_loso_copy_of"
BENIGN_MALIGNANT_KEYS = ("auc_malignant", "sensitivity", "specificity")
MEAN_KEYS = ("dsc_lesion_only", "dsc_all_image", "f1_macro", "auc_macro", *BENIGN_MALIGNANT_KEYS)


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def loso_dataset(source_name: str, target_id: int) -> str:
    """The raw copy of ``source_name`` under ``target_id`` (created if missing); returns its name."""
    from nnunet_phyjoint.evaluation.io import write_json

    if not 1 <= target_id <= 999:
        raise ValueError(f"leave-one-scanner-out dataset id {target_id} is outside 1..999 (use --loso-dataset-id)")
    prefix = f"Dataset{target_id:03d}_"
    existing = [p for p in raw_dir().iterdir() if p.is_dir() and p.name.startswith(prefix)]
    if existing:
        dj = json.loads((existing[0] / "dataset.json").read_text())
        if dj.get(COPY_KEY) != source_name:
            raise FileExistsError(f"{existing[0]} exists and is not the leave-one-scanner-out copy of {source_name}; "
                                  "choose another --loso-dataset-id")
        return existing[0].name
    name = f"{prefix}{source_name[11:]}LOSO"
    target = raw_dir() / name
    with atomic_folder(target) as staging:
        shutil.copytree(raw_dir() / source_name, staging, copy_function=_link_or_copy, dirs_exist_ok=True)
        dj = json.loads((staging / "dataset.json").read_text())
        dj["name"] = f"{dj.get('name', source_name[11:])}LOSO"
        dj[COPY_KEY] = source_name
        (staging / "dataset.json").unlink()  # a hard link to the source's file: replace, never edit in place
        write_json(staging / "dataset.json", dj)
    print(f"[loso] copied {source_name} to {target}", flush=True)
    return name


def _scanner_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    seg, cls = metrics["segmentation"], metrics.get("classification")
    return {
        "n_cases": metrics["n_cases"],
        "dsc_lesion_only": seg["dsc"]["lesion_only"]["value"], "dsc_all_image": seg["dsc"]["all_image"]["value"],
        "f1_macro": cls["f1_macro"]["value"] if cls else None,
        "auc_macro": cls["auc_macro"]["value"] if cls else None,
        # benign vs malignant (absent from evaluations made before these metrics existed)
        **{k: (cls.get(k) or {}).get("value") if cls else None for k in BENIGN_MALIGNANT_KEYS},
        "dsc_entry": seg["dsc"]["lesion_only"], "f1_entry": cls["f1_macro"] if cls else None,
        "auc_malignant_entry": cls.get("auc_malignant") if cls else None,
    }


def _mean(values: list[Any]) -> float | None:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and np.isnan(v))]
    return float(np.mean(vals)) if vals and len(vals) == len(values) else None


def _with_source_plan_settings(cfg: BenchmarkConfig, source_name: str) -> BenchmarkConfig:
    """The copy is planned like the source: its PhyJoint plans' encoder, input size and batch size win."""
    import dataclasses

    from nnunet_phyjoint.paths import preprocessed_dir

    path = preprocessed_dir() / source_name / f"{cfg.phyjoint_plans}.json"
    if not path.is_file():
        return cfg
    c = json.loads(path.read_text())["configurations"]["2d"]
    encoder = c["architecture"]["arch_kwargs"].get("encoder_name", cfg.encoder)
    print(f"[loso] planning like {path.name} of {source_name}: encoder {encoder}, size {c['patch_size'][0]}, "
          f"batch {c['batch_size']}", flush=True)
    return dataclasses.replace(cfg, encoder=encoder, size=int(c["patch_size"][0]), batch_size=int(c["batch_size"]))


def select_held_out(splits: list[dict[str, Any]], wanted: list[str] | None) -> list[int]:
    """Indices of the splits whose held-out scanner matches one of ``wanted`` (case-insensitive substrings).

    ``None`` selects every split. Each name must match exactly one held-out scanner, so that a typo or an
    ambiguous name fails before hours of training instead of silently training something else.
    """
    scanners = [s["held_out_scanner"] for s in splits]
    if not wanted:
        return list(range(len(splits)))
    chosen: set[int] = set()
    for name in wanted:
        hits = [i for i, s in enumerate(scanners) if name.casefold() in s.casefold()]
        if len(hits) != 1:
            raise ValueError(f"--held-out {name!r} matches {len(hits)} of the held-out scanners {scanners}; "
                             "give a name that matches exactly one")
        chosen.add(hits[0])
    return sorted(chosen)


def run_loso(cfg: BenchmarkConfig, source_name: str, arms: list[Arm], skipped: list[tuple[str, str]]) -> dict[str, Any]:
    """Train every arm on each leave-one-scanner-out fold; table and figure under ``OUT/loso``."""
    from nnunet_phyjoint.benchmark import runner
    from nnunet_phyjoint.benchmark.collect import evaluate_predictions, ground_truth_subset
    from nnunet_phyjoint.benchmark.curves import LEARNING_CURVE_CAPTION, arm_curves
    from nnunet_phyjoint.benchmark.figures import plot_learning_curves, plot_loso
    from nnunet_phyjoint.benchmark.table import (
        LOSO_DETAIL_HEADING, loso_detail_table, loso_markdown_table, render_report,
    )
    from nnunet_phyjoint.atomic_io import atomic_write_text
    from nnunet_phyjoint.evaluation.io import write_json
    from nnunet_phyjoint.splits import leave_one_scanner_out_splits, write_splits

    started = time.perf_counter()
    budget = cfg.budget
    source_id = int(source_name[7:10])
    target_id = cfg.loso_dataset_id if cfg.loso_dataset_id is not None else \
        (source_id + 100 if source_id + 100 <= 999 else source_id - 100)
    name = loso_dataset(source_name, target_id)
    cfg = _with_source_plan_settings(cfg, source_name)
    out = Path(cfg.out) / "loso"
    log_dir = out / "logs"
    # the LOSO splits go in first, so that planning does not write its 4-fold default
    write_splits(name, leave_one_scanner_out=True, overwrite=True, loso_min_cases=cfg.loso_min_cases)
    prepare(cfg, name, arms, log_dir)
    write_splits(name, leave_one_scanner_out=True, overwrite=True, loso_min_cases=cfg.loso_min_cases)
    raw = raw_dir() / name
    all_splits = leave_one_scanner_out_splits(raw / "dataset.json", cfg.loso_min_cases)
    folds = select_held_out(all_splits, cfg.loso_held_out)
    splits = [all_splits[f] for f in folds]
    scanners = [s["held_out_scanner"] for s in splits]
    left_out = [s["held_out_scanner"] for i, s in enumerate(all_splits) if i not in folds]
    print(f"[loso] {len(folds)} folds, held-out scanners {scanners}"
          + (f" (scanners with fewer than {cfg.loso_min_cases} images stay in training)" if cfg.loso_min_cases > 1
             else "") + (f"; not in this run: {left_out}" if left_out else ""), flush=True)
    # train_all turns early stopping off: here it would watch, and tune on, the held-out scanner
    runs = train_all(cfg, name, arms, folds, log_dir, out / "runs.json")

    rows = []
    for arm in arms:
        folder = runner.model_folder(name, arm.trainer(budget), plans_of(arm, cfg))
        per_scanner = {}
        for fold, split in zip(folds, splits):
            scanner = split["held_out_scanner"]
            print(f"[loso] evaluating {arm.name}, held-out scanner {scanner}", flush=True)
            gt = ground_truth_subset(raw, split["val"], out / "gt" / scanner)
            metrics = evaluate_predictions(gt, folder / f"fold_{fold}" / "validation", raw,
                                           out / "eval" / arm.name / scanner, cfg.n_bootstrap)
            per_scanner[scanner] = _scanner_metrics(metrics)
        mean = {k: _mean([m[k] for m in per_scanner.values()])
                for k in MEAN_KEYS}
        rows.append({"arm": arm.name, "trainer": arm.trainer(budget), "plans": plans_of(arm, cfg),
                     "model_folder": str(folder), "per_scanner": per_scanner, "mean": mean,
                     "learning_curve": arm_curves(folder, folds)})

    table = (loso_markdown_table(rows, scanners) + "\n\n" + LOSO_DETAIL_HEADING + "\n\n"
             + loso_detail_table(rows, scanners))
    figure = plot_loso(rows, scanners, out / "fig_loso.png")
    curves_figure = plot_learning_curves(
        {r["arm"]: r["learning_curve"] for r in rows}, out / "fig_learning_curves.png",
        f"{name}: learning curves, {budget.label} per arm, mean over held-out-scanner folds",
        LEARNING_CURVE_CAPTION, stock_arms=[a.name for a in arms if a.is_stock])
    wall = time.perf_counter() - started
    context = [budget_context(cfg),
               f"dataset `{name}` (copy of `{source_name}`), one fold per held-out scanner, device `{cfg.device}`",
               "cells: lesion-only DSC / macro F1 on the held-out scanner's cases (not seen in training); "
               "mean = unweighted mean over held-out scanners; CIs in table_loso.json and the figure",
               *([f"held-out scanners in this table: {len(scanners)} of {len(all_splits)} (`--held-out`); "
                  f"not here: {', '.join(left_out)}, so the mean is not the mean over all scanners"]
                 if left_out else []),
               "arms: " + "; ".join(f"`{r['arm']}` = {r['trainer']} on {r['plans']}" for r in rows)]
    notes = [f"`{n}` skipped: {r}" for n, r in skipped]
    notes.append(f"wall time (this invocation): {wall / 60:.1f} min")
    result = {"format_version": 1, "protocol": "leave-one-scanner-out", "dataset": name, "source_dataset": source_name,
              "scanners": scanners, "scanners_not_run": left_out, "folds": folds,
              "repeat": cfg.repeat, "epochs": cfg.epochs if budget.is_epochs else None,
              "minutes_per_fold": None if budget.is_epochs else budget.value, "budget": budget.to_json(),
              "device": cfg.device, "machine": machine_info(),
              "rows": rows, "skipped": [{"arm": n, "reason": r} for n, r in skipped], "runs": runs, "wall_seconds": wall,
              "command": " ".join(["phyjoint", *sys.argv[1:]]) if sys.argv and "phyjoint" in sys.argv[0] else None}
    write_json(out / "table_loso.json", result)
    atomic_write_text(out / "table_loso.md", render_report(
        f"Leave one scanner out, {budget.label} per arm", table, context, notes,
        [figure.name, (curves_figure.name, LEARNING_CURVE_CAPTION)]))
    print("\n" + table + "\n", flush=True)
    print(f"written: {out / 'table_loso.md'}, {out / 'table_loso.json'}, {figure}, {curves_figure}", flush=True)
    return result
