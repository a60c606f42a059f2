"""The benchmark end to end: prepare plans and data, train every arm's folds, collect, evaluate, tabulate.

Layout of ``OUT``::

    logs/                    one log per nnU-Net command
    cv/<arm>/                cross-validation predictions (all requested folds merged)
    eval/<arm>/              evaluate_folders report (metrics.json, metrics.md, figures/)
    cv_pp/<arm>/, eval_pp/<arm>/   the same after nnU-Net's determine_postprocessing (postprocessing.json)
    cv_ungated/<arm>/, eval_ungated/<arm>/   PhyJoint arms: the masks before the diagnosis gating
    gt/                      the labels of the evaluated cases (and dataset.json)
    export/<arm>/            packed INT8/INT4 export (quantized arms)
    timing/<arm>.json        inference timing, reused while the arm's checkpoint is unchanged
    test/<arm>/, eval_test/<arm>/      with --test-dataset: the fold ensemble's test-set predictions and scores
    test_pp/<arm>/, eval_test_pp/<arm>/  the same after the arm's CV postprocessing decision (when it has one)
    gt_test/                 the test set's labels
    table1.md, table1.json, fig3_arms.png, fig_learning_curves.png
    loso/...                 the same for --leave-one-scanner-out (table_loso.md/.json, fig_loso.png)
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from nnunet_phyjoint.benchmark import runner
from nnunet_phyjoint.benchmark.arms import resolve_arms
from nnunet_phyjoint.benchmark.stages import (
    BenchmarkConfig, budget_context, machine_info, plans_of, prepare, results_of_repeat, train_all,
)
from nnunet_phyjoint.evaluation.io import list_pngs
from nnunet_phyjoint.paths import find_dataset_name, preprocessed_dir, raw_dir

__all__ = ["BenchmarkConfig", "run_benchmark"]


def run_benchmark(cfg: BenchmarkConfig) -> dict[str, Any]:
    """Table 1 + Fig. 3 (or, with ``leave_one_scanner_out``, the scanner-shift table); returns the JSON.

    ``cfg.repeat`` k > 1 trains and scores the k-th independent run under ``$nnUNet_results/repeat_k``.
    """
    if cfg.loso_held_out and not cfg.leave_one_scanner_out:
        raise ValueError("--held-out chooses held-out scanners of --leave-one-scanner-out; add that option")
    with results_of_repeat(cfg.repeat) as results:
        if cfg.repeat > 1:
            print(f"[benchmark] repeat {cfg.repeat}: models in {results}", flush=True)
        return _run_benchmark(cfg)


def _run_benchmark(cfg: BenchmarkConfig) -> dict[str, Any]:
    import torch

    from nnunet_phyjoint.benchmark.collect import collect_cv_predictions, evaluate_predictions, ground_truth_subset
    from nnunet_phyjoint.benchmark.costs import arm_costs
    from nnunet_phyjoint.benchmark.curves import LEARNING_CURVE_CAPTION, arm_curves
    from nnunet_phyjoint.benchmark.figures import plot_arms, plot_learning_curves
    from nnunet_phyjoint.benchmark.table import (
        BY_FOLD_HEADING, BY_SCANNER_HEADING, POSTPROCESSED_HEADING, TEST_SET_HEADING, UNGATED_HEADING, by_group_table,
        markdown_table, postprocessed_table, render_report, test_set_table, time_notes, ungated_table,
    )
    from nnunet_phyjoint.atomic_io import atomic_write_text
    from nnunet_phyjoint.evaluation.io import write_json

    started = time.perf_counter()
    budget = cfg.budget
    arms, skipped = resolve_arms(cfg.arms, budget)
    for name, reason in skipped:
        print(f"[benchmark] skipping arm {name}: {reason}", flush=True)
    if not arms:
        raise ValueError("no arm can run (all skipped)")
    dataset_name = find_dataset_name(cfg.dataset)
    if cfg.leave_one_scanner_out and cfg.test_dataset is not None:
        raise ValueError("--test-dataset goes with the cross-validation protocol, not --leave-one-scanner-out")
    test_name = find_dataset_name(cfg.test_dataset) if cfg.test_dataset is not None else None
    if test_name is not None:
        from nnunet_phyjoint.benchmark.test_set import test_set_folders

        if test_name == dataset_name:
            raise ValueError(f"--test-dataset {cfg.test_dataset} is the training dataset {dataset_name}; "
                             "give an independent one (e.g. simulated with another seed)")
        test_set_folders(test_name)  # a wrong test set fails before hours of training
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
    case_folds = {c: f for f in cfg.folds for c in splits[f]["val"]}
    gt = ground_truth_subset(raw, val_cases, out / "gt")
    device = torch.device(cfg.device)
    rows = []
    for arm in arms:
        print(f"[benchmark] evaluating {arm.name}", flush=True)
        plans = plans_of(arm, cfg)
        folder = runner.model_folder(dataset_name, arm.trainer(budget), plans)
        collect_cv_predictions(folder, cfg.folds, out / "cv" / arm.name)
        metrics = evaluate_predictions(gt, out / "cv" / arm.name, raw, out / "eval" / arm.name, cfg.n_bootstrap,
                                       case_folds=case_folds)
        costs = arm_costs(dataset_name, plans, arm.trainer(budget), folder, cfg.folds, arm.export_bits,
                          out / "export" / arm.name, device, cfg.n_speed_images,
                          timing_cache=out / "timing" / f"{arm.name}.json", log_dirs=[log_dir])
        rows.append({"arm": arm.name, "trainer": arm.trainer(budget), "plans": plans,
                     "description": arm.description, "model_folder": str(folder),
                     "metrics": _metric_summary(metrics),
                     "costs": costs, "learning_curve": arm_curves(folder, cfg.folds)})
        if cfg.postprocessing:
            rows[-1]["postprocessed"] = _postprocessed(arm.name, folder, gt, raw, out, cfg.n_bootstrap)
        if not arm.is_stock:
            rows[-1]["ungated"] = _ungated(arm.name, folder, cfg.folds, gt, raw, out, cfg.n_bootstrap,
                                           rows[-1]["metrics"])
        if cfg.test_dataset is not None:
            rows[-1]["test"] = _test_set(arm, dataset_name, plans, folder, cfg, out, log_dir, test_name)

    table = markdown_table(rows)
    if cfg.postprocessing:
        table += "\n\n" + POSTPROCESSED_HEADING + "\n\n" + postprocessed_table(rows)
    if any("ungated" in r for r in rows):
        table += "\n\n" + UNGATED_HEADING + "\n\n" + ungated_table(rows)
    if any(r["metrics"].get("by_fold") for r in rows):
        table += "\n\n" + BY_FOLD_HEADING + "\n\n" + by_group_table(rows, "by_fold", "Fold", mean_row=True)
    if any(r["metrics"].get("by_scanner") for r in rows):
        table += "\n\n" + BY_SCANNER_HEADING + "\n\n" + by_group_table(rows, "by_scanner", "Scanner")
    figures: list = []
    if cfg.test_dataset is not None:
        table += "\n\n" + TEST_SET_HEADING.format(dataset=test_name, n=rows[0]["test"]["n_cases"],
                                                   folds=" ".join(map(str, cfg.folds))) + "\n\n" + test_set_table(rows)
        figures.append(plot_arms([{**r, "metrics": r["test"]["metrics"]} for r in rows], out / "fig3_test.png",
                                 f"{test_name}: independent test set, fold ensemble of {dataset_name}, "
                                 f"{budget.label} per arm"))
    figure = plot_arms(rows, out / "fig3_arms.png",
                       f"{dataset_name}: {len(cfg.folds)} folds pooled, {budget.label} per arm")
    curves_figure = plot_learning_curves(
        {r["arm"]: r["learning_curve"] for r in rows}, out / "fig_learning_curves.png",
        f"{dataset_name}: learning curves, {budget.label} per arm, mean over folds {cfg.folds}",
        LEARNING_CURVE_CAPTION, stock_arms=[a.name for a in arms if a.is_stock])
    context = [
        budget_context(cfg),
        f"dataset `{dataset_name}`, folds {cfg.folds} ({len(val_cases)} validation cases pooled), "
        f"device `{cfg.device}`",
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
    notes += time_notes(rows)
    wall = time.perf_counter() - started
    wanted = {f"{r['arm']}/{f}": r["trainer"] for r in rows for f in cfg.folds}  # runs.json may hold other budgets
    trained = sum(rec.get("seconds") or 0 for k, rec in runs.items() if wanted.get(k) == rec.get("trainer"))
    notes.append(f"wall time of the nnUNetv2_train runs of these arms and folds recorded in runs.json: "
                 f"{trained / 60:.1f} min; this invocation: {wall / 60:.1f} min")
    result = {"format_version": 1, "protocol": "cross-validation", "dataset": dataset_name, "folds": cfg.folds,
              "test_dataset": test_name, "repeat": cfg.repeat,
              "epochs": cfg.epochs if budget.is_epochs else None,
              "minutes_per_fold": None if budget.is_epochs else budget.value, "budget": budget.to_json(),
              "device": cfg.device, "machine": machine_info(), "rows": rows,
              "skipped": [{"arm": n, "reason": r} for n, r in skipped], "runs": runs, "wall_seconds": wall,
              "command": " ".join(["phyjoint", *sys.argv[1:]]) if sys.argv and "phyjoint" in sys.argv[0] else None}
    write_json(out / "table1.json", result)
    report = render_report(f"Benchmark (Table 1), {budget.label} per arm", table, context, notes,
                           [figure.name, (curves_figure.name, LEARNING_CURVE_CAPTION), *(f.name for f in figures)])
    atomic_write_text(out / "table1.md", report)
    print(f"\nbudget: {budget.describe()}\n\n" + table + "\n", flush=True)
    for n in notes:
        print(f"  {n}")
    print(f"written: {out / 'table1.md'}, {out / 'table1.json'}, {figure}, {curves_figure}", flush=True)
    return result


def _metric_summary(metrics: dict[str, Any]) -> dict[str, Any]:
    """The part of an evaluation that table1.json keeps per arm (case count, segmentation, classification,
    per-scanner and per-fold scores)."""
    return {k: metrics.get(k) for k in ("n_cases", "segmentation", "classification", "by_scanner", "by_fold")}


def _postprocessed(arm_name: str, model_folder: Path, gt: Path, raw: Path, out: Path, n_bootstrap: int) -> dict[str, Any]:
    """nnU-Net's postprocessing decision for one arm and the evaluation of its postprocessed masks."""
    from nnunet_phyjoint.benchmark.collect import evaluate_predictions
    from nnunet_phyjoint.benchmark.postprocessing import determine_nnunet_postprocessing

    print(f"[benchmark] nnU-Net postprocessing of {arm_name}", flush=True)
    decision = determine_nnunet_postprocessing(out / "cv" / arm_name, gt, model_folder, out / "cv_pp" / arm_name)
    metrics = evaluate_predictions(gt, out / "cv_pp" / arm_name, raw, out / "eval_pp" / arm_name, n_bootstrap)
    return {**decision, "metrics": _metric_summary(metrics)}


def _ungated(arm_name: str, model_folder: Path, folds: list[int], gt: Path, raw: Path, out: Path, n_bootstrap: int,
             gated_metrics: dict[str, Any]) -> dict[str, Any]:
    """The arm's cross-validation masks before the diagnosis gating (what its decoder segmented), scored."""
    from nnunet_phyjoint.benchmark.collect import collect_cv_predictions, evaluate_predictions

    info = collect_cv_predictions(model_folder, folds, out / "cv_ungated" / arm_name, ungated=True)
    restored = info["ungated_cases"]
    if not restored:  # nothing was gated: the same masks, the same scores
        return {"restored_cases": [], "lesion_cases": [], "metrics": gated_metrics}
    from nnunet_phyjoint.evaluation.io import read_mask

    lesion = [c for c in restored if read_mask(Path(gt) / f"{c}.png").any()]
    print(f"[benchmark] {arm_name} before the diagnosis gating ({len(restored)} masks restored, {len(lesion)} of "
          "them on lesion images)", flush=True)
    metrics = evaluate_predictions(gt, out / "cv_ungated" / arm_name, raw, out / "eval_ungated" / arm_name, n_bootstrap)
    return {"restored_cases": restored, "lesion_cases": lesion, "metrics": _metric_summary(metrics)}


def _test_set(arm: Any, dataset_name: str, plans: str, model_folder: Path, cfg: BenchmarkConfig, out: Path,
              log_dir: Path, test_name: str) -> dict[str, Any]:
    """Predict the independent test set with the arm's fold ensemble and score it (raw and after the CV decision)."""
    from nnunet_phyjoint.benchmark.collect import evaluate_predictions, ground_truth_subset
    from nnunet_phyjoint.benchmark.test_set import apply_cv_postprocessing, predict_test_set, test_set_folders

    test_raw, images, labels = test_set_folders(test_name)
    trainer = arm.trainer(cfg.budget)
    pred = out / "test" / arm.name
    predict_test_set(dataset_name, trainer, plans, model_folder, cfg.folds, images, pred, cfg.device,
                     log_dir / f"predict_test_{arm.name}.log", f"test set {arm.name}", not arm.is_stock)
    gt = ground_truth_subset(test_raw, sorted(list_pngs(pred)), out / "gt_test", labels_folder=labels.name)
    metrics = evaluate_predictions(gt, pred, test_raw, out / "eval_test" / arm.name, cfg.n_bootstrap,
                                   images_folder=images.name)
    entry: dict[str, Any] = {"dataset": test_name, "n_cases": metrics.get("n_cases"), "folds": cfg.folds,
                             "metrics": _metric_summary(metrics)}
    if cfg.postprocessing:
        pp_out = out / "test_pp" / arm.name
        functions = apply_cv_postprocessing(pred, out / "cv_pp" / arm.name, pp_out)
        pp_metrics = evaluate_predictions(gt, pp_out, test_raw, out / "eval_test_pp" / arm.name, cfg.n_bootstrap,
                                          images_folder=images.name) if functions else metrics
        entry["postprocessed"] = {"functions": functions,
                                  "metrics": _metric_summary(pp_metrics)}
    return entry
