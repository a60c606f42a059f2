"""From tissue properties to a displayed B-mode image, the way a scanner does it.

Round-trip attenuation (dB/cm/MHz, accumulated along each beam line) darkens deep echoes;
time-gain compensation undoes a scanner-specific fraction of a nominal tissue attenuation;
electronic noise enters the receiver unattenuated, so TGC amplifies it at depth; the envelope
is log-compressed into the display's dynamic range, passed through a grey map and optionally
smoothed (speckle reduction).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from nnunet_phyjoint.simulator.anatomy import TissueMaps
from nnunet_phyjoint.simulator.grid import Grid
from nnunet_phyjoint.simulator.scanner_profiles import ScannerProfile
from nnunet_phyjoint.simulator.speckle import beamform, complex_noise, scatterer_field

NOMINAL_ATTENUATION = 0.65  # dB/cm/MHz that TGC presets assume for breast tissue


def round_trip_attenuation_db(attenuation: np.ndarray, grid: Grid, frequency_mhz: float) -> np.ndarray:
    """Two-way loss (dB) of echoes from each pixel: 2 f times the integral of alpha over the path above it."""
    dz_cm = grid.dz_mm / 10.0
    above = np.cumsum(attenuation, axis=0, dtype=np.float32) - 0.5 * attenuation
    return (2.0 * frequency_mhz * dz_cm) * above


def tgc_db(grid: Grid, profile: ScannerProfile) -> np.ndarray:
    """Time-gain compensation per row (dB), a column vector."""
    depth_cm = np.clip(grid.y_mm, 0.0, None) / 10.0
    return (profile.tgc_compensation * 2.0 * profile.frequency_mhz * NOMINAL_ATTENUATION * depth_cm)[:, None]


def log_compress(envelope_db: np.ndarray, profile: ScannerProfile) -> np.ndarray:
    """Map echo levels (dB) onto [0, 1]: the top ``dynamic_range_db`` below the white level, then the grey map."""
    low = profile.white_level_db - profile.dynamic_range_db
    v = np.clip((envelope_db - low) / profile.dynamic_range_db, 0.0, 1.0)
    return v**profile.gamma


def acquire(maps: TissueMaps, profile: ScannerProfile, grid: Grid, rng: np.random.Generator) -> np.ndarray:
    """Simulate one B-mode image (uint8, ``grid.out_shape``) of ``maps`` on scanner ``profile``."""
    loss_db = round_trip_attenuation_db(maps.attenuation, grid, profile.frequency_mhz)
    amplitude = np.power(10.0, (maps.echo_db - loss_db) / 20.0, dtype=np.float32)
    field = scatterer_field(rng, amplitude, maps.density)
    field += complex_noise(rng, grid.shape, 10.0 ** (profile.noise_db / 20.0))
    received = beamform(field, profile, grid)
    envelope = np.abs(received) * np.power(10.0, (tgc_db(grid, profile) + profile.gain_db) / 20.0, dtype=np.float32)
    envelope = grid.to_output(envelope)  # display sampling: average the oversampled envelope
    image = log_compress(20.0 * np.log10(envelope + 1e-12), profile)
    if profile.smoothing_px > 0:
        image = ndimage.gaussian_filter(image, profile.smoothing_px)
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
