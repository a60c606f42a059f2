"""Breast lesions by class, following the BI-RADS ultrasound lexicon.

Benign: oval, circumscribed, parallel to the skin (wider than tall); fibroadenomas are
homogeneous and hypoechoic, cysts anechoic with posterior enhancement (low attenuation).
Malignant: irregular, angular or spiculated margins, not parallel (taller than wide),
heterogeneous, often an echogenic halo and microcalcifications, and posterior acoustic
shadowing (high attenuation). The shape is a polar radius function r(theta): an ellipse
modulated by low-order harmonics (lobulation) plus narrow angular spikes (spiculation).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np
from scipy.spatial import ConvexHull, QhullError

from nnunet_phyjoint.simulator.anatomy import TissueMaps, smooth_noise
from nnunet_phyjoint.simulator.grid import Grid


@dataclass(frozen=True)
class LesionParams:
    label: str                      # "benign" or "malignant"
    kind: str                       # "cyst", "fibroadenoma" or "carcinoma"
    half_width_mm: float
    half_height_mm: float
    rotation_rad: float
    harmonics: tuple[tuple[int, float, float], ...]   # (order, relative amplitude, phase)
    spikes: tuple[tuple[float, float, float], ...]    # (angle, height relative to the short axis, angular width)
    x_fraction: float               # lateral centre, fraction of the image width
    depth_fraction: float           # centre position within the glandular layer, 0 = top
    echo_db: float                  # mean backscatter relative to glandular tissue
    density: float
    attenuation: float              # dB/cm/MHz: > tissue gives shadowing, < tissue enhancement
    heterogeneity_db: float
    capsule_db: float | None        # thin specular rim (circumscribed margin)
    halo_db: float | None           # thick echogenic rim around the mass (not part of the mask)
    n_calcifications: int
    texture_seed: int

    def to_json(self) -> dict:
        d = asdict(self)
        d["harmonics"] = [list(h) for h in self.harmonics]
        d["spikes"] = [list(s) for s in self.spikes]
        return d


def sample_lesion(rng: np.random.Generator, label: str) -> LesionParams:
    """A random lesion of class ``label`` ("benign" or "malignant")."""
    u = lambda lo, hi: float(rng.uniform(lo, hi))  # noqa: E731
    if label == "benign":
        cyst = rng.random() < 0.3
        a = u(3.5, 9.0) if cyst else u(4.0, 11.0)
        b = a / u(1.3, 2.2)
        harmonics = tuple((k, u(0.0, 0.04), u(0, 2 * np.pi)) for k in (2, 3, 4))
        if not cyst and rng.random() < 0.35:  # gently macrolobulated fibroadenoma
            harmonics += ((int(rng.integers(3, 6)), u(0.05, 0.09), u(0, 2 * np.pi)),)
        return LesionParams(
            label="benign", kind="cyst" if cyst else "fibroadenoma", half_width_mm=a, half_height_mm=b,
            rotation_rad=u(-0.2, 0.2), harmonics=harmonics, spikes=(), x_fraction=u(0.3, 0.7),
            depth_fraction=u(0.1, 0.6),
            echo_db=u(-45.0, -38.0) if cyst else u(-27.0, -18.0),
            density=u(0.02, 0.05) if cyst else u(0.6, 1.0),
            attenuation=u(0.02, 0.1) if cyst else u(0.3, 0.7),
            heterogeneity_db=0.5 if cyst else u(0.5, 2.0),
            capsule_db=u(2.0, 8.0) if rng.random() < 0.7 else None,
            halo_db=None, n_calcifications=0, texture_seed=int(rng.integers(2**31)),
        )
    if label == "malignant":
        b = u(4.5, 9.0)
        a = b * u(0.6, 1.05)
        harmonics = tuple((k, u(0.03, 0.12), u(0, 2 * np.pi)) for k in range(2, 8))
        harmonics += tuple((int(k), u(0.02, 0.05), u(0, 2 * np.pi)) for k in rng.integers(9, 17, size=3))
        n_spikes = int(rng.integers(3, 10)) if rng.random() < 0.6 else 0
        spikes = tuple((u(0, 2 * np.pi), u(0.12, 0.4), u(0.03, 0.08)) for _ in range(n_spikes))
        return LesionParams(
            label="malignant", kind="carcinoma", half_width_mm=a, half_height_mm=b, rotation_rad=u(-0.35, 0.35),
            harmonics=harmonics, spikes=spikes, x_fraction=u(0.3, 0.7), depth_fraction=u(0.1, 0.6),
            echo_db=u(-25.0, -15.0), density=u(0.4, 0.9),
            attenuation=u(1.3, 2.4) if rng.random() < 0.85 else u(0.8, 1.0),
            heterogeneity_db=u(3.0, 6.0), capsule_db=None,
            halo_db=u(2.0, 5.0) if rng.random() < 0.5 else None,
            n_calcifications=int(rng.integers(3, 12)) if rng.random() < 0.4 else 0,
            texture_seed=int(rng.integers(2**31)),
        )
    raise ValueError(f"no lesion model for class {label!r}")


def follow_up(params: LesionParams, rng: np.random.Generator) -> LesionParams:
    """The same lesion at a later visit: a little larger (malignant grows more), probe slightly rotated."""
    growth = float(rng.uniform(1.0, 1.25) if params.label == "malignant" else rng.uniform(0.95, 1.08))
    return replace(
        params, half_width_mm=params.half_width_mm * growth, half_height_mm=params.half_height_mm * growth,
        rotation_rad=params.rotation_rad + float(rng.uniform(-0.1, 0.1)),
        depth_fraction=float(np.clip(params.depth_fraction + rng.uniform(-0.1, 0.1), 0.0, 1.0)),
        texture_seed=int(rng.integers(2**31)),
    )


def radius_mm(params: LesionParams, theta: np.ndarray) -> np.ndarray:
    """Boundary radius at angle ``theta`` (lesion frame, radians)."""
    a, b = params.half_width_mm, params.half_height_mm
    r = a * b / np.sqrt((b * np.cos(theta)) ** 2 + (a * np.sin(theta)) ** 2)
    modulation = np.ones_like(theta)
    for k, amp, phase in params.harmonics:
        modulation += amp * np.cos(k * theta + phase)
    r = r * modulation
    short = min(a, b)
    for angle, height, width in params.spikes:
        d = (theta - angle + np.pi) % (2 * np.pi) - np.pi  # wrapped angular distance
        r = r + height * short * np.exp(-0.5 * (d / width) ** 2)
    return r


def _radius_lookup(params: LesionParams, theta: np.ndarray, samples: int = 4096) -> np.ndarray:
    """``radius_mm`` tabulated once and interpolated: far cheaper than evaluating it per pixel."""
    table_theta = np.linspace(-np.pi, np.pi, samples + 1)
    return np.interp(theta, table_theta, radius_mm(params, table_theta)).astype(np.float32)


def _extent_mm(params: LesionParams) -> float:
    amp = sum(abs(h[1]) for h in params.harmonics)
    spike = max((s[1] for s in params.spikes), default=0.0) * min(params.half_width_mm, params.half_height_mm)
    return max(params.half_width_mm, params.half_height_mm) * (1 + amp) * 1.3 + spike + 1.0


def paint_lesion(maps: TissueMaps, params: LesionParams, grid: Grid, center_mm: tuple[float, float]) -> np.ndarray:
    """Write the lesion's acoustic properties into ``maps``; return its region on the sim grid (bool)."""
    cy, cx = center_mm
    ext = _extent_mm(params)
    rows = np.nonzero(np.abs(grid.y_mm - cy) <= ext)[0]
    cols = np.nonzero(np.abs(grid.x_mm - cx) <= ext)[0]
    mask = np.zeros(grid.shape, dtype=bool)
    if rows.size == 0 or cols.size == 0:
        return mask
    box = np.s_[rows[0]: rows[-1] + 1, cols[0]: cols[-1] + 1]
    dy = grid.y_mm[box[0]][:, None] - cy
    dx = grid.x_mm[box[1]][None, :] - cx
    c, s = np.cos(params.rotation_rad), np.sin(params.rotation_rad)
    u, v = dx * c + dy * s, -dx * s + dy * c
    theta = np.arctan2(v, u)
    ratio = np.hypot(u, v) / _radius_lookup(params, theta)
    inside = ratio <= 1.0

    echo, density, att = maps.echo_db[box], maps.density[box], maps.attenuation[box]  # views
    rng = np.random.default_rng(params.texture_seed)
    if params.halo_db is not None:
        halo = (ratio > 1.0) & (ratio <= 1.25)
        echo[halo] = np.maximum(echo[halo], params.halo_db)
        density[halo] = 0.9
    if params.capsule_db is not None:
        # a specular rim echoes mostly where it faces the probe (top and bottom)
        rim = (ratio > 1.0) & (ratio <= 1.0 + 0.35 / max(params.half_height_mm, 1e-3)) & (np.abs(dy) > 0.5 * np.abs(dx))
        echo[rim] = np.maximum(echo[rim], params.capsule_db)
        density[rim] = 1.0
    texture = smooth_noise(rng, inside.shape, (0.8 / grid.dz_mm, 0.8 / grid.dx_mm))
    echo[inside] = params.echo_db + params.heterogeneity_db * texture[inside]
    density[inside] = params.density
    att[inside] = params.attenuation
    if params.n_calcifications:
        core = np.flatnonzero(ratio.ravel() < 0.8)
        if core.size:
            dots = rng.choice(core, size=min(params.n_calcifications, core.size), replace=False)
            idx = np.unravel_index(dots, echo.shape)
            echo[idx] = 14.0
            density[idx] = 1.0
    mask[box] = inside
    return mask


def mask_shape_stats(mask: np.ndarray, pixel_mm: tuple[float, float] = (1.0, 1.0)) -> dict[str, float]:
    """Width, height, aspect (height / width: > 1 is taller than wide), area and solidity of a binary mask.

    Solidity = area / convex hull area: 1 for convex (circumscribed) shapes, lower for irregular,
    lobulated or spiculated margins.
    """
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        raise ValueError("empty mask has no shape")
    dy, dx = pixel_mm
    height = (ys.max() - ys.min() + 1) * dy
    width = (xs.max() - xs.min() + 1) * dx
    corners = np.concatenate([np.stack([ys + oy, xs + ox], 1) for oy in (0, 1) for ox in (0, 1)])
    try:
        hull_area = ConvexHull(corners).volume  # in 2-D, "volume" is the area
    except QhullError:
        hull_area = float(ys.size)
    return {"width_mm": float(width), "height_mm": float(height), "aspect": float(height / width),
            "area_mm2": float(ys.size * dy * dx), "solidity": float(min(1.0, ys.size / hull_area))}
