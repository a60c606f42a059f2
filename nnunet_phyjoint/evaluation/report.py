"""Evaluation results as files people read: metrics.json, metrics.md, per_case.csv, and a short table."""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

from nnunet_phyjoint.atomic_io import atomic_write_text
from nnunet_phyjoint.evaluation.io import write_json
from nnunet_phyjoint.metadata import CLASS_NAMES


# (key in metrics["classification"], label); the benign-vs-malignant ones count only the cases they use
CLASSIFICATION_ROWS = (("accuracy", "Accuracy"), ("f1_macro", "F1 (macro)"), ("auc_macro", "AUC (macro, OvR)"),
                       ("auc_malignant", "AUC malignant vs benign"), ("sensitivity", "Sensitivity (malignant)"),
                       ("specificity", "Specificity (benign)"))
BENIGN_MALIGNANT = ("auc_malignant", "sensitivity", "specificity")


def summary_rows(metrics: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The headline numbers as rows ``{metric, value, ci_low, ci_high, n}`` (for tables and benchmarks)."""
    rows = []
    seg = metrics.get("segmentation")
    if seg:
        for key, label in (("dsc", "DSC"), ("jaccard", "Jaccard")):
            for scope, scope_label in (("lesion_only", "lesion-only"), ("all_image", "all-image")):
                rows.append({"metric": f"{label} ({scope_label})", **_pick(seg[key][scope])})
        for unit in ("px", "mm"):
            if seg.get(f"hd95_{unit}"):
                rows.append({"metric": f"HD95 ({unit})", **_pick(seg[f"hd95_{unit}"])})
    cls = metrics.get("classification")
    if cls:
        for key, label in CLASSIFICATION_ROWS:
            if cls.get(key) is not None:  # metrics.json written before a metric existed lacks it
                rows.append({"metric": label, **_pick(cls[key]),
                             "n": cls[key].get("n", cls["n_cases"]) if key in BENIGN_MALIGNANT else cls["n_cases"]})
    return rows


def format_summary_table(metrics: Mapping[str, Any]) -> str:
    """A short Markdown table of the headline metrics with their bootstrap 95% CIs."""
    lines = ["| Metric | Value | 95% CI | n |", "|---|---:|---:|---:|"]
    for row in summary_rows(metrics):
        lines.append(f"| {row['metric']} | {_num(row['value'])} | {_ci(row)} | {row['n']} |")
    return "\n".join(lines)


def render_markdown(metrics: Mapping[str, Any], figures: Sequence[str] = ()) -> str:
    """The full report: inputs, conventions, segmentation, classification, figures."""
    out = ["# Evaluation", ""]
    inputs = metrics["inputs"]
    out += [f"- ground truth: `{inputs['gt_dir']}`", f"- predictions: `{inputs['pred_dir']}`"]
    if inputs.get("classification_csv"):
        out.append(f"- classification: `{inputs['classification_csv']}`")
    if inputs.get("dataset_json"):
        out.append(f"- dataset.json: `{inputs['dataset_json']}`")
    out.append(f"- spacing: {inputs['spacing_source']}")
    boot = metrics["bootstrap"]
    out += [f"- {metrics['n_cases']} cases; 95% CIs: {boot['method']}, {boot['n_resamples']} resamples, "
            f"seed {boot['seed']}", ""]
    out += ["## Summary", "", format_summary_table(metrics), ""]

    seg = metrics["segmentation"]
    c = seg["counts"]
    out += ["## Segmentation", "",
            f"| Metric | Lesion-only (n={c['lesion_cases']}) | 95% CI | All-image (n={c['cases']}) | 95% CI |",
            "|---|---:|---:|---:|---:|"]
    for key, label in (("dsc", "DSC"), ("jaccard", "Jaccard")):
        lo, al = seg[key]["lesion_only"], seg[key]["all_image"]
        out.append(f"| {label} | {_num(lo['value'])} | {_ci(lo)} | {_num(al['value'])} | {_ci(al)} |")
    out += ["", "| HD95 | Mean | 95% CI | Median | Defined | Undefined |", "|---|---:|---:|---:|---:|---:|"]
    for unit in ("px", "mm"):
        h = seg.get(f"hd95_{unit}")
        if h:
            out.append(f"| {unit} | {_num(h['value'])} | {_ci(h)} | {_num(h['median'])} | {h['n']} | {h['n_undefined']} |")
    if not seg.get("hd95_mm"):
        out.append("| mm | spacing unknown (pass --spacing-mm SY SX) | | | | |")
    out += ["", f"Cases: {c['cases']} ({c['lesion_cases']} with a lesion, {c['empty_gt_cases']} with an empty "
            f"ground truth, of which {c['both_empty']} predicted empty and {c['false_positive_on_empty_gt']} "
            f"with a false-positive mask); {c['missed_lesions']} lesion(s) entirely missed.", ""]

    cls = metrics.get("classification")
    out += ["## Classification", ""]
    if not cls:
        out += [metrics.get("classification_note", "No classification predictions."), ""]
    else:
        out += [f"{cls['n_cases']} cases with a known class.", "",
                "| Metric | Value | 95% CI | n |", "|---|---:|---:|---:|"]
        for key, label in CLASSIFICATION_ROWS:
            if cls.get(key) is not None:
                n = cls[key].get("n", cls["n_cases"]) if key in BENIGN_MALIGNANT else cls["n_cases"]
                out.append(f"| {label} | {_num(cls[key]['value'])} | {_ci(cls[key])} | {n} |")
        out += ["", "Benign vs malignant (malignant = positive): AUC over the benign and malignant cases scored by "
                "p_malignant / (p_benign + p_malignant); sensitivity = malignant cases predicted malignant, "
                "specificity = benign cases not predicted malignant, at the predicted class (argmax)."]
        out += ["", "| Class | Support | F1 | AUC (OvR) |", "|---|---:|---:|---:|"]
        for name in CLASS_NAMES:
            out.append(f"| {name} | {cls['support'][name]} | {_num(cls['f1_per_class'][name])} | "
                       f"{_num(cls['auc_per_class'][name])} |")
        out += ["", "Confusion matrix (rows = ground truth, columns = prediction):", "",
                "| | " + " | ".join(CLASS_NAMES) + " |", "|---|" + "---:|" * len(CLASS_NAMES)]
        for name, row in zip(CLASS_NAMES, cls["confusion_matrix"]):
            out.append(f"| **{name}** | " + " | ".join(str(v) for v in row) + " |")
        out.append("")
        for note in cls["notes"]:
            out.append(f"- Note: {note}")
        if cls["notes"]:
            out.append("")

    out += _by_group_section(metrics.get("by_scanner"), "Scanner", "Each scanner's cases")
    out += _by_group_section(metrics.get("by_fold"), "Fold", "Each cross-validation fold's validation cases")
    out += ["## Conventions", ""] + [f"- {c}" for c in metrics["conventions"]] + [""]
    if metrics.get("extra_predictions"):
        extra = metrics["extra_predictions"]
        out += [f"Predictions without ground truth (ignored, {len(extra)}): " + ", ".join(extra[:20])
                + (" ..." if len(extra) > 20 else ""), ""]
    if figures:
        out += ["## Figures", ""] + [f"![{Path(f).stem}]({f})" for f in figures] + [""]
    return "\n".join(out)


def _by_group_section(by_group: Mapping[str, Any] | None, kind: str, whose: str) -> list[str]:
    if not by_group:
        return []
    from nnunet_phyjoint.evaluation.by_group import GROUP_METRICS

    shown = [(k, label) for k, label in GROUP_METRICS if any(k in e for e in by_group.values())]
    out = [f"## By {kind.lower()}", "", f"{whose}, bootstrapped on their own (value [95% CI]).", "",
           f"| {kind} | Cases | " + " | ".join(label for _, label in shown) + " |",
           "|---|---:|" + "---:|" * len(shown)]
    for group, entry in by_group.items():
        cells = [f"{_num(entry[k]['value'])} [{_ci(entry[k])}]" if k in entry else "n/a" for k, _ in shown]
        out.append(f"| {group} | {entry['n_cases']} | " + " | ".join(cells) + " |")
    return out + [""]


PER_CASE_COLUMNS = ("case_id", "dsc", "jaccard", "hd95_px", "hd95_mm", "gt_pixels", "pred_pixels",
                    "spacing_y_mm", "spacing_x_mm", "gt_class", "predicted_class",
                    *(f"prob_{c}" for c in CLASS_NAMES), "scanner", "fold")


def write_per_case_csv(path: str | Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """One row per case (columns :data:`PER_CASE_COLUMNS`; undefined values left empty)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=PER_CASE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(row.get(k)) for k in PER_CASE_COLUMNS})
    atomic_write_text(path, buf.getvalue())


def write_reports(out_dir: str | Path, metrics: Mapping[str, Any], per_case: Sequence[Mapping[str, Any]],
                  figures: Sequence[str] = ()) -> None:
    """metrics.json, metrics.md and per_case.csv in ``out_dir`` (each written atomically)."""
    out_dir = Path(out_dir)
    write_json(out_dir / "metrics.json", metrics)
    atomic_write_text(out_dir / "metrics.md", render_markdown(metrics, figures))
    write_per_case_csv(out_dir / "per_case.csv", per_case)


def _pick(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {k: entry.get(k) for k in ("value", "ci_low", "ci_high", "n")}


def _is_missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def _num(x: Any) -> str:
    if _is_missing(x):
        return "n/a"
    return f"{x:.3f}" if abs(x) < 100 else f"{x:.1f}"


def _ci(entry: Mapping[str, Any]) -> str:
    lo, hi = entry.get("ci_low"), entry.get("ci_high")
    if _is_missing(lo) or _is_missing(hi):
        return "n/a"
    return f"{_num(lo)}–{_num(hi)}"


def _cell(x: Any) -> Any:
    if _is_missing(x):
        return ""
    if isinstance(x, float):
        return repr(x)
    return x
