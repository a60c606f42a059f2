"""Independent runs (``phyjoint benchmark --repeat K``) side by side: is a difference bigger than run-to-run noise?

Bootstrap CIs in Table 1 are over cases; they say nothing about how much a second training run of
the same arm would differ. This module reads the ``table1.json`` (or ``loso/table_loso.json``) of
several runs of the same benchmark and tabulates, per arm, each run's headline numbers, their mean
and their spread (max - min), and each arm's difference to the first arm run by run.
"""
from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any, Sequence

from nnunet_phyjoint.benchmark.table import DASH, metric_entry

# (label, getter on a CV row); getters return None when the metric does not exist for the arm
CV_METRICS: tuple[tuple[str, Any], ...] = (
    ("DSC lesion-only", lambda r: _value(r.get("metrics"), ("segmentation", "dsc", "lesion_only"))),
    ("DSC lesion-only after nnU-Net pp", lambda r: _value((r.get("postprocessed") or {}).get("metrics"),
                                                          ("segmentation", "dsc", "lesion_only"))),
    ("HD95 px", lambda r: _value(r.get("metrics"), ("segmentation", "hd95_px"))),
    ("F1 macro", lambda r: _value(r.get("metrics"), ("classification", "f1_macro"))),
    ("AUC malignant vs benign", lambda r: _value(r.get("metrics"), ("classification", "auc_malignant"))),
    ("Sensitivity (malignant)", lambda r: _value(r.get("metrics"), ("classification", "sensitivity"))),
    ("Specificity (benign)", lambda r: _value(r.get("metrics"), ("classification", "specificity"))),
    ("test-set DSC lesion-only", lambda r: _value((r.get("test") or {}).get("metrics"),
                                                  ("segmentation", "dsc", "lesion_only"))),
)
LOSO_METRICS: tuple[tuple[str, Any], ...] = (
    ("mean DSC lesion-only over held-out scanners", lambda r: _num((r.get("mean") or {}).get("dsc_lesion_only"))),
    ("mean F1 macro over held-out scanners", lambda r: _num((r.get("mean") or {}).get("f1_macro"))),
    ("mean AUC malignant vs benign over held-out scanners",
     lambda r: _num((r.get("mean") or {}).get("auc_malignant"))),
)
SAME = ("protocol", "dataset", "folds", "budget", "test_dataset")  # what runs must share to be repeats


def _num(x: Any) -> float | None:
    if isinstance(x, dict):
        x = x.get("value")
    return None if x is None or (isinstance(x, float) and x != x) else float(x)


def _value(metrics: Any, path: Sequence[str]) -> float | None:
    return _num(metric_entry(metrics, path))


def result_file(folder: str | Path) -> Path:
    """``table1.json`` of a benchmark output folder, else its ``loso/table_loso.json`` (or the file itself)."""
    folder = Path(folder)
    for candidate in (folder, folder / "table1.json", folder / "loso" / "table_loso.json"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{folder}: no table1.json or loso/table_loso.json (has the benchmark finished?)")


def load_repeats(folders: Sequence[str | Path]) -> list[dict[str, Any]]:
    """The results of ``folders``; a ValueError names the file that is not a repeat of the first."""
    if len(folders) < 2:
        raise ValueError("give at least two benchmark output folders (runs of the same command)")
    results = []
    for folder in folders:
        path = result_file(folder)
        try:
            result = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} is not valid JSON: {e}") from e
        result["_file"] = str(path)
        results.append(result)
    first = results[0]
    for r in results[1:]:
        differ = [k for k in SAME if r.get(k) != first.get(k)]
        if differ:
            raise ValueError(f"{r['_file']} is not a repeat of {first['_file']}: {', '.join(differ)} differ "
                             f"({', '.join(f'{k}={r.get(k)!r} vs {first.get(k)!r}' for k in differ)})")
    return results


def _fmt(x: float | None, digits: int) -> str:
    return DASH if x is None else f"{x:.{digits}f}"


def repeats_summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Per metric and arm: the value of each run, mean, spread (max - min), and the difference to the first arm."""
    metrics = LOSO_METRICS if results[0].get("protocol") == "leave-one-scanner-out" else CV_METRICS
    arms: list[str] = []
    for r in results:
        arms += [row["arm"] for row in r["rows"] if row["arm"] not in arms]
    by_run = [{row["arm"]: row for row in r["rows"]} for r in results]
    out: dict[str, Any] = {"runs": [r["_file"] for r in results], "repeat": [r.get("repeat", 1) for r in results],
                           "arms": arms, "metrics": {}}
    for label, get in metrics:
        table = {}
        for arm in arms:
            values = [get(run[arm]) if arm in run else None for run in by_run]
            present = [v for v in values if v is not None]
            reference = [get(run[arms[0]]) if arms[0] in run else None for run in by_run]
            diffs = [None if v is None or ref is None else v - ref for v, ref in zip(values, reference)]
            table[arm] = {"values": values,
                          "mean": statistics.fmean(present) if present else None,
                          "spread": max(present) - min(present) if len(present) > 1 else None,
                          "difference_to_first_arm": diffs if arm != arms[0] else None}
        if any(e["mean"] is not None for e in table.values()):
            out["metrics"][label] = table
    return out


def repeats_markdown(summary: dict[str, Any]) -> str:
    """One Markdown table per metric: arms x runs, mean, spread, and the per-run difference to the first arm."""
    n = len(summary["runs"])
    first = summary["arms"][0]
    blocks = []
    for label, table in summary["metrics"].items():
        digits = 1 if "HD95" in label else 3
        head = ["Arm", *(f"run {k}" for k in summary["repeat"]), "mean", "spread (max − min)",
                f"difference to `{first}` per run"]
        lines = [f"**{label}**", "", "| " + " | ".join(head) + " |", "|---|" + "---:|" * (n + 2) + "---|"]
        for arm, e in table.items():
            diffs = e["difference_to_first_arm"]
            diff = DASH if diffs is None else " / ".join(DASH if d is None else f"{d:+.{digits}f}" for d in diffs)
            lines.append("| " + " | ".join([f"`{arm}`", *(_fmt(v, digits) for v in e["values"]),
                                            _fmt(e["mean"], digits), _fmt(e["spread"], digits), diff]) + " |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def plot_repeats(summary: dict[str, Any], path: Path, title: str) -> Path:
    """Each run's value as a dot and the mean as a bar, per arm, for every metric (one panel each)."""
    from nnunet_phyjoint.atomic_io import atomic_path
    from nnunet_phyjoint.benchmark.figures import _pyplot

    plt = _pyplot()
    panels = list(summary["metrics"].items())
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels) + 1, 3.6), squeeze=False)
    for ax, (label, table) in zip(axes[0], panels):
        for i, (arm, e) in enumerate(table.items()):
            if e["mean"] is None:
                continue
            ax.bar(i, e["mean"], color="#c6dbef", edgecolor="#4a6fa5")
            values = [v for v in e["values"] if v is not None]
            ax.scatter([i] * len(values), values, color="#08306b", zorder=3, s=18)
        ax.set_xticks(range(len(table)), list(table), rotation=30, ha="right", fontsize=8)
        ax.set_title(label, fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path
