"""Fig.-3-style grouped bar charts of the benchmark (matplotlib, Agg)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from nnunet_phyjoint.benchmark.table import metric_entry
from nnunet_phyjoint.atomic_io import atomic_path

FIG_METRICS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("DSC\nlesion-only", ("segmentation", "dsc", "lesion_only")),
    ("DSC\nall-image", ("segmentation", "dsc", "all_image")),
    ("F1\nmacro", ("classification", "f1_macro")),
    ("AUC\nmacro", ("classification", "auc_macro")),
    ("AUC\nmalignant", ("classification", "auc_malignant")),
    ("Sensi-\ntivity", ("classification", "sensitivity")),
    ("Speci-\nficity", ("classification", "specificity")),
)
# drawn only when some arm has them (results written before they existed, or no benign/malignant case)
OPTIONAL_FIG_METRICS = ("auc_malignant", "sensitivity", "specificity")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _grouped_bars(ax, groups: Sequence[str], series: Mapping[str, Sequence[tuple[float, float, float] | None]]):
    """Bars of each series (arm) within each group, with asymmetric CI error bars; missing values leave a gap."""
    n = max(len(series), 1)
    width = 0.8 / n
    x = np.arange(len(groups))
    for i, (name, values) in enumerate(series.items()):
        pos = x - 0.4 + width * (i + 0.5)
        for j, v in enumerate(values):
            if v is None:
                ax.text(pos[j], 0.01, "n/a", rotation=90, ha="center", va="bottom", fontsize=7, color="grey")
        vals = np.array([np.nan if v is None else v[0] for v in values], dtype=float)
        lo = np.array([np.nan if v is None or v[1] is None else v[0] - v[1] for v in values], dtype=float)
        hi = np.array([np.nan if v is None or v[2] is None else v[2] - v[0] for v in values], dtype=float)
        yerr = np.vstack([np.nan_to_num(lo), np.nan_to_num(hi)])
        ax.bar(pos, np.nan_to_num(vals), width, yerr=yerr, capsize=2, label=name,
               color=f"C{i % 10}", error_kw={"elinewidth": 0.8})
    ax.set_xticks(x, groups)
    ax.set_ylim(0, 1.05)
    ax.grid(axis="y", alpha=0.3)


def _triple(entry: Mapping[str, Any] | None) -> tuple[float, float | None, float | None] | None:
    if entry is None or entry.get("value") is None or entry["value"] != entry["value"]:  # absent or NaN
        return None
    return float(entry["value"]), entry.get("ci_low"), entry.get("ci_high")


def plot_arms(rows: Sequence[Mapping[str, Any]], path: str | Path, title: str = "") -> Path:
    """DSC / F1 / AUC (and, where defined, benign-vs-malignant AUC, sensitivity, specificity) per arm with
    bootstrap 95% CIs (the paper's Fig. 3 layout)."""
    plt = _pyplot()
    groups = [(g, p) for g, p in FIG_METRICS
              if p[-1] not in OPTIONAL_FIG_METRICS or any(_triple(metric_entry(r.get("metrics"), p)) for r in rows)]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(groups) * max(1, len(rows)) * 0.45 + 2), 4))
    series = {row["arm"]: [_triple(metric_entry(row.get("metrics"), p)) for _, p in groups] for row in rows}
    _grouped_bars(ax, [g for g, _ in groups], series)
    ax.set_ylabel("score (95% CI)")
    ax.set_title(title or "Cross-validation, all folds pooled")
    ax.legend(fontsize=8, ncol=min(4, max(1, len(rows))), loc="upper center", bbox_to_anchor=(0.5, -0.12))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=130, bbox_inches="tight", format="png")
    plt.close(fig)
    return Path(path)


def plot_loso(rows: Sequence[Mapping[str, Any]], scanners: Sequence[str], path: str | Path) -> Path:
    """Lesion-only DSC and macro F1 per held-out scanner and arm (with CIs)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(max(8.0, 2.2 * len(scanners) + 3), 4), sharey=True)
    for ax, (key, label) in zip(axes, (("dsc", "DSC lesion-only"), ("f1", "F1 macro"))):
        series = {}
        for row in rows:
            vals = []
            for s in scanners:
                m = row["per_scanner"].get(s)
                vals.append(_triple(m and m.get(f"{key}_entry")))
            series[row["arm"]] = vals
        _grouped_bars(ax, [f"held out\n{s}" for s in scanners], series)
        ax.set_title(label)
    axes[0].set_ylabel("score (95% CI)")
    axes[0].legend(fontsize=8, loc="upper center", bbox_to_anchor=(1.05, -0.15), ncol=min(4, max(1, len(rows))))
    fig.suptitle("Leave one scanner out: trained on the other scanners")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=130, bbox_inches="tight", format="png")
    plt.close(fig)
    return Path(path)


def plot_learning_curves(curves: Mapping[str, Mapping[str, Any]], path: str | Path, title: str = "",
                         caption: str = "", stock_arms: Sequence[str] = ()) -> Path:
    """Validation Dice and macro F1 against epoch and against training minutes, one line per arm.

    ``curves``: arm -> ``{epoch, minutes, dice, macro_f1}`` lists (:func:`~.curves.arm_curves`).
    Stock arms are drawn dashed (their Dice is nnU-Net's pseudo Dice) and have no F1 line.
    """
    import textwrap

    plt = _pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5), sharey="row")
    for i, (arm, c) in enumerate(curves.items()):
        style = dict(color=f"C{i % 10}", marker="o", markersize=3, linewidth=1.4,
                     linestyle="--" if arm in stock_arms else "-")
        epochs = np.asarray(c.get("epoch", []), dtype=float) + 1  # epochs completed
        minutes = np.asarray(c.get("minutes", []), dtype=float)
        for row, key in enumerate(("dice", "macro_f1")):
            y = np.asarray(c.get(key, []), dtype=float)
            if y.size == 0 or np.all(np.isnan(y)):
                continue
            label = arm + (" (pseudo Dice)" if arm in stock_arms and key == "dice" else "")
            axes[row, 0].plot(epochs, y, label=label, **style)
            axes[row, 1].plot(minutes, y, label=label, **style)
    for row, name in enumerate(("validation Dice", "validation macro F1")):
        axes[row, 0].set_ylabel(name)
        for col in range(2):
            ax = axes[row, col]
            ax.set_ylim(0, 1.02)
            ax.grid(alpha=0.3)
    from matplotlib.ticker import MaxNLocator

    for col, name in enumerate(("epochs trained", "training minutes (cumulative epoch time)")):
        axes[1, col].set_xlabel(name)
    n_epochs = max((len(c.get("epoch", [])) for c in curves.values()), default=0)
    for row in range(2):
        axes[row, 0].xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        axes[row, 0].set_xlim(0.5, max(n_epochs, 1) + 0.5)
        axes[row, 1].set_xlim(left=0)
    axes[0, 0].set_title("per epoch")
    axes[0, 1].set_title("per minute of training")
    if not any(np.any(~np.isnan(np.asarray(c.get("macro_f1", []), dtype=float))) for c in curves.values()):
        axes[1, 0].text(0.5, 0.5, "no diagnosis head in these arms", ha="center", transform=axes[1, 0].transAxes)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    if handles:
        axes[0, 1].legend(handles, labels, fontsize=8, loc="lower right")
    fig.suptitle(title or "Learning curves")
    if caption:
        fig.text(0.01, 0.005, "\n".join(textwrap.wrap(caption, 150)), fontsize=7, va="bottom", ha="left")
        fig.tight_layout(rect=(0, 0.09, 1, 0.97))
    else:
        fig.tight_layout(rect=(0, 0, 1, 0.97))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=130, format="png")
    plt.close(fig)
    return Path(path)
