"""Evaluation figures (matplotlib, Agg): ROC curves, confusion matrix, best/median/worst overlays, per scanner."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from nnunet_phyjoint.atomic_io import atomic_path
from nnunet_phyjoint.metadata import CLASS_NAMES


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # figures are files; never open a window
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png")
    _pyplot().close(fig)
    return path


def plot_roc_curves(y_true: np.ndarray, probs: np.ndarray, path: str | Path) -> Path:
    """One-vs-rest ROC curve per class present in ``y_true`` (with its AUC in the legend)."""
    from sklearn.metrics import roc_auc_score, roc_curve

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    for k, name in enumerate(CLASS_NAMES):
        positives = np.asarray(y_true) == k
        if not positives.any() or positives.all():
            ax.plot([], [], " ", label=f"{name}: absent from ground truth")
            continue
        fpr, tpr, _ = roc_curve(positives, probs[:, k])
        ax.plot(fpr, tpr, lw=1.8, label=f"{name} (AUC {roc_auc_score(positives, probs[:, k]):.3f})")
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=0.8)
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="false positive rate", ylabel="true positive rate",
           title="ROC, one vs rest")
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, Path(path))


def plot_confusion_matrix(matrix: Sequence[Sequence[int]], path: str | Path) -> Path:
    """Confusion matrix (rows = ground truth, columns = prediction) with counts."""
    from sklearn.metrics import ConfusionMatrixDisplay

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ConfusionMatrixDisplay(np.asarray(matrix), display_labels=list(CLASS_NAMES)).plot(
        ax=ax, cmap="Blues", colorbar=False, values_format="d")
    ax.set(xlabel="predicted", ylabel="ground truth", title="Confusion matrix")
    return _save(fig, Path(path))


def plot_overlays(
    panels: Sequence[tuple[str, str, np.ndarray | None, np.ndarray, np.ndarray]], path: str | Path
) -> Path:
    """One panel per ``(title, case_id, image or None, gt mask, pred mask)``: truth green, prediction red."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, max(len(panels), 1), figsize=(3.6 * max(len(panels), 1), 3.8), squeeze=False)
    for ax, (title, case_id, image, gt, pred) in zip(axes[0], panels):
        background = image if image is not None and image.shape == gt.shape else np.zeros(gt.shape)
        ax.imshow(background, cmap="gray", interpolation="nearest")
        # Truth wide and solid, prediction thin and dashed: both stay visible where they coincide.
        for mask, colour, width, style in ((gt, "lime", 2.2, "solid"), (pred, "red", 1.2, "dashed")):
            if mask.any():
                ax.contour(mask.astype(float), levels=[0.5], colors=colour, linewidths=width, linestyles=style)
        ax.set_title(f"{title}\n{case_id}", fontsize=8)
        ax.axis("off")
    if not panels:
        axes[0][0].text(0.5, 0.5, "no lesion case to show", ha="center", va="center")
        axes[0][0].axis("off")
    fig.legend(handles=[plt.Line2D([], [], c="lime", label="ground truth"),
                        plt.Line2D([], [], c="red", ls="--", label="prediction")],
               loc="lower center", ncol=2, fontsize=8, frameon=False)
    return _save(fig, Path(path))


def plot_by_group(by_group: Mapping[str, Mapping[str, Any]], kind: str, path: str | Path) -> Path:
    """Per group (``kind``: "scanner", "fold"): lesion-only DSC and (where defined) benign-vs-malignant AUC,
    bars with 95% CIs."""
    plt = _pyplot()
    panels = [(key, label) for key, label in (("dsc_lesion_only", "DSC lesion-only"), ("auc_malignant", "AUC malignant"))
              if any(np.isfinite(e.get(key, {}).get("value", np.nan)) for e in by_group.values())]
    names = list(by_group)
    fig, axes = plt.subplots(1, len(panels), figsize=(1.2 * len(names) * len(panels) + 2.5, 3.8), squeeze=False)
    for ax, (key, label) in zip(axes[0], panels):
        entries = [by_group[n].get(key, {}) for n in names]
        values = np.array([e.get("value", np.nan) for e in entries], dtype=float)
        lo = np.array([e.get("ci_low", np.nan) for e in entries], dtype=float)
        hi = np.array([e.get("ci_high", np.nan) for e in entries], dtype=float)
        err = np.nan_to_num(np.vstack([values - lo, hi - values]), nan=0.0)
        x = np.arange(len(names))
        ax.bar(x, np.nan_to_num(values), yerr=err, capsize=4, color="tab:blue", alpha=0.8)
        for xi, v in zip(x, values):
            ax.text(xi, 0.02, "n/a" if not np.isfinite(v) else f"{v:.3f}", ha="center", va="bottom", fontsize=7,
                    color="white" if np.isfinite(v) and v > 0.1 else "black")
        ax.set_xticks(x, [f"{kind} {n}\n(n={by_group[n]['n_cases']})" if kind == "fold" else
                          f"{n}\n(n={by_group[n]['n_cases']})" for n in names], fontsize=7, rotation=20)
        ax.set(ylim=(0, 1.05), ylabel=label, title=f"{label} per {kind} (95% CI)")
    return _save(fig, Path(path))
