"""Breast anatomy as acoustic property maps: skin, subcutaneous fat, glandular tissue, pectoral muscle.

Each tissue has a mean backscatter level (echogenicity, dB relative to glandular tissue), a
scatterer density (scatterers per sim pixel: low densities give the coarser, partially
developed speckle of fat) and an attenuation coefficient (dB/cm/MHz). Layer boundaries are
smooth random curves; Cooper's ligaments, fat lobules in the gland and muscle fibres come
from level sets of smooth random fields.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from scipy import ndimage

from nnunet_phyjoint.simulator.grid import Grid

# (echo dB, scatterer density, attenuation dB/cm/MHz); typical soft-tissue values
TISSUES: dict[str, tuple[float, float, float]] = {
    "skin": (-2.0, 0.9, 1.0),
    "fat": (-13.0, 0.25, 0.5),
    "gland": (0.0, 0.9, 0.75),
    "muscle": (-10.0, 0.6, 1.1),
    "deep": (-16.0, 0.4, 0.9),
}
_LAYER_ORDER = ("skin", "fat", "gland", "fat", "muscle", "deep")  # the second fat is retromammary fat


@dataclass
class TissueMaps:
    """Acoustic properties on the sim grid (all float32 arrays of ``grid.shape``)."""

    echo_db: np.ndarray
    density: np.ndarray
    attenuation: np.ndarray
    boundaries_mm: dict[str, np.ndarray] = field(default_factory=dict)  # depth of each layer bottom per column

    def set(self, where: np.ndarray, tissue: tuple[float, float, float]) -> None:
        self.echo_db[where], self.density[where], self.attenuation[where] = tissue


@dataclass(frozen=True)
class AnatomyParams:
    """One breast: layer thicknesses, their undulation, composition and the seeds of its textures."""

    skin_mm: float
    fat_mm: float
    gland_mm: float
    retro_fat_mm: float
    muscle_mm: float
    waves: tuple[tuple[float, float, float], ...]  # (amplitude mm, period mm, phase) per boundary and term
    fat_lobule_level: float    # threshold for fat islands inside the gland: lower = fattier breast
    tissue_jitter_db: tuple[float, ...]
    rib_x_fraction: float | None  # lateral rib position in [0, 1], or no rib in view
    texture_seed: int

    def to_json(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items() if k != "waves"}


def sample_anatomy(rng: np.random.Generator) -> AnatomyParams:
    """A random breast."""
    n_boundaries, n_terms = 5, 3
    waves = tuple(
        (float(rng.uniform(0.1, 1.0) * (1.0 if b == 0 else 2.5) / (t + 1)), float(rng.uniform(15, 60) / (t + 1)),
         float(rng.uniform(0, 2 * np.pi)))
        for b in range(n_boundaries) for t in range(n_terms)
    )
    return AnatomyParams(
        skin_mm=float(rng.uniform(1.2, 2.2)),
        fat_mm=float(rng.uniform(3.0, 10.0)),
        gland_mm=float(rng.uniform(9.0, 22.0)),
        retro_fat_mm=float(rng.uniform(1.0, 3.5)),
        muscle_mm=float(rng.uniform(5.0, 10.0)),
        waves=waves,
        fat_lobule_level=float(rng.uniform(0.5, 1.4)),
        tissue_jitter_db=tuple(float(v) for v in rng.normal(0.0, 1.5, size=len(TISSUES))),
        rib_x_fraction=float(rng.uniform(0.2, 0.8)) if rng.random() < 0.3 else None,
        texture_seed=int(rng.integers(2**31)),
    )


@lru_cache(maxsize=64)
def _linear_upsampling(n_out: int, n_in: int, factor: int) -> np.ndarray:
    """(n_out, n_in) matrix of linear interpolation from a grid ``factor`` times coarser."""
    pos = np.arange(n_out, dtype=np.float64) / factor
    lo = np.clip(np.floor(pos).astype(int), 0, n_in - 2)
    frac = pos - lo
    m = np.zeros((n_out, n_in), dtype=np.float32)
    m[np.arange(n_out), lo] = 1 - frac
    m[np.arange(n_out), lo + 1] = frac
    return m


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma_px: tuple[float, float]) -> np.ndarray:
    """Zero-mean, unit-variance Gaussian random field with correlation lengths ``sigma_px`` (y, x).

    Filtered on a coarse grid and linearly upsampled (two small matrix products), which is much
    cheaper than filtering at full size.
    """
    fy, fx = (max(1, int(s // 3)) for s in sigma_px)
    cy, cx = shape[0] // fy + 2, shape[1] // fx + 2
    coarse = ndimage.gaussian_filter(rng.standard_normal((cy, cx), dtype=np.float32),
                                     (sigma_px[0] / fy, sigma_px[1] / fx), mode="wrap")
    coarse /= coarse.std() + 1e-12
    if fy > 1:
        coarse = _linear_upsampling(shape[0], cy, fy) @ coarse
    if fx > 1:
        coarse = coarse @ _linear_upsampling(shape[1], cx, fx).T
    return coarse[: shape[0], : shape[1]]


def _boundary(x_mm: np.ndarray, base: float, waves) -> np.ndarray:
    y = np.full_like(x_mm, base)
    for amp, period, phase in waves:
        y += amp * np.sin(2 * np.pi * x_mm / period + phase)
    return y


def tissue_maps(params: AnatomyParams, grid: Grid, shift_mm: float = 0.0) -> TissueMaps:
    """Acoustic property maps of one breast seen through ``grid``, the probe moved laterally by ``shift_mm``.

    Textures are generated over a wider field so that a shifted view of the same breast shows the
    same structures moved sideways (follow-up images of one patient).
    """
    ny, nx = grid.shape
    margin = int(np.ceil(0.25 * nx))
    shift_px = int(round(np.clip(shift_mm / grid.dx_mm, -margin, margin)))
    rng = np.random.default_rng(params.texture_seed)

    def field(sigma_mm: tuple[float, float]) -> np.ndarray:
        wide = smooth_noise(rng, (ny, nx + 2 * margin), (sigma_mm[0] / grid.dz_mm, sigma_mm[1] / grid.dx_mm))
        return wide[:, margin + shift_px: margin + shift_px + nx]

    x = grid.x_mm + shift_px * grid.dx_mm
    y = grid.y_mm[:, None]
    thickness = (params.skin_mm, params.fat_mm, params.gland_mm, params.retro_fat_mm, params.muscle_mm)
    bottoms, depth = [], 0.0
    for b, t in enumerate(thickness):
        depth += t
        bottoms.append(_boundary(x, depth, params.waves[3 * b: 3 * b + 3]))
    for b in range(1, len(bottoms)):  # undulations must not make a layer negative
        bottoms[b] = np.maximum(bottoms[b], bottoms[b - 1] + 0.3)

    layer = np.zeros((ny, nx), dtype=np.int8)
    for bottom in bottoms:
        layer += (y >= bottom[None, :]).astype(np.int8)
    maps = TissueMaps(
        echo_db=np.empty((ny, nx), np.float32), density=np.empty((ny, nx), np.float32),
        attenuation=np.empty((ny, nx), np.float32),
        boundaries_mm=dict(zip(("skin", "fat", "gland", "retro_fat", "muscle"), bottoms)),
    )
    jitter = dict(zip(TISSUES, params.tissue_jitter_db))
    for i, name in enumerate(_LAYER_ORDER):
        echo, dens, att = TISSUES[name]
        maps.set(layer == i, (echo + jitter[name], dens, att))
    # above the skin is coupling gel: no scatterers, no attenuation (only the FFT padding reaches here)
    maps.set(np.broadcast_to(y < 0, (ny, nx)), (-80.0, 0.0, 0.0))
    fat = (layer == 1) | (layer == 3)
    gland = layer == 2

    # fat: slow echo variation, and Cooper's ligaments as thin bright level-set curves
    maps.echo_db += np.where(fat, 2.0 * field((1.5, 3.0)), 0)
    ligaments = fat & (np.abs(field((1.2, 2.5))) < 0.12)
    maps.set(ligaments, (1.0, 0.9, 0.75))

    # gland: fat lobules (dark islands) and fibrous streaks, both elongated along the skin
    lobules = gland & (field((0.5, 2.2)) > params.fat_lobule_level)
    maps.set(lobules, (TISSUES["fat"][0] + jitter["fat"], TISSUES["fat"][1], TISSUES["fat"][2]))
    streaks = gland & ~lobules & (np.abs(field((0.6, 3.0))) < 0.15)
    maps.echo_db[streaks] += 5.0

    # muscle fibres: thin bright striations roughly parallel to the fascia
    fibres = (layer == 4) & (field((0.2, 4.0)) > 0.7)
    maps.echo_db[fibres] += 8.0

    # specular interfaces: skin entry line, dermis, superficial and pectoral fascia
    for bottom, half_width, boost in ((np.zeros_like(x), 0.25, 12.0), (bottoms[0], 0.2, 6.0),
                                      (bottoms[1], 0.2, 5.0), (bottoms[3], 0.3, 10.0)):
        line = np.abs(y - bottom[None, :]) < half_width
        maps.echo_db[line] = np.maximum(maps.echo_db[line], boost)
        maps.density[line] = 1.0

    if params.rib_x_fraction is not None:
        _add_rib(maps, params, grid, x, y, bottoms[4])
    # tissue boundaries are not razor sharp at the scale of a few wavelengths
    maps.echo_db = ndimage.gaussian_filter(maps.echo_db, (0.12 / grid.dz_mm, 0.25 / grid.dx_mm), truncate=2.5)
    return maps


def _add_rib(maps: TissueMaps, params: AnatomyParams, grid: Grid, x: np.ndarray, y: np.ndarray,
             muscle_bottom: np.ndarray) -> None:
    """A rib below the muscle: a bright curved surface and an almost complete acoustic shadow."""
    cx = grid.width_mm * (params.rib_x_fraction - 0.5)
    rx, ry = 7.0, 3.5
    cy = float(np.interp(cx, x, muscle_bottom)) + ry + 1.0
    if cy - ry > grid.depth_mm:
        return
    rho = np.sqrt(((x[None, :] - cx) / rx) ** 2 + ((y - cy) / ry) ** 2)
    bone = rho < 1.0
    maps.set(bone, (-20.0, 0.5, 12.0))
    surface = (rho >= 0.85) & (rho < 1.0) & (y < cy)
    maps.set(surface, (12.0, 1.0, 1.0))
