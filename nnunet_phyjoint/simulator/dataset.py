"""Simulate a whole multi-scanner breast-ultrasound dataset in the PRECISE layout."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from nnunet_phyjoint.simulator.acquisition import acquire
from nnunet_phyjoint.simulator.anatomy import sample_anatomy, tissue_maps
from nnunet_phyjoint.simulator.cohort import ImageSpec, class_counts, plan_cohort
from nnunet_phyjoint.simulator.grid import grid_for
from nnunet_phyjoint.simulator.lesions import follow_up, mask_shape_stats, paint_lesion, sample_lesion
from nnunet_phyjoint.simulator.scanner_profiles import ScannerProfile, scanner_profiles
from nnunet_phyjoint.simulator.writer import staging_dir, write_json, write_png

FORMAT_VERSION = 1
DEFAULT_NORMAL_FRACTION = 0.2


def _rounded(obj: Any, digits: int = 4) -> Any:
    """Floats rounded for a compact, readable simulation.json."""
    if isinstance(obj, float):
        return round(obj, digits)
    if isinstance(obj, dict):
        return {k: _rounded(v, digits) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_rounded(v, digits) for v in obj]
    return obj


def render_image(
    spec: ImageSpec, profile: ScannerProfile, seed: int, size: tuple[int, int] = (256, 256),
    oversample: tuple[int, int] = (2, 1),
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(image uint8, mask uint8 0/255, description) of one case; the same for the same seed and spec.

    The breast and its lesion depend only on (seed, subject), so a follow-up image shows the same
    anatomy and lesion, moved and grown a little, with fresh speckle.
    """
    if spec.scanner != profile.tag:
        raise ValueError(f"{spec.stem} belongs to scanner {spec.scanner}, not {profile.tag}")
    grid = grid_for(profile, size, oversample)
    patient_rng = np.random.default_rng([seed, 1, spec.subject])
    anatomy = sample_anatomy(patient_rng)
    lesion = sample_lesion(patient_rng, spec.label) if spec.label != "normal" else None
    image_rng = np.random.default_rng([seed, 2, spec.subject, int(spec.follow_up)])
    shift_mm = float(image_rng.uniform(-0.12, 0.12) * profile.width_mm) if spec.follow_up else 0.0
    if lesion is not None and spec.follow_up:
        lesion = follow_up(lesion, image_rng)

    maps = tissue_maps(anatomy, grid, shift_mm)
    info: dict[str, Any] = {"anatomy": anatomy.to_json(), "probe_shift_mm": round(shift_mm, 3), "lesion": None}
    sim_mask = None
    if lesion is not None:
        a, b = lesion.half_width_mm, lesion.half_height_mm
        half_w = profile.width_mm / 2
        cx = float(np.clip((lesion.x_fraction - 0.5) * profile.width_mm - shift_mm, -half_w + a, half_w - a))
        top = float(np.interp(cx, grid.x_mm, maps.boundaries_mm["fat"]))
        bottom = float(np.interp(cx, grid.x_mm, maps.boundaries_mm["gland"]))
        lo, hi = top + 0.6 * b, max(top + 0.6 * b, bottom - 0.4 * b)
        # keep room below the lesion: posterior enhancement or shadowing is a diagnostic sign
        cy = float(np.clip(lo + lesion.depth_fraction * (hi - lo), b + 2.5, max(b + 2.5, 0.62 * profile.depth_mm - b)))
        sim_mask = paint_lesion(maps, lesion, grid, (cy, cx))
        info["lesion"] = {**lesion.to_json(), "center_mm": [round(cy, 3), round(cx, 3)]}

    image = acquire(maps, profile, grid, image_rng)
    if sim_mask is None:
        mask = np.zeros(size, dtype=np.uint8)
    else:
        mask = np.where(grid.to_output(sim_mask.astype(np.float32)) >= 0.5, 255, 0).astype(np.uint8)
        if not mask.any():
            raise RuntimeError(f"{spec.stem}: the lesion fell outside the image (simulator bug)")
        info["lesion"]["shape"] = {k: round(v, 4) for k, v in mask_shape_stats(mask > 0, grid.output_pixel_mm).items()}
    return image, mask, info


def simulate_dataset(
    out: Path | str,
    n: int = 400,
    scanners: int = 4,
    seed: int = 0,
    size: tuple[int, int] = (256, 256),
    malignant_fraction: float = 0.18,
    normal_fraction: float = DEFAULT_NORMAL_FRACTION,
    preview: Path | str | None = None,
    *,
    multi_image_fraction: float = 0.25,
    oversample: tuple[int, int] = (2, 1),
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Write ``n`` simulated cases to ``out`` in the PRECISE layout and return ``out``.

    ``out/{normal,benign,malignant}/PACE_<subject>_<code>_<scanner>.png`` with ``..._mask.png``
    (0/255) beside each, and ``out/simulation.json`` recording the seed, parameters, scanner
    profiles and every case. Deterministic for a seed. ``preview``: also write an example grid PNG.
    """
    from nnunet_phyjoint.progress import progress as progress_bar

    out = Path(out)
    size = (int(size[0]), int(size[1]))
    profiles = scanner_profiles(scanners)
    by_tag = {p.tag: p for p in profiles}
    specs = plan_cohort(n, [p.tag for p in profiles], np.random.default_rng([seed, 0]),
                        malignant_fraction=malignant_fraction, normal_fraction=normal_fraction,
                        multi_image_fraction=multi_image_fraction)
    cases = []
    with staging_dir(out, overwrite=overwrite) as tmp:
        for spec in progress_bar(specs, desc="simulating", unit="img", disable=not progress):
            image, mask, info = render_image(spec, by_tag[spec.scanner], seed, size, oversample)
            write_png(tmp / spec.image_relpath, image)
            write_png(tmp / spec.mask_relpath, mask)
            cases.append(_rounded({"image": spec.image_relpath, "mask": spec.mask_relpath, **asdict(spec),
                                   "code": spec.code, **info}))
        for label in ("normal", "benign", "malignant"):
            (tmp / label).mkdir(exist_ok=True)  # the layout has all three folders even when one is empty
        write_json(tmp / "simulation.json", {
            "generator": "nnunet_phyjoint.simulator", "format_version": FORMAT_VERSION, "seed": seed,
            "parameters": {"n": n, "scanners": scanners, "size": list(size), "malignant_fraction": malignant_fraction,
                           "normal_fraction": normal_fraction, "multi_image_fraction": multi_image_fraction,
                           "oversample": list(oversample)},
            "class_counts": class_counts(n, malignant_fraction, normal_fraction),
            "scanner_profiles": {p.tag: p.to_json() for p in profiles},
            "cases": cases,
        })
    if preview is not None:
        from nnunet_phyjoint.simulator.preview import save_preview

        save_preview(out, preview)
    return out
