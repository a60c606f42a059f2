"""Table 1 of the benchmark (Markdown + JSON): one row per arm, metrics with bootstrap 95% CIs and costs."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

DASH = "—"

# (column title, path into evaluate_folders' metrics, digits)
METRIC_COLUMNS: tuple[tuple[str, tuple[str, ...], int], ...] = (
    ("DSC lesion-only", ("segmentation", "dsc", "lesion_only"), 3),
    ("DSC all-image", ("segmentation", "dsc", "all_image"), 3),
    ("Jaccard lesion-only", ("segmentation", "jaccard", "lesion_only"), 3),
    ("HD95 px", ("segmentation", "hd95_px"), 1),
    ("F1 macro", ("classification", "f1_macro"), 3),
    ("AUC macro", ("classification", "auc_macro"), 3),
    # benign vs malignant (malignant = positive), at the predicted class (argmax); see evaluation.classification_metrics
    ("AUC malignant", ("classification", "auc_malignant"), 3),
    ("Sensitivity", ("classification", "sensitivity"), 3),
    ("Specificity", ("classification", "specificity"), 3),
)


def metric_entry(metrics: Mapping[str, Any] | None, path: Sequence[str]) -> Mapping[str, Any] | None:
    """The ``{value, ci_low, ci_high, n}`` entry at ``path`` of an evaluation, or None when absent."""
    node: Any = metrics
    for key in path:
        if not isinstance(node, Mapping) or node.get(key) is None:
            return None
        node = node[key]
    return node


def _missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def format_ci(entry: Mapping[str, Any] | None, digits: int = 3) -> str:
    """``"value [low, high]"``; ``"—"`` when the metric does not exist (e.g. F1 of a segmentation-only arm)."""
    if entry is None or _missing(entry.get("value")):
        return DASH
    value = f"{entry['value']:.{digits}f}"
    lo, hi = entry.get("ci_low"), entry.get("ci_high")
    if _missing(lo) or _missing(hi):
        return value
    return f"{value} [{lo:.{digits}f}, {hi:.{digits}f}]"


def _num(x: Any, fmt: str) -> str:
    return DASH if _missing(x) else format(x, fmt)


def mask_cells(metrics: Mapping[str, Any] | None) -> list[str]:
    """Median predicted / true lesion area (lesion cases) and empty masks on empty ground truth (k/n)."""
    seg = (metrics or {}).get("segmentation") or {}
    area, counts = seg.get("area_ratio_lesion"), seg.get("counts")
    cells = [DASH if not area else f"{area['median']:.2f}"]
    if not counts or not counts.get("empty_gt_cases"):
        return cells + [DASH]
    return cells + [f"{counts['both_empty']}/{counts['empty_gt_cases']}"]


MASK_COLUMNS = ("Area pred/true (median)", "Empty mask on normal")


UNKNOWN = "?"


def total_minutes_cell(costs: Mapping[str, Any] | None) -> str:
    """Mean total minutes per fold (:func:`~.costs.time_per_fold`): ``"—"`` for results written before it
    existed, ``"?"`` when a component is unknown, ``"≥ x"`` when the preprocessing time is a lower bound."""
    time = (costs or {}).get("time")
    if not time:
        return DASH
    total = time.get("mean_total_seconds")
    if _missing(total):
        return UNKNOWN
    prefix = "≥ " if (time.get("preprocessing") or {}).get("lower_bound") else ""
    return f"{prefix}{total / 60:.1f}"


def cost_cells(costs: Mapping[str, Any] | None) -> list[str]:
    """Params (M), MACs (G), size (MB), train time (min), total min/fold, epochs, inference ms/img."""
    c = costs or {}
    size = _num(c.get("checkpoint_mb"), ".2f")
    if c.get("packed_mb") is not None:
        size += f" (packed INT{c['export_bits']}: {c['packed_mb']:.2f})"
    epochs = c.get("epochs_trained")
    return [
        _num(c.get("params") and c["params"] / 1e6, ".2f"),
        _num(c.get("macs") and c["macs"] / 1e9, ".2f"),
        size,
        _num(c.get("train_seconds") and c["train_seconds"] / 60, ".1f"),
        total_minutes_cell(c),
        DASH if not epochs else "/".join(str(e) for e in epochs),
        _num(c.get("inference_ms"), ".1f"),
    ]


COST_COLUMNS = ("Params M", "MACs G", "Size MB", "Train min (all folds)", "Total min/fold", "Epochs/fold",
                "Inference ms/img")

TOTAL_TIME_NOTE = (
    "Total min/fold (mean over folds; Train min counts only nnU-Net's logged epoch durations): the wall-clock "
    "time one fold of the arm costs = its share of the preprocessing (`phyjoint preprocess` / "
    "`nnUNetv2_preprocess`, run once per preprocessed data and shared by every arm on that data: counted in full "
    "for each of them, divided over the {n_folds} folds) + the `nnUNetv2_train` run(s) from the trainer's first "
    "log line to 'Training done.' (start-up, a style-decoder fit made in that run, the epochs, checkpoints; "
    "resumed runs added up) + the final validation (nnU-Net's `perform_actual_validation`: validation masks, "
    "and for PhyJoint the diagnoses and the gating) + the recorded fit time of a style decoder fitted before "
    "the run and reused from the cache. Not included: Python start-up before the trainer's log opens, "
    "planning, evaluation and the inference timing. ? = a component could not be found (see `costs.time` in "
    "table1.json); ≥ = the preprocessing time is a lower bound (from the preprocessed files' write times).")


def _mean_or_none(values: Sequence[Any]) -> float | None:
    return None if not values or any(_missing(v) for v in values) else sum(values) / len(values)


def _minutes(seconds: Any) -> str:
    return UNKNOWN if _missing(seconds) else f"{seconds / 60:.1f}"


def time_notes(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Footnotes of the Total min/fold column: what it includes, each arm's parts, who shares a preprocessing."""
    timed = [r for r in rows if (r.get("costs") or {}).get("time")]
    if not timed:
        return []
    n_folds = len(timed[0]["costs"]["time"]["folds"])
    notes = [TOTAL_TIME_NOTE.format(n_folds=n_folds)]
    shared: dict[str, list[str]] = {}
    for row in timed:
        pre = row["costs"]["time"].get("preprocessing") or {}
        shared.setdefault(pre.get("data_identifier") or "?", []).append(row["arm"])
    for row in timed:
        t = row["costs"]["time"]
        folds = list(t["folds"].values())
        pre = t.get("preprocessing") or {}
        others = [a for a in shared.get(pre.get("data_identifier") or "?", []) if a != row["arm"]]
        pre_text = (f"preprocessing {_minutes(_mean_or_none([f.get('preprocessing_share_seconds') for f in folds]))}"
                    f" (`{pre.get('data_identifier') or '?'}`: {_minutes(pre.get('seconds'))} min in all, "
                    f"{pre.get('source') or 'not found'}"
                    + (f"; shared with {', '.join(f'`{a}`' for a in others)}" if others else "") + ")")
        statuses = sorted({str((f.get("style_fit") or {}).get("status")) for f in folds})
        fit = _mean_or_none([(f.get("style_fit") or {}).get("seconds") for f in folds])
        if statuses == ["not used"]:
            fit_text = "no style shift"
        elif "None" in statuses:
            fit_text = "style-decoder fit unknown"
        else:
            where = {"fitted in this run": "in the trainer run", "cached": "cached: fitted before, reused, added"}
            fit_text = f"style-decoder fit {_minutes(fit)} ({'; '.join(where.get(s, s) for s in statuses)})"
        trainer = _mean_or_none([f.get("trainer_seconds") for f in folds])
        epochs = _mean_or_none([f.get("train_seconds") for f in folds])
        validation = _mean_or_none([f.get("final_validation_seconds") for f in folds])
        notes.append(f"`{row['arm']}`, min per fold: {pre_text} + trainer run {_minutes(trainer)} (epochs "
                     f"{_minutes(epochs)}; {fit_text}) + final validation {_minutes(validation)} = "
                     f"{total_minutes_cell(row['costs'])}")
    return notes


def markdown_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Rows ``{arm, trainer, metrics, costs}`` as a Markdown table (metrics with 95% CIs)."""
    head = ["Arm", *(c[0] for c in METRIC_COLUMNS), *MASK_COLUMNS, *COST_COLUMNS]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for row in rows:
        cells = [f"`{row['arm']}`"]
        cells += [format_ci(metric_entry(row.get("metrics"), path), digits) for _, path, digits in METRIC_COLUMNS]
        cells += mask_cells(row.get("metrics"))
        cells += cost_cells(row.get("costs"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


POSTPROCESSED_HEADING = (
    "With nnU-Net's postprocessing (decided per arm on the pooled cross-validation predictions by nnU-Net's "
    "`determine_postprocessing`, as `nnUNetv2_find_best_configuration` decides it):")
POSTPROCESSED_METRICS = METRIC_COLUMNS[:4]
TEST_SET_HEADING = (
    "Independent test set `{dataset}` ({n} cases, never trained or planned on): each arm's models of folds "
    "{folds} ensembled as `nnUNetv2_predict -f {folds}` / `phyjoint predict` ensemble them (mirroring on); "
    "postprocessing = the arm's decision on the cross-validation above, applied unchanged:")


def _segmentation_entry_table(rows: Sequence[Mapping[str, Any]], key: str, second_column: str,
                              second_cell) -> str:
    """One line per arm with a ``key`` entry: ``second_cell(entry)``, then the segmentation metrics of the entry."""
    head = ["Arm", second_column, *(c[0] for c in POSTPROCESSED_METRICS), *MASK_COLUMNS]
    lines = ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
    for row in rows:
        entry = row.get(key)
        if not entry:
            continue
        cells = [f"`{row['arm']}`", second_cell(entry)]
        cells += [format_ci(metric_entry(entry.get("metrics"), path), digits)
                  for _, path, digits in POSTPROCESSED_METRICS]
        cells += mask_cells(entry.get("metrics"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def postprocessed_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """One line per arm with a ``postprocessed`` entry: nnU-Net's choice and the segmentation metrics after it."""
    from nnunet_phyjoint.benchmark.postprocessing import describe

    return _segmentation_entry_table(rows, "postprocessed", "nnU-Net postprocessing",
                                     lambda pp: describe(pp.get("functions") or []))


UNGATED_HEADING = (
    "PhyJoint arms before the diagnosis gating (the trainer's final validation empties the mask of every image "
    "its head calls normal; here those masks are restored, so a lesion image misdiagnosed as normal is scored on "
    "what the decoder segmented; stock arms have no gating):")


def ungated_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """One line per arm with an ``ungated`` entry: how many gated masks were restored and the metrics without gating."""
    def restored(entry: Mapping[str, Any]) -> str:
        lesion = entry.get("lesion_cases")
        return f"{len(entry.get('restored_cases') or [])}" + (f" ({len(lesion)})" if lesion is not None else "")

    return _segmentation_entry_table(rows, "ungated", "Masks restored (lesion images among them)", restored)


BY_SCANNER_HEADING = (
    "Per scanner (the pooled validation cases of each scanner, bootstrapped on their own; every scanner is in "
    "every training fold, so this is in distribution; leave one scanner out is `--leave-one-scanner-out`):")
BY_FOLD_HEADING = (
    "Per fold (each fold's validation cases scored on their own, as that fold's model alone; the mean of the "
    "folds beside the pooled value, which for an AUC ranks the cases of differently calibrated models together):")
GROUP_COLUMNS = (("DSC lesion-only", "dsc_lesion_only", 3), ("HD95 px", "hd95_px", 1),
                 ("AUC malignant", "auc_malignant", 3), ("Sensitivity", "sensitivity", 3),
                 ("Specificity", "specificity", 3))


def by_group_table(rows: Sequence[Mapping[str, Any]], key: str, kind: str, mean_row: bool = False) -> str:
    """One line per arm and group (``metrics[key]``: "by_scanner" or "by_fold", headed ``kind``): the case
    count and the group's own metrics with 95% CIs; with ``mean_row`` also each arm's unweighted mean over
    its groups (no CI: the groups are the units)."""
    head = ["Arm", kind, "Cases", *(c[0] for c in GROUP_COLUMNS)]
    lines = ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
    for row in rows:
        groups = (row.get("metrics") or {}).get(key) or {}
        for group, entry in groups.items():
            cells = [f"`{row['arm']}`", group, str(entry["n_cases"])]
            cells += [format_ci(entry.get(metric), digits) for _, metric, digits in GROUP_COLUMNS]
            lines.append("| " + " | ".join(cells) + " |")
        if mean_row and len(groups) > 1:
            cells = [f"`{row['arm']}`", f"mean of {len(groups)}", str(sum(e["n_cases"] for e in groups.values()))]
            cells += [_num(_mean_or_none([(e.get(metric) or {}).get("value") for e in groups.values()]), f".{digits}f")
                      for _, metric, digits in GROUP_COLUMNS]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def test_set_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """One line per arm with a ``test`` entry: metrics of its fold ensemble on the independent test set,
    and lesion-only DSC after the arm's cross-validation postprocessing decision (when there is one)."""
    from nnunet_phyjoint.benchmark.postprocessing import describe

    head = ["Arm", *(c[0] for c in METRIC_COLUMNS), *MASK_COLUMNS, "CV postprocessing", "DSC lesion-only after it"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 3) + "---|---:|"]
    for row in rows:
        test = row.get("test")
        if not test:
            continue
        cells = [f"`{row['arm']}`"]
        cells += [format_ci(metric_entry(test.get("metrics"), path), digits) for _, path, digits in METRIC_COLUMNS]
        cells += mask_cells(test.get("metrics"))
        pp = test.get("postprocessed")
        if pp is None:
            cells += [DASH, DASH]
        else:
            cells += [describe(pp.get("functions") or []),
                      format_ci(metric_entry(pp.get("metrics"), METRIC_COLUMNS[0][1]), 3)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def loso_markdown_table(rows: Sequence[Mapping[str, Any]], scanners: Sequence[str]) -> str:
    """Arms x held-out scanner: ``DSC lesion-only / F1 macro`` per scanner, and their means."""
    head = ["Arm", *(f"held out {s}" for s in scanners), "mean"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1),]
    for row in rows:
        cells = [f"`{row['arm']}`"]
        for s in scanners:
            m = row["per_scanner"].get(s)
            cells.append(_pair(m["dsc_lesion_only"], m["f1_macro"]) if m else DASH)
        cells.append(_pair(row["mean"]["dsc_lesion_only"], row["mean"]["f1_macro"]))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


LOSO_DETAIL_HEADING = ("Each held-out scanner with its 95% bootstrap CIs over its cases (benign vs malignant at "
                       "the predicted class; stock arms have no diagnosis):")


def loso_detail_table(rows: Sequence[Mapping[str, Any]], scanners: Sequence[str]) -> str:
    """Arm x held-out scanner, one line each: cases, lesion-only DSC and AUC malignant with 95% CIs,
    sensitivity and specificity."""
    head = ["Arm", "Held-out scanner", "Cases", "DSC lesion-only", "AUC malignant", "Sensitivity", "Specificity"]
    lines = ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
    for row in rows:
        for s in scanners:
            m = row["per_scanner"].get(s)
            if not m:
                continue
            lines.append("| " + " | ".join([
                f"`{row['arm']}`", s, str(m.get("n_cases", DASH)), format_ci(m.get("dsc_entry")),
                format_ci(m.get("auc_malignant_entry")), _num(m.get("sensitivity"), ".3f"),
                _num(m.get("specificity"), ".3f")]) + " |")
    return "\n".join(lines)


def _pair(dsc: Any, f1: Any) -> str:
    return f"{_num(dsc, '.3f')} / {_num(f1, '.3f')}"


def render_report(title: str, table: str, context_lines: Sequence[str], notes: Sequence[str],
                  figures: Sequence[str | tuple[str, str]] = ()) -> str:
    """A small Markdown document: title, how it was made, the table, notes, figures.

    A figure is a file name, or ``(file name, caption)``; the caption goes below the image.
    """
    out = [f"# {title}", "", *[f"- {line}" for line in context_lines], "", table, ""]
    if notes:
        out += ["Notes:", "", *[f"- {n}" for n in notes], ""]
    for f in figures:
        name, caption = (f, None) if isinstance(f, (str, Path)) else f
        out.append(f"![{Path(name).stem}]({name})")
        if caption:
            out += ["", f"*{caption}*", ""]
    return "\n".join(out) + "\n"
