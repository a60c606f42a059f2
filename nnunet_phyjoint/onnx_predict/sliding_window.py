"""nnU-Net's sliding-window prediction of one network in numpy, with the diagnosis of every forward pass.

Same steps and number formats as ``nnUNetPredictor.predict_sliding_window_return_logits`` on the CPU:
zero padding to the patch size (content centred), tiles at ``tile_step_size`` of the patch, mirrored
passes averaged in float32, Gaussian-weighted accumulation in float16 (nnU-Net accumulates logits in
half precision), division by the summed weights. PhyJoint's diagnosis is the mean softmax over every
forward pass (tiles and mirrors), as :class:`nnunet_phyjoint.inference.predictor.PhyJointPredictor`
computes it. The mirrored copies of a tile go through the network as one batch.
"""
from __future__ import annotations

import itertools
from functools import lru_cache
from typing import Callable, Sequence

import numpy as np

# batch (B, C, *patch) float32 -> (segmentation logits (B, K, *patch), diagnosis logits (B, n_classes))
Runner = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def pad_to_patch(data: np.ndarray, patch_size: Sequence[int]) -> tuple[np.ndarray, tuple[slice, ...]]:
    """Zero-pad the last axes of ``data`` up to ``patch_size`` (never crop) as acvl_utils' ``pad_nd_image``.

    Returns the padded array and the slicer that takes the padding off again.
    """
    old = np.array(data.shape)
    new = np.array([*data.shape[:data.ndim - len(patch_size)], *patch_size])
    new = np.maximum(new, old)
    below = (new - old) // 2
    above = (new - old) // 2 + (new - old) % 2
    padded = np.pad(data, list(zip(below, above)), mode="constant", constant_values=0) if (new != old).any() else data
    return padded, tuple(slice(int(b), int(n - a)) for b, a, n in zip(below, above, new))


def window_starts(image_size: Sequence[int], tile_size: Sequence[int], step: float) -> list[list[int]]:
    """Tile start positions per axis, as nnU-Net's ``compute_steps_for_sliding_window``."""
    steps = []
    for size, tile in zip(image_size, tile_size):
        n = int(np.ceil((size - tile) / (tile * step))) + 1
        stride = (size - tile) / (n - 1) if n > 1 else 99999999999
        steps.append([int(np.round(stride * i)) for i in range(n)])
    return steps


@lru_cache(maxsize=4)
def gaussian_weights(tile_size: tuple[int, ...], sigma_scale: float = 1.0 / 8, value_scaling_factor: float = 10.0
                     ) -> np.ndarray:
    """nnU-Net's ``compute_gaussian`` (a delta filtered by scipy's truncated Gaussian), as float16."""
    weights = np.ones((), dtype=np.float64)
    for size in tile_size:
        sigma = size * sigma_scale
        radius = int(4.0 * sigma + 0.5)  # scipy.ndimage.gaussian_filter's default truncate=4
        kernel = np.exp(-0.5 / (sigma * sigma) * np.arange(-radius, radius + 1) ** 2)
        kernel /= kernel.sum()
        axis = np.zeros(size)
        centre = size // 2
        for i in range(max(0, centre - radius), min(size, centre + radius + 1)):
            axis[i] = kernel[i - centre + radius]
        weights = np.multiply.outer(weights, axis)
    weights /= np.max(weights) / value_scaling_factor
    half = weights.astype(np.float16)
    half[half == 0] = half[half != 0].min()  # as nnU-Net: no zero weight, or padding could divide by zero
    half.setflags(write=False)
    return half


def mirror_combinations(mirror_axes: Sequence[int] | None) -> list[tuple[int, ...]]:
    """Array axes (of a (B, C, ...) batch) flipped in each mirrored pass, nnU-Net's order; [] without mirroring."""
    if not mirror_axes:
        return []
    axes = [int(m) + 2 for m in mirror_axes]
    return [c for i in range(len(axes)) for c in itertools.combinations(axes, i + 1)]


def predict_tile(run: Runner, tile: np.ndarray, flips: list[tuple[int, ...]]) -> tuple[np.ndarray, np.ndarray]:
    """Mirror-averaged segmentation logits (1, K, *patch) float32 and the diagnosis softmax of each pass."""
    batch = np.concatenate([tile, *(np.flip(tile, axes) for axes in flips)], axis=0)
    seg, cls = run(np.ascontiguousarray(batch, dtype=np.float32))
    seg = np.asarray(seg, dtype=np.float32)
    prediction = seg[:1].copy()
    for i, axes in enumerate(flips, start=1):
        prediction += np.flip(seg[i:i + 1], axes)
    if flips:
        prediction /= len(flips) + 1
    return prediction, softmax(np.asarray(cls, dtype=np.float32))


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float32."""
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def predict_sliding_window(run: Runner, data: np.ndarray, patch_size: Sequence[int], num_heads: int,
                           mirror_axes: Sequence[int] | None, tile_step_size: float = 0.5,
                           use_gaussian: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Segmentation logits (K, 1, h, w) float16 of a preprocessed 2-D case (C, 1, h, w), and its mean diagnosis
    softmax over all tiles and mirrors."""
    patch_size = tuple(int(p) for p in patch_size)
    padded, unpad = pad_to_patch(data, patch_size)
    flips = mirror_combinations(mirror_axes)
    logits = np.zeros((num_heads, *padded.shape[1:]), dtype=np.float16)
    weight_sum = np.zeros(padded.shape[1:], dtype=np.float16)
    gaussian = gaussian_weights(patch_size) if use_gaussian else np.float16(1)
    starts = window_starts(padded.shape[2:], patch_size, tile_step_size)
    diagnoses = []
    for d in range(padded.shape[1]):
        for sy in starts[0]:
            for sx in starts[1]:
                window = (slice(sy, sy + patch_size[0]), slice(sx, sx + patch_size[1]))
                tile = padded[(slice(None), d, *window)][None]
                prediction, diagnosis = predict_tile(run, tile, flips)
                prediction = prediction[0]
                if use_gaussian:
                    prediction *= gaussian.astype(np.float32)
                target = (slice(None), d, *window)
                logits[target] = (logits[target].astype(np.float32) + prediction).astype(np.float16)
                weight_sum[(d, *window)] += gaussian
                diagnoses.append(diagnosis)
    logits = (logits.astype(np.float32) / weight_sum.astype(np.float32)).astype(np.float16)
    if np.isinf(logits).any():
        raise RuntimeError("infinite logits after the sliding-window average (float16 overflow)")
    return logits[(slice(None), *unpad[1:])], np.concatenate(diagnoses).mean(axis=0)
