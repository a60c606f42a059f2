"""The simulation grid: output pixels, oversampling and FFT padding, in millimetres."""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy import fft

from nnunet_phyjoint.simulator.scanner_profiles import ScannerProfile


@dataclass(frozen=True)
class Grid:
    """Scatterers live on an oversampled, padded grid; the image is its cropped, block-averaged centre.

    Padding keeps the circular FFT convolution from wrapping deep echoes onto the skin.
    """

    out_shape: tuple[int, int]      # (H, W) of the written image
    oversample: tuple[int, int]     # sim pixels per output pixel, (axial, lateral)
    pad: tuple[int, int]            # sim pixels added on each side, (axial, lateral)
    depth_mm: float
    width_mm: float

    @cached_property
    def inner_shape(self) -> tuple[int, int]:
        return self.out_shape[0] * self.oversample[0], self.out_shape[1] * self.oversample[1]

    @cached_property
    def shape(self) -> tuple[int, int]:
        return self.inner_shape[0] + 2 * self.pad[0], self.inner_shape[1] + 2 * self.pad[1]

    @property
    def dz_mm(self) -> float:
        return self.depth_mm / self.inner_shape[0]

    @property
    def dx_mm(self) -> float:
        return self.width_mm / self.inner_shape[1]

    @cached_property
    def y_mm(self) -> np.ndarray:
        """Depth of each sim row (0 at the skin surface)."""
        return ((np.arange(self.shape[0]) - self.pad[0] + 0.5) * self.dz_mm).astype(np.float32)

    @cached_property
    def x_mm(self) -> np.ndarray:
        """Lateral position of each sim column (0 at the probe centre)."""
        return ((np.arange(self.shape[1]) - self.pad[1] + 0.5) * self.dx_mm - self.width_mm / 2).astype(np.float32)

    def crop(self, a: np.ndarray) -> np.ndarray:
        """The image region of a sim-grid array."""
        py, px = self.pad
        return a[py: py + self.inner_shape[0], px: px + self.inner_shape[1]]

    def to_output(self, a: np.ndarray) -> np.ndarray:
        """Crop, then average each oversampled block into one output pixel."""
        h, w = self.out_shape
        oy, ox = self.oversample
        return self.crop(a).reshape(h, oy, w, ox).mean(axis=(1, 3))

    @property
    def output_pixel_mm(self) -> tuple[float, float]:
        return self.depth_mm / self.out_shape[0], self.width_mm / self.out_shape[1]


def grid_for(profile: ScannerProfile, out_shape: tuple[int, int], oversample: tuple[int, int] = (2, 1)) -> Grid:
    """A grid whose padding covers the widest point-spread function of ``profile``."""
    h, w = out_shape
    if h < 16 or w < 16:
        raise ValueError(f"image size {out_shape} is too small (at least 16x16)")
    dz = profile.depth_mm / (h * oversample[0])
    dx = profile.width_mm / (w * oversample[1])
    sigma_ax = profile.axial_fwhm_mm / 2.355
    sigma_lat = 2.0 * profile.lateral_fwhm_mm / 2.355  # defocused beam is about twice as wide
    pad_y = math.ceil(4 * sigma_ax / dz) + 2
    pad_x = math.ceil(4 * sigma_lat / dx) + 2
    # grow the padding until both FFT sizes are fast (5-smooth)
    ny, nx = h * oversample[0], w * oversample[1]
    while fft.next_fast_len(ny + 2 * pad_y) != ny + 2 * pad_y:
        pad_y += 1
    while fft.next_fast_len(nx + 2 * pad_x) != nx + 2 * pad_x:
        pad_x += 1
    return Grid(out_shape=(h, w), oversample=oversample, pad=(pad_y, pad_x),
                depth_mm=profile.depth_mm, width_mm=profile.width_mm)
