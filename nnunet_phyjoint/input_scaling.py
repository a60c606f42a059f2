"""How an image of any size becomes the network's square input: one spacing for all, or each letterboxed.

- ``single-spacing``: one target spacing for the whole dataset, chosen so that the *largest* image's
  long side spans the input; smaller images keep their relative size and use less of the input
  (nnU-Net's own convention: every case at the same physical scale).
- ``letterbox``: every image is resized so that *its own* long side spans the input (aspect ratio
  kept, the rest zero padding), as the paper does. nnU-Net resamples a case from its own spacing to
  the plans' target spacing, so letterboxing is a per-case spacing: the case's pixels are given the
  spacing at which its long side, resampled to the target spacing, is exactly ``size`` pixels.
  Predictions are resampled back to each image's original size by nnU-Net's usual export.

This module needs only the standard library, so that the ONNX predictor can use it without torch.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

SINGLE_SPACING = "single-spacing"
LETTERBOX = "letterbox"
SCALINGS = (LETTERBOX, SINGLE_SPACING)
#: what ``phyjoint plan`` uses unless told otherwise: on BUS-BRA fold 0 the letterbox gave lesion-only DSC
#: 0.859 vs 0.830 at equal epochs (docs/training-recipe.md, "Input scaling on real images")
DEFAULT_SCALING = LETTERBOX
#: key of the plans' configuration (and of each preprocessed case's properties) naming the scaling
SCALING_KEY = "phyjoint_scaling"
#: key of a preprocessed case's properties keeping the spacing its reader reported
READER_SPACING_KEY = "phyjoint_reader_spacing"


def scaling_of(configuration: Mapping[str, Any]) -> str:
    """The scaling a plans configuration asks for; plans without the key are single-spacing (their origin)."""
    scaling = configuration.get(SCALING_KEY, SINGLE_SPACING)
    if scaling not in SCALINGS:
        raise ValueError(f"unknown input scaling {scaling!r} in the plans (known: {', '.join(SCALINGS)})")
    return scaling


def letterbox_spacing(spacing: Sequence[float], cropped_shape: Sequence[int], target_spacing: Sequence[float],
                      size: int) -> list[float]:
    """The spacing to give a case so that resampling it to ``target_spacing`` letterboxes it to ``size``.

    ``spacing`` and ``cropped_shape`` are the case's (after nnU-Net's transpose and crop to non-zero;
    3 entries for a 2-D image, the first a dummy axis that is left alone), ``target_spacing`` the
    plans' in-plane spacing (2 entries) and ``size`` the input side. The case's physical aspect ratio is
    kept: both in-plane axes are scaled by the same factor, chosen so that the longer physical side
    becomes ``size`` pixels at the target spacing.
    """
    if len(spacing) != len(cropped_shape):
        raise ValueError(f"spacing {list(spacing)} and shape {list(cropped_shape)} differ in length")
    n = len(target_spacing)
    in_plane = list(zip(spacing[-n:], cropped_shape[-n:], target_spacing))
    if any(s <= 0 for s, _, _ in in_plane) or any(t <= 0 for _, _, t in in_plane):
        raise ValueError(f"spacings must be positive: case {list(spacing)}, target {list(target_spacing)}")
    # the longer side in units of the target grid decides the factor
    longest = max(sp * extent / t for sp, extent, t in in_plane)
    if longest <= 0:
        raise ValueError(f"empty image (shape {list(cropped_shape)})")
    factor = size / longest
    return [float(s) for s in spacing[:-n]] + [float(sp * factor) for sp, _, _ in in_plane]
