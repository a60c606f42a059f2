"""Image resizing in numpy that reproduces what nnU-Net's ``resample_data_or_seg`` gets from scikit-image.

nnU-Net resizes every 2-D slice with ``skimage.transform.resize(x, shape, order, mode="edge",
anti_aliasing=False)`` on float64 data, which is ``scipy.ndimage.zoom(..., mode="nearest",
grid_mode=True)`` followed by clipping to the input's value range. Resizing is separable, so it is one
matrix per axis: ``out = R_rows @ x @ R_cols.T``. Each matrix is built here the way scipy computes it
(edge padding of 12 samples before the cubic B-spline prefilter, reflect-type filter initialisation,
pixel-centre coordinates ``(i + 0.5) * n_in / n_out - 0.5``), so results agree with scikit-image to
floating-point rounding (``tests/test_onnx_preprocessing.py`` compares them).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

SUPPORTED_ORDERS = (0, 1, 3)
_SPLINE_PAD = 12  # scipy pads this many edge samples before a spline prefilter in mode "nearest"
_POLE = np.sqrt(3.0) - 2.0  # the cubic B-spline's single pole


def resize_slice(image: np.ndarray, shape: tuple[int, int], order: int) -> np.ndarray:
    """``skimage.transform.resize(image, shape, order, mode="edge", anti_aliasing=False)`` of a 2-D float array."""
    if order not in SUPPORTED_ORDERS:
        raise ValueError(f"interpolation order {order} is not supported (supported: {SUPPORTED_ORDERS})")
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 2:
        raise ValueError(f"expected a 2-D slice, got shape {image.shape}")
    rows, cols = _matrix(image.shape[0], int(shape[0]), order), _matrix(image.shape[1], int(shape[1]), order)
    if order == 0:
        out = image[rows][:, cols]
    else:
        out = rows @ image @ cols.T
    # scikit-image clips the interpolated values to the input range (splines overshoot at edges)
    return np.clip(out, image.min(), image.max())


@lru_cache(maxsize=64)
def _matrix(n_in: int, n_out: int, order: int) -> np.ndarray:
    """The linear map of one axis (an index array for order 0); cached, images of one size share it."""
    coords = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    if order == 0:
        return np.clip(np.floor(coords + 0.5).astype(np.int64), 0, n_in - 1)
    if order == 1:
        coords = np.clip(coords, 0, n_in - 1)
        low = np.floor(coords).astype(np.int64)
        frac = coords - low
        high = np.minimum(low + 1, n_in - 1)
        matrix = np.zeros((n_out, n_in))
        np.add.at(matrix, (np.arange(n_out), low), 1 - frac)
        np.add.at(matrix, (np.arange(n_out), high), frac)
        return matrix
    return _cubic_matrix(n_in, n_out, coords)


def _cubic_matrix(n_in: int, n_out: int, coords: np.ndarray) -> np.ndarray:
    padded_len = n_in + 2 * _SPLINE_PAD
    # rows of the padded signal as a function of the input: edge padding is a 0/1 matrix
    source = np.clip(np.arange(padded_len) - _SPLINE_PAD, 0, n_in - 1)
    coefficients = _cubic_prefilter(np.eye(n_in)[source])  # (padded_len, n_in)
    x = coords + _SPLINE_PAD  # inside the padding: scipy evaluates the spline there, no clamping
    start = np.floor(x).astype(np.int64) - 1
    t = x - np.floor(x)
    weights = np.stack([(1 - t) ** 3, 3 * t ** 3 - 6 * t ** 2 + 4, -3 * t ** 3 + 3 * t ** 2 + 3 * t + 1, t ** 3],
                       axis=1) / 6.0
    matrix = np.zeros((n_out, n_in))
    for k in range(4):
        matrix += weights[:, k:k + 1] * coefficients[np.clip(start + k, 0, padded_len - 1)]
    return matrix


def _cubic_prefilter(signal: np.ndarray) -> np.ndarray:
    """Cubic B-spline interpolation coefficients along axis 0 (causal + anti-causal recursion, reflect start)."""
    z = _POLE
    c = signal * 6.0  # the filter's gain (1 - z)(1 - 1/z)
    n = c.shape[0]
    if n == 1:
        return c / 6.0
    powers = z ** np.arange(1, n)
    z_n = z ** n
    first = c[0].copy()
    c[0] = c[0] + z_n * c[n - 1] + np.tensordot(powers, c[1:] + z_n * c[n - 2::-1][:n - 1], axes=1)
    c[0] = c[0] * z / (1 - z_n * z_n) + first
    for i in range(1, n):
        c[i] += z * c[i - 1]
    c[n - 1] *= z / (z - 1)
    for i in range(n - 2, -1, -1):
        c[i] = z * (c[i + 1] - c[i])
    return c
