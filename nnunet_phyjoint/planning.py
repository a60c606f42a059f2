"""PhyJoint plans: nnU-Net's own plans, with a ``2d`` configuration that follows the paper.

The paper feeds every image whole to the network, letterboxed to 256x256 (aspect ratio kept,
zero padding). nnU-Net resamples every case to one target spacing; we choose the spacing at which
the *largest* training image fits the input size, so that every image is seen whole with its aspect
ratio kept and nnU-Net's data loader and predictor pad the rest with zeros. With the ``letterbox``
scaling (:mod:`nnunet_phyjoint.input_scaling`) each case is further given the spacing at which its
*own* long side fills the input; with ``single-spacing`` smaller images stay smaller. Predictions
are resampled back to the original image size by nnU-Net as usual.

We cannot register a planner class with nnU-Net (planners are only looked up inside nnunetv2),
so we run the stock ``ExperimentPlanner`` under our plans name and rewrite its ``2d`` entry.
``phyjoint preprocess`` (nnU-Net's preprocessing, letterboxing when the plans ask for it) then does the rest.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from nnunet_phyjoint.atomic_io import write_json_atomic
from nnunet_phyjoint.encoders import DEFAULT_ENCODER
from nnunet_phyjoint.input_scaling import DEFAULT_SCALING, LETTERBOX, SCALING_KEY, SCALINGS
from nnunet_phyjoint.paths import find_dataset_name, preprocessed_dir

DEFAULT_PLANS_NAME = "PhyJointPlans"
NETWORK_CLASS_NAME = "nnunet_phyjoint.network.phyjoint_net.PhyJointNet"


def ensure_fingerprint(dataset_name: str, num_processes: int = 2, verify: bool = False) -> Path:
    """Run nnU-Net's fingerprint extraction unless its output already exists."""
    fp = preprocessed_dir() / dataset_name / "dataset_fingerprint.json"
    if not fp.is_file():
        from nnunetv2.experiment_planning.plan_and_preprocess_api import extract_fingerprint_dataset

        extract_fingerprint_dataset(int(dataset_name[7:10]), num_processes=num_processes,
                                    check_dataset_integrity=verify, clean=True, verbose=False)
    return fp


def whole_image_spacing(shapes: list[list[int]], spacings: list[list[float]], size: int) -> float:
    """In-plane spacing at which the largest image's longer side spans ``size`` pixels."""
    extents = [max(s[-2] * sp[-2], s[-1] * sp[-1]) for s, sp in zip(shapes, spacings)]
    return max(extents) / size


def phyjoint_arch_kwargs(encoder: str, encoder_weights: str | None, **overrides: Any) -> dict[str, Any]:
    """The network's constructor keywords as they are stored in the plans."""
    kwargs: dict[str, Any] = {"encoder_name": encoder, "encoder_weights": encoder_weights}
    kwargs.update({k: v for k, v in overrides.items() if v is not None})
    return kwargs


def make_phyjoint_configuration(base: dict[str, Any], fingerprint: dict[str, Any], size: int, batch_size: int,
                                arch_kwargs: dict[str, Any], plans_name: str = DEFAULT_PLANS_NAME,
                                divisor: int = 32, scaling: str = DEFAULT_SCALING
                                ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Rewrite nnU-Net's planned ``2d`` configuration the PhyJoint way; also return a summary."""
    if size % divisor:
        raise ValueError(f"--size {size} must be a multiple of {divisor} (the encoder's total stride)")
    if scaling not in SCALINGS:
        raise ValueError(f"unknown input scaling {scaling!r} (known: {', '.join(SCALINGS)})")
    shapes = fingerprint["shapes_after_crop"]
    spacings = fingerprint["spacings"]
    spacing = whole_image_spacing(shapes, spacings, size)
    fitted = sorted(max(s[-2] * sp[-2], s[-1] * sp[-1]) / spacing for s, sp in zip(shapes, spacings))
    if scaling == LETTERBOX:
        fitted = [float(size)] * len(fitted)
    median_fitted = fitted[len(fitted) // 2]
    cfg = dict(base)
    cfg.update({
        "data_identifier": f"{plans_name}_2d",
        "batch_size": int(batch_size),
        "patch_size": [size, size],
        "spacing": [spacing, spacing],
        "batch_dice": False,  # images differ in lesion presence; per-image Dice is the paper's convention
        SCALING_KEY: scaling,
        "architecture": {
            "network_class_name": NETWORK_CLASS_NAME,
            "arch_kwargs": dict(arch_kwargs),
            "_kw_requires_import": [],
        },
    })
    summary = {
        "input_scaling": scaling,
        "target_spacing": spacing,
        "input_size": [size, size],
        "largest_image_long_side_px": int(math.ceil(fitted[-1])),
        "median_image_long_side_px": int(round(median_fitted)),
        "smallest_image_long_side_px": int(round(fitted[0])),
    }
    return cfg, summary


def _UnsavedPlanner():
    """nnU-Net's default planner, minus its own write of the plans file (we write ours atomically)."""
    from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import ExperimentPlanner
    from nnunetv2.utilities.json_export import recursive_fix_for_json_export

    class UnsavedPlanner(ExperimentPlanner):
        def save_plans(self, plans):
            recursive_fix_for_json_export(plans)

    return UnsavedPlanner


def plan_dataset(dataset_id: int | str, encoder: str = DEFAULT_ENCODER, size: int = 256, batch_size: int = 16,
                 plans_name: str = DEFAULT_PLANS_NAME, encoder_weights: str | None = "auto",
                 decoder_channels: list[int] | None = None, n_folds: int = 4, split_seed: int = 0,
                 num_processes: int = 2, verify: bool = False, scaling: str = DEFAULT_SCALING) -> Path:
    """Write ``$nnUNet_preprocessed/DatasetXXX/<plans_name>.json`` (and 4-fold splits if missing).

    Returns the plans file path. Only the ``2d`` configuration is kept: breast ultrasound is 2D.
    ``scaling`` is ``letterbox`` or ``single-spacing`` (:mod:`nnunet_phyjoint.input_scaling`).
    """
    dataset_name = find_dataset_name(dataset_id)
    fp_file = ensure_fingerprint(dataset_name, num_processes=num_processes, verify=verify)
    fingerprint = json.loads(fp_file.read_text())

    planner = _UnsavedPlanner()(dataset_name, plans_name=plans_name)
    # nnU-Net's VRAM estimate calls torch.set_num_threads(nnUNet_n_proc_DA), which fails for 0
    saved = os.environ.get("nnUNet_n_proc_DA")
    if saved is not None and saved.strip() == "0":
        os.environ["nnUNet_n_proc_DA"] = "1"
    try:
        plans = planner.plan_experiment()
    finally:
        if saved is not None:
            os.environ["nnUNet_n_proc_DA"] = saved
    if "2d" not in plans["configurations"]:
        raise RuntimeError(f"nnU-Net did not plan a 2d configuration for {dataset_name}")
    arch_kwargs = phyjoint_arch_kwargs(encoder, encoder_weights, decoder_channels=decoder_channels,
                                       deep_supervision_layout="nested")
    cfg, summary = make_phyjoint_configuration(
        plans["configurations"]["2d"], fingerprint, size, batch_size, arch_kwargs, plans_name=plans_name,
        scaling=scaling)
    plans["configurations"] = {"2d": cfg}
    plans["experiment_planner_used"] = "ExperimentPlanner"  # nnU-Net looks this name up inside nnunetv2
    plans["phyjoint"] = {"planner": "nnunet_phyjoint.planning.plan_dataset", **summary}

    plans_file = preprocessed_dir() / dataset_name / f"{plans_name}.json"
    write_json_atomic(plans_file, plans)

    splits_file = preprocessed_dir() / dataset_name / "splits_final.json"
    if not splits_file.is_file():
        from nnunet_phyjoint.splits import write_splits

        write_splits(dataset_name, n_folds=n_folds, seed=split_seed)
    return plans_file


def describe_plans(plans_file: Path) -> str:
    """A few human-readable lines about what was planned."""
    plans = json.loads(Path(plans_file).read_text())
    cfg = plans["configurations"]["2d"]
    s = plans.get("phyjoint", {})
    lines = [
        f"plans: {plans_file}",
        f"  network: {cfg['architecture']['network_class_name']} {cfg['architecture']['arch_kwargs']}",
        f"  input {cfg['patch_size'][0]}x{cfg['patch_size'][1]}, batch {cfg['batch_size']}, "
        f"target spacing {cfg['spacing'][0]:.4g}, input scaling {cfg.get(SCALING_KEY, 'single-spacing')}",
    ]
    if s:
        lines.append(
            f"  images after resampling (long side, px): largest {s['largest_image_long_side_px']}, "
            f"median {s['median_image_long_side_px']}, smallest {s['smallest_image_long_side_px']}")
        if s["median_image_long_side_px"] < 0.75 * cfg["patch_size"][0]:
            lines.append("  WARNING: image sizes vary a lot; most images use less than 3/4 of the input. "
                         "Consider `phyjoint plan --scaling letterbox`, which fills the input with every image.")
    lines.append(f"next: phyjoint preprocess -d {plans['dataset_name'][7:10]} -plans_name {plans['plans_name']}")
    return "\n".join(lines)
