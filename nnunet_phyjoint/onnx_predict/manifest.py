"""The export folder's ``phyjoint_onnx.json``: everything the standalone predictor needs besides the graphs.

Written by :mod:`nnunet_phyjoint.onnx_export.folder` from the trained model folder (plans, dataset.json,
checkpoint), read here without nnU-Net: file ending, channels, class names, folds and their graph
files, mirroring axes, and the plans' preprocessing parameters (transpose, target spacing, patch size,
normalisation schemes and intensity statistics, resampling orders).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MANIFEST_FILE = "phyjoint_onnx.json"
FORMAT = "phyjoint-onnx-v1"
INPUT_NAME = "image"
OUTPUT_NAMES = ("segmentation_logits", "class_logits")
PRECISIONS = ("fp32", "int8")
_REQUIRED = ("format", "file_ending", "num_input_channels", "num_segmentation_heads", "class_names", "folds",
             "default_precision", "inference_allowed_mirroring_axes", "preprocessing", "inference")
_REQUIRED_PREPROCESSING = ("transpose_forward", "transpose_backward", "spacing", "patch_size",
                           "normalization_schemes", "use_mask_for_norm", "foreground_intensity_properties_per_channel",
                           "resampling_data", "resampling_probabilities")


def model_file_name(precision: str) -> str:
    """File name of one fold's graph at ``precision`` ('fp32' or 'int8')."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return f"model_{precision}.onnx"


def is_onnx_export(folder: str | Path) -> bool:
    """Whether ``folder`` is an ONNX export (holds ``phyjoint_onnx.json``)."""
    return (Path(folder) / MANIFEST_FILE).is_file()


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """The manifest of the export in ``folder``, checked for the keys the predictor uses."""
    path = Path(folder) / MANIFEST_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {folder} is not a folder written by "
                                "`phyjoint export --format onnx`")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise ValueError(f"{path}: format {found!r} is not {FORMAT!r}")
    missing = [k for k in _REQUIRED if k not in manifest]
    missing += [f"preprocessing.{k}" for k in _REQUIRED_PREPROCESSING if k not in manifest.get("preprocessing", {})]
    if missing:
        raise ValueError(f"{path} lacks {', '.join(missing)}")
    return manifest


def fold_model_path(folder: str | Path, manifest: dict[str, Any], fold: int | str, precision: str) -> Path:
    """Path of ``fold``'s graph at ``precision``; a clear error when the export does not hold it."""
    entry = next((f for f in manifest["folds"] if str(f["fold"]) == str(fold)), None)
    if entry is None:
        raise ValueError(f"{Path(folder) / MANIFEST_FILE}: no fold {fold} (folds: "
                         f"{', '.join(str(f['fold']) for f in manifest['folds'])})")
    name = entry.get("files", {}).get(precision)
    if name is None:
        raise ValueError(f"{Path(folder)}: fold {fold} has no {precision} graph (export with --bits 8 for int8)")
    path = Path(folder) / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: incomplete export in {folder}")
    return path
