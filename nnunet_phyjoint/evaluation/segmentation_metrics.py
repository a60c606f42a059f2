"""Per-case overlap and boundary metrics for binary lesion masks, and their aggregation.

Conventions (the papers differ; we report both where it matters):

- DSC / Jaccard when ground truth and prediction are both empty: 1. Such cases count in the
  "all-image" mean and are excluded from the "lesion-only" mean (ground truth non-empty).
- HD95 is undefined (NaN) when either mask is empty; aggregates say how many were undefined.
- HD95 = max of the two directed 95th percentiles of the distances from the boundary pixels
  of one mask to the nearest boundary pixel of the other (the medpy / MONAI definition).
  A boundary pixel is a foreground pixel with a 4-connected background neighbour (pixels on
  the image border count as boundary).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class CaseSegmentationMetrics:
    """Metrics of one case; NaN where a metric is undefined."""

    dsc: float
    jaccard: float
    hd95_px: float
    hd95_mm: float
    gt_pixels: int
    pred_pixels: int

    @property
    def gt_empty(self) -> bool:
        return self.gt_pixels == 0

    @property
    def pred_empty(self) -> bool:
        return self.pred_pixels == 0

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def dice_jaccard(gt: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    """(DSC, Jaccard) of two binary masks; (1, 1) when both are empty."""
    gt, pred = _binary_pair(gt, pred)
    intersection = np.count_nonzero(gt & pred)
    total = np.count_nonzero(gt) + np.count_nonzero(pred)
    if total == 0:
        return 1.0, 1.0
    union = total - intersection
    return float(2.0 * intersection / total), float(intersection / union)


def boundary(mask: np.ndarray) -> np.ndarray:
    """Foreground pixels with a 4-connected background neighbour (image border = background)."""
    mask = np.asarray(mask, dtype=bool)
    return mask & ~ndimage.binary_erosion(mask, structure=ndimage.generate_binary_structure(mask.ndim, 1),
                                          border_value=0)


def directed_surface_distances(
    source: np.ndarray, target: np.ndarray, spacing: Sequence[float] | None = None
) -> np.ndarray:
    """Distance from each boundary pixel of ``source`` to the nearest boundary pixel of ``target``."""
    return _directed(*_cropped_boundaries(source, target), spacing)


def hd95(gt: np.ndarray, pred: np.ndarray, spacing: Sequence[float] | None = None) -> float:
    """95th-percentile Hausdorff distance (pixels, or the units of ``spacing``); NaN if either mask is empty."""
    gt, pred = _binary_pair(gt, pred)
    if not gt.any() or not pred.any():
        return float("nan")
    gt_b, pred_b = _cropped_boundaries(gt, pred)
    d_gp, d_pg = _directed(gt_b, pred_b, spacing), _directed(pred_b, gt_b, spacing)
    return float(max(np.percentile(d_gp, 95), np.percentile(d_pg, 95)))


def _cropped_boundaries(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both boundaries, cut to the box that holds all their pixels.

    Boundaries are found on the full image (so the image border counts as background);
    the distance transform then only needs the box, since every boundary pixel lies in it.
    """
    a_b, b_b = boundary(a), boundary(b)
    box = ndimage.find_objects((a_b | b_b).astype(np.uint8))
    if not box:
        return a_b, b_b
    return a_b[box[0]], b_b[box[0]]


def _directed(src_b: np.ndarray, tgt_b: np.ndarray, spacing: Sequence[float] | None) -> np.ndarray:
    if not src_b.any() or not tgt_b.any():
        return np.empty(0)
    # The Euclidean distance transform of the non-boundary gives, at every pixel, the
    # distance to the closest target boundary pixel, in the units of `sampling`.
    dist = ndimage.distance_transform_edt(~tgt_b, sampling=None if spacing is None else tuple(spacing))
    return dist[src_b]


def case_metrics(gt: np.ndarray, pred: np.ndarray, spacing_mm: Sequence[float] | None = None) -> CaseSegmentationMetrics:
    """All per-case segmentation metrics; ``hd95_mm`` is NaN when the spacing is unknown."""
    gt, pred = _binary_pair(gt, pred)
    dsc, jac = dice_jaccard(gt, pred)
    hd_px = hd95(gt, pred)
    hd_mm = hd95(gt, pred, spacing_mm) if spacing_mm is not None else float("nan")
    return CaseSegmentationMetrics(
        dsc=dsc, jaccard=jac, hd95_px=hd_px, hd95_mm=hd_mm,
        gt_pixels=int(np.count_nonzero(gt)), pred_pixels=int(np.count_nonzero(pred)),
    )


def aggregate(columns: dict[str, np.ndarray], weights: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Summary means over cases, one per row of ``weights`` (per-case counts, e.g. bootstrap resamples).

    ``columns`` holds per-case arrays ``dsc``, ``jaccard``, ``hd95_px``, ``hd95_mm`` and
    ``gt_pixels``; ``weights`` is ``(B, n_cases)`` (default: one row of ones, the plain means).
    Returns arrays of length B; a mean over no defined value is NaN.
    """
    n = len(columns["dsc"])
    weights = np.ones((1, n)) if weights is None else np.atleast_2d(np.asarray(weights, dtype=np.float64))
    lesion = columns["gt_pixels"] > 0
    everywhere = np.ones(n, dtype=bool)
    out = {
        "dsc_all_image": weighted_mean(columns["dsc"], weights, everywhere),
        "jaccard_all_image": weighted_mean(columns["jaccard"], weights, everywhere),
        "dsc_lesion_only": weighted_mean(columns["dsc"], weights, lesion),
        "jaccard_lesion_only": weighted_mean(columns["jaccard"], weights, lesion),
    }
    for unit in ("px", "mm"):
        values = columns[f"hd95_{unit}"]
        out[f"hd95_{unit}"] = weighted_mean(values, weights, np.isfinite(values))
    return out


def weighted_mean(values: np.ndarray, weights: np.ndarray, include: np.ndarray) -> np.ndarray:
    """Per row of ``weights``, the weighted mean of ``values`` over the cases in ``include`` (NaN if none)."""
    w = weights * include
    total = w.sum(axis=1)
    sums = w @ np.where(include, values, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, sums / np.where(total > 0, total, 1.0), np.nan)


def _binary_pair(gt: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    gt, pred = np.asarray(gt, dtype=bool), np.asarray(pred, dtype=bool)
    if gt.shape != pred.shape:
        raise ValueError(f"ground truth shape {gt.shape} differs from prediction shape {pred.shape}")
    return gt, pred
