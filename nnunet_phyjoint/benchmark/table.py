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


def cost_cells(costs: Mapping[str, Any] | None) -> list[str]:
    """Params (M), MACs (G), size (MB), train time (min), epochs, inference ms/img."""
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
        DASH if not epochs else "/".join(str(e) for e in epochs),
        _num(c.get("inference_ms"), ".1f"),
    ]


COST_COLUMNS = ("Params M", "MACs G", "Size MB", "Train min (all folds)", "Epochs/fold", "Inference ms/img")


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
