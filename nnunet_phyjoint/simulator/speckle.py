"""Speckle: random sub-resolution scatterers imaged through the scanner's point-spread function.

The received (complex, demodulated) signal is the convolution h * z of the scatterer field z
with the PSF h; its magnitude, the envelope, is fully developed speckle (Rayleigh distributed)
wherever many scatterers share a resolution cell, and coarser where they are sparse.
The PSF is a separable Gaussian whose axial width follows the pulse length and whose lateral
width follows wavelength x f-number; off the focal depth the beam widens.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import fft

from nnunet_phyjoint.simulator.grid import Grid
from nnunet_phyjoint.simulator.scanner_profiles import ScannerProfile

FWHM_PER_SIGMA = 2.3548


def gaussian_transfer(shape: tuple[int, int], sigma_px: tuple[float, float]) -> np.ndarray:
    """FFT of a Gaussian PSF with standard deviations ``sigma_px`` (axial, lateral), scaled to unit energy.

    Unit energy makes a unit-density, unit-amplitude scatterer field produce unit mean intensity,
    so echo levels in dB are directly comparable across PSF sizes.
    """
    ky = fft.fftfreq(shape[0]).astype(np.float32)[:, None]
    kx = fft.fftfreq(shape[1]).astype(np.float32)[None, :]
    transfer = np.exp(-2 * np.pi**2 * ((sigma_px[0] * ky) ** 2 + (sigma_px[1] * kx) ** 2))
    # Parseval for numpy's unnormalised FFT: sum |h|^2 = sum |H|^2 / N
    transfer *= np.sqrt(transfer.size / np.sum(transfer**2))
    return transfer.astype(np.complex64)


@lru_cache(maxsize=16)
def psf_transfers(profile: ScannerProfile, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """Transfer functions of the beam at the focus and far from it (twice as wide laterally)."""
    sigma_ax = profile.axial_fwhm_mm / FWHM_PER_SIGMA / grid.dz_mm
    sigma_lat = profile.lateral_fwhm_mm / FWHM_PER_SIGMA / grid.dx_mm
    return (gaussian_transfer(grid.shape, (sigma_ax, sigma_lat)),
            gaussian_transfer(grid.shape, (sigma_ax, 2.0 * sigma_lat)))


def focus_weight(profile: ScannerProfile, grid: Grid) -> np.ndarray:
    """Per-row weight of the defocused beam: 0 at the focal depth, 1 a focal depth away from it."""
    w = np.abs(grid.y_mm - profile.focus_depth_mm) / profile.focus_depth_mm
    return np.clip(w, 0.0, 1.0).astype(np.float32)[:, None]


def scatterer_field(rng: np.random.Generator, amplitude: np.ndarray, density: np.ndarray) -> np.ndarray:
    """Complex Gaussian scatterers: present with probability ``density``, mean intensity ``amplitude**2``."""
    shape = amplitude.shape
    present = rng.random(shape, dtype=np.float32) < density
    # dividing by sqrt(density) keeps the mean backscatter independent of how sparse the scatterers are
    scale = np.where(present, amplitude / np.sqrt(np.maximum(density, 1e-6)), 0).astype(np.float32)
    z = rng.standard_normal((2, *shape), dtype=np.float32)
    return (scale * np.sqrt(0.5, dtype=np.float32)) * (z[0] + 1j * z[1])


def complex_noise(rng: np.random.Generator, shape: tuple[int, int], level: float) -> np.ndarray:
    z = rng.standard_normal((2, *shape), dtype=np.float32)
    return (level * np.sqrt(0.5, dtype=np.float32)) * (z[0] + 1j * z[1])


def beamform(field: np.ndarray, profile: ScannerProfile, grid: Grid) -> np.ndarray:
    """The received complex signal: ``field`` convolved (circularly, hence the grid padding) with a depth-dependent PSF."""
    focused, defocused = psf_transfers(profile, grid)
    spectrum = fft.fft2(field, workers=1)
    near = fft.ifft2(spectrum * focused, workers=1)
    far = fft.ifft2(spectrum * defocused, workers=1)
    w = focus_weight(profile, grid)
    return (1 - w) * near + w * far
