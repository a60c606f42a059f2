"""A grid of example images (rows: class, columns: scanner/source) with lesion contours, from any PRECISE-layout folder."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from nnunet_phyjoint.atomic_io import atomic_path
from nnunet_phyjoint.simulator.cohort import CODE_CLASSES, PRECISE_NAME

ROW_ORDER = ("normal", "benign", "malignant")


def _examples(dataset_dir: Path) -> dict[tuple[str, str], Path]:
    """(class, source) -> the first image (by name, first visits before follow-ups) of that kind."""
    found: dict[tuple[str, str], Path] = {}
    for label in ROW_ORDER:
        folder = dataset_dir / label
        if not folder.is_dir():
            continue
        names = sorted(p.name for p in folder.iterdir())
        for follow_up_pass in (False, True):
            for name in names:
                m = PRECISE_NAME.match(name)
                if not m or m["mask"] or CODE_CLASSES.get(m["code"]) != label:
                    continue
                if (m["code"] in ("100", "101")) != follow_up_pass:
                    continue
                found.setdefault((label, m["source"]), folder / name)
    return found


def save_preview(dataset_dir: Path | str, png_path: Path | str, max_sources: int = 8, cell_inches: float = 1.9,
                 dpi: int = 90) -> Path:
    """Write ``png_path``: one example per class (rows) and source/scanner (columns), lesion outlined in red."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dataset_dir, png_path = Path(dataset_dir), Path(png_path)
    examples = _examples(dataset_dir)
    if not examples:
        raise FileNotFoundError(f"no PRECISE-named images (PACE_<subject>_<code>_<source>.png) under {dataset_dir}")
    sources = sorted({s for _, s in examples})[:max_sources]
    fig, axes = plt.subplots(len(ROW_ORDER), len(sources), figsize=(cell_inches * len(sources), cell_inches * 3.1),
                             squeeze=False)
    for r, label in enumerate(ROW_ORDER):
        for c, source in enumerate(sources):
            ax = axes[r, c]
            ax.set_xticks([]), ax.set_yticks([])
            path = examples.get((label, source))
            if path is None:
                ax.text(0.5, 0.5, "none", ha="center", va="center", transform=ax.transAxes)
            else:
                image = np.asarray(Image.open(path).convert("L"))
                ax.imshow(image, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
                mask_path = path.with_name(path.stem + "_mask.png")
                if mask_path.is_file():
                    mask = np.asarray(Image.open(mask_path).convert("L")) > 0
                    if mask.any() and mask.shape == image.shape:
                        ax.contour(mask, levels=[0.5], colors="red", linewidths=0.8)
            if r == 0:
                ax.set_title(source, fontsize=9)
            if c == 0:
                ax.set_ylabel(label, fontsize=9)
    fig.tight_layout(pad=0.3)
    try:
        with atomic_path(png_path) as tmp:
            fig.savefig(tmp, dpi=dpi)
    finally:
        plt.close(fig)
    return png_path
