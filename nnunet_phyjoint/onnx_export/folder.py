"""Export a trained nnU-Net model folder as ONNX: one graph per fold (FP32, and INT8 with ``bits=8``).

Exported folder::

    OUT/phyjoint_onnx.json      manifest for the standalone predictor (nnunet_phyjoint.onnx_predict.manifest)
    OUT/dataset.json, plans.json   copied, for reference
    OUT/fold_X/model_fp32.onnx  input "image" (batch, C, *patch_size) float32, the preprocessed image;
                                outputs "segmentation_logits" (batch, K, *patch_size), "class_logits" (batch, 3)
    OUT/fold_X/model_int8.onnx  the same, ONNX Runtime static INT8 (with bits=8)

Each graph is compared with PyTorch on preprocessed images of the fold (max absolute differences go
into the manifest and the printed report); an FP32 graph that disagrees beyond rounding is an error.
The folder is written under a temporary name and renamed at the end.
"""
from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nnunet_phyjoint.atomic_io import atomic_folder
from nnunet_phyjoint.input_scaling import scaling_of
from nnunet_phyjoint.onnx_export.graph import OPSET, compare_outputs, export_graph, torch_outputs
from nnunet_phyjoint.onnx_predict.manifest import (
    FORMAT, INPUT_NAME, MANIFEST_FILE, OUTPUT_NAMES, model_file_name,
)

FP32_TOLERANCE = 1e-3  # relative to the largest output magnitude; ONNX Runtime vs PyTorch float rounding
DEFAULT_CALIBRATION_IMAGES = 32
N_CHECK_IMAGES = 4
SUPPORTED_READERS = ("NaturalImage2DIO",)
SUPPORTED_RESAMPLING = "resample_data_or_seg_to_shape"


def export_onnx_folder(model_folder: Path, out: Path, bits: int | None = None,
                       folds: Iterable[int | str] | None = None, checkpoint_name: str = "checkpoint_final.pth",
                       overwrite: bool = False, calibration_data: Path | None = None,
                       calibration_images: int = DEFAULT_CALIBRATION_IMAGES, calibration_method: str = "minmax",
                       opset: int = OPSET, verbose: bool = True,
                       keep_float: Sequence[str] | None = None) -> dict[str, Any]:
    """Write the ONNX export of ``model_folder`` to ``out``; returns (and prints) the per-fold report.

    ``bits=8`` adds the INT8 graph, calibrated on up to ``calibration_images`` preprocessed training images
    of each fold (``calibration_data``: the preprocessed ``data_identifier`` folder's parent, default
    ``$nnUNet_preprocessed/<dataset>``); it then is the graph the predictor runs by default.
    ``keep_float``: the parts of the INT8 graph that stay float besides the heads (rule names of
    :data:`~nnunet_phyjoint.onnx_export.int8.KEEP_FLOAT_RULES` or node-name substrings; default
    :data:`~nnunet_phyjoint.onnx_export.int8.DEFAULT_KEEP_FLOAT`, ``()`` for none).
    """
    from nnunet_phyjoint.onnx_export.int8 import DEFAULT_KEEP_FLOAT
    from nnunet_phyjoint.quantization.export import (
        COPIED_JSON, _apply_default_permissions, _read_json, _resolve_folds, check_export_paths,
    )

    model_folder, out = Path(model_folder), Path(out)
    if bits not in (None, 8):
        raise ValueError(f"ONNX export supports --bits 8 (or none for FP32 only), got {bits!r}; INT4 has no integer "
                         "kernels in ONNX Runtime and stays a storage format: `phyjoint export --bits 4`")
    keep_float = tuple(DEFAULT_KEEP_FLOAT if keep_float is None else keep_float)
    check_export_paths(model_folder, out, overwrite)
    fold_list = _resolve_folds(model_folder, folds, checkpoint_name)
    plans, dataset_json = _read_json(model_folder / "plans.json"), _read_json(model_folder / "dataset.json")

    fold_entries, checks = [], {}
    manifest: dict[str, Any] | None = None
    with atomic_folder(out) as staging:
        for name in COPIED_JSON:
            if (model_folder / name).is_file():
                shutil.copy2(model_folder / name, staging / name)
        for fold in fold_list:
            entry, fold_manifest = _export_fold(model_folder / f"fold_{fold}" / checkpoint_name, plans, dataset_json,
                                                fold, bits, staging, calibration_data, calibration_images,
                                                calibration_method, keep_float, opset, verbose)
            if manifest is not None and fold_manifest != manifest:
                raise ValueError(f"fold {fold} differs from fold {fold_list[0]} in configuration, trainer or "
                                 "mirroring axes; export them separately")
            manifest = fold_manifest
            fold_entries.append(entry)
            checks[str(fold)] = entry
        manifest = {**manifest, "folds": fold_entries, "source_model_folder": str(model_folder.resolve()),
                    "source_checkpoint": checkpoint_name}
        (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
        _apply_default_permissions(staging)
    report = {"out": str(out), "bits": bits, "opset": opset, "folds": checks}
    if verbose:
        print(format_onnx_report(report))
    return report


def _export_fold(checkpoint_path: Path, plans: dict, dataset_json: dict, fold: int | str, bits: int | None,
                 staging: Path, calibration_data: Path | None, calibration_images: int, calibration_method: str,
                 keep_float: tuple[str, ...], opset: int, verbose: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    from nnunet_phyjoint.quantization.export import _load_strict, _read_checkpoint, build_network_from_plans
    from nnunet_phyjoint.quantization.qat import dequantize_qat_state_dict, state_dict_qat_bits

    checkpoint = _read_checkpoint(checkpoint_path)
    configuration = checkpoint["init_args"]["configuration"]
    manifest = build_manifest(plans, dataset_json, configuration, checkpoint)
    network = build_network_from_plans(plans, dataset_json, configuration)
    state = checkpoint["network_weights"]
    # a fake-quantized (QAT) checkpoint becomes a plain network holding its quantized weight values
    _load_strict(network, dequantize_qat_state_dict(state), source=str(checkpoint_path))
    network.eval()
    patch = manifest["preprocessing"]["patch_size"]
    channels = manifest["num_input_channels"]

    images, image_source = _sample_images(plans, configuration, fold, patch, channels, calibration_data,
                                          max(calibration_images, N_CHECK_IMAGES), required=bits == 8)
    check_images = images[np.linspace(0, len(images) - 1, min(N_CHECK_IMAGES, len(images))).round().astype(int)]
    reference = torch_outputs(network, check_images)

    fold_dir = staging / f"fold_{fold}"
    fold_dir.mkdir(parents=True)
    fp32_path = fold_dir / model_file_name("fp32")
    if verbose:
        print(f"fold {fold}: exporting {checkpoint_path} to ONNX (opset {opset}, input {channels}x"
              f"{'x'.join(map(str, patch))})", flush=True)
    export_graph(network, fp32_path, channels, patch, opset)
    fp32_check = compare_outputs(fp32_path, reference, check_images)
    limit = FP32_TOLERANCE * max(1.0, fp32_check["max_abs_reference"])
    worst = max(fp32_check["max_abs_diff_segmentation"], fp32_check["max_abs_diff_class"])
    if worst > limit:
        raise ValueError(f"{fp32_path}: ONNX Runtime differs from PyTorch by {worst:.3g} (limit {limit:.3g}); "
                         "the graph does not compute what the checkpoint computes")
    files = {"fp32": fp32_path.relative_to(staging).as_posix()}
    entry: dict[str, Any] = {"fold": fold, "files": files, "check_images": image_source,
                             "checks": {"fp32": fp32_check},
                             "sizes": {"fp32_bytes": fp32_path.stat().st_size},
                             "trained_with_fake_quantization_bits": state_dict_qat_bits(state)}
    if bits == 8:
        from nnunet_phyjoint.onnx_export.int8 import float_nodes_that_run_integer, integer_kernels, quantize_int8

        int8_path = fold_dir / model_file_name("int8")
        if verbose:
            print(f"fold {fold}: INT8 static quantization, calibrated on {len(images)} {image_source}", flush=True)
        float_nodes = quantize_int8(fp32_path, int8_path, images, method=calibration_method, keep_float=keep_float)
        kernels = integer_kernels(int8_path)
        if not kernels:
            raise ValueError(f"{int8_path}: ONNX Runtime runs no integer kernels in the quantized graph")
        quantized_anyway = float_nodes_that_run_integer(int8_path, float_nodes)
        if quantized_anyway:
            raise ValueError(f"{int8_path}: nodes meant to stay float run on integer kernels (ONNX Runtime quantizes a "
                             f"lone float node between quantized neighbours itself): {quantized_anyway}; keep a "
                             "connected part of the graph float instead")
        files["int8"] = int8_path.relative_to(staging).as_posix()
        entry["checks"]["int8"] = compare_outputs(int8_path, reference, check_images)
        entry["sizes"]["int8_bytes"] = int8_path.stat().st_size
        entry["sizes"]["int8_ratio"] = entry["sizes"]["int8_bytes"] / entry["sizes"]["fp32_bytes"]
        entry["integer_kernels"] = dict(sorted(kernels.items()))
        entry["calibration"] = {"images": len(images), "source": image_source, "method": calibration_method}
        entry["float_nodes"] = {"rules": list(keep_float), "heads": True, "nodes": float_nodes}
    manifest["default_precision"] = "int8" if bits == 8 else "fp32"
    return entry, manifest


def build_manifest(plans: dict, dataset_json: dict, configuration: str, checkpoint: dict) -> dict[str, Any]:
    """The predictor's copy of the plans' preprocessing and the model's facts; refuses plans it cannot reproduce."""
    from nnunet_phyjoint.metadata import CLASS_NAMES, METADATA_KEY
    from nnunet_phyjoint.onnx_predict.preprocessing import SUPPORTED_NORMALIZATIONS

    name = plans.get("plans_name")
    if configuration not in plans.get("configurations", {}):
        raise ValueError(f"plans {name!r} have no configuration {configuration!r}")
    cfg = plans["configurations"][configuration]
    reader = plans.get("image_reader_writer")
    if reader not in SUPPORTED_READERS:
        raise ValueError(f"plans {name!r}: image reader {reader!r} is not supported by the ONNX predictor "
                         f"(supported: {SUPPORTED_READERS}, 2-D PNG/BMP/TIF images)")
    if len(cfg["patch_size"]) != 2:
        raise ValueError(f"plans {name!r}, configuration {configuration!r}: the ONNX predictor handles 2-D patches, "
                         f"got {cfg['patch_size']}")
    unsupported = sorted(set(cfg["normalization_schemes"]) - set(SUPPORTED_NORMALIZATIONS))
    if unsupported:
        raise ValueError(f"plans {name!r}: normalization {unsupported} not supported (supported: "
                         f"{SUPPORTED_NORMALIZATIONS})")
    for key in ("resampling_fn_data", "resampling_fn_probabilities"):
        if cfg[key] != SUPPORTED_RESAMPLING or cfg[f"{key}_kwargs"].get("is_seg"):
            raise ValueError(f"plans {name!r}: {key} {cfg[key]!r} {cfg[f'{key}_kwargs']} is not supported "
                             f"(supported: {SUPPORTED_RESAMPLING} with is_seg false)")
    labels = dataset_json["labels"]
    if any(not isinstance(v, int) for v in labels.values()) or "ignore" in labels or \
            sorted(labels.values()) != list(range(len(labels))):
        raise ValueError(f"dataset.json labels {labels}: the ONNX predictor needs consecutive integer labels "
                         "(no regions, no ignore label)")
    mirroring = checkpoint.get("inference_allowed_mirroring_axes")
    metadata = dataset_json.get(METADATA_KEY, {})
    return {
        "format": FORMAT,
        "opset": OPSET,
        "dataset_name": plans.get("dataset_name"),
        "plans_name": name,
        "configuration": configuration,
        "trainer_name": checkpoint["trainer_name"],
        "file_ending": dataset_json["file_ending"],
        "num_input_channels": len(dataset_json["channel_names"]),
        "labels": labels,
        "num_segmentation_heads": len(labels),
        "class_names": list(metadata.get("class_names", CLASS_NAMES)),
        "inference_allowed_mirroring_axes": [int(a) for a in mirroring] if mirroring is not None else None,
        "input": {"name": INPUT_NAME, "shape": ["batch", len(dataset_json["channel_names"]), *cfg["patch_size"]],
                  "dtype": "float32", "content": "preprocessed image (nnU-Net preprocessing of these plans)"},
        "outputs": {OUTPUT_NAMES[0]: ["batch", len(labels), *cfg["patch_size"]],
                    OUTPUT_NAMES[1]: ["batch", len(metadata.get("class_names", CLASS_NAMES))]},
        "preprocessing": {
            "transpose_forward": list(plans["transpose_forward"]),
            "transpose_backward": list(plans["transpose_backward"]),
            "spacing": list(cfg["spacing"]),
            "scaling": scaling_of(cfg),
            "patch_size": list(cfg["patch_size"]),
            "normalization_schemes": list(cfg["normalization_schemes"]),
            "use_mask_for_norm": list(cfg["use_mask_for_norm"]),
            "foreground_intensity_properties_per_channel": plans["foreground_intensity_properties_per_channel"],
            "resampling_data": dict(cfg["resampling_fn_data_kwargs"]),
            "resampling_probabilities": dict(cfg["resampling_fn_probabilities_kwargs"]),
        },
        "inference": {"tile_step_size": 0.5, "use_gaussian": True, "gaussian_sigma_scale": 1 / 8,
                      "gaussian_value_scaling_factor": 10},
    }


def _sample_images(plans: dict, configuration: str, fold: int | str, patch: list[int], channels: int,
                   root: Path | None, n: int, required: bool) -> tuple[np.ndarray, str]:
    """Preprocessed training images of the fold; random ones (said so) when they are absent and not required."""
    from nnunet_phyjoint.onnx_export.calibration import fold_training_cases, load_patches, preprocessed_folder

    try:
        folder = preprocessed_folder(plans, configuration, root)
        cases = fold_training_cases(folder, fold)
    except (FileNotFoundError, ValueError):
        if required:
            raise
        rng = np.random.default_rng(0)
        return rng.standard_normal((N_CHECK_IMAGES, channels, *patch)).astype(np.float32), \
            "random images (no preprocessed training data found)"
    return load_patches(folder, cases, patch, n), f"preprocessed training images of fold {fold} ({folder})"


def format_onnx_report(report: dict[str, Any]) -> str:
    """Per-fold table: file sizes, INT8/FP32 ratio, max |ONNX Runtime - PyTorch|, argmax agreement."""
    lines = [f"{'fold':>5} {'FP32 MB':>8} {'INT8 MB':>8} {'ratio':>6} {'FP32 max|diff|':>15} "
             f"{'INT8 max|diff|':>15} {'INT8 mask agree':>16} {'INT8 diagnosis agree':>21}"]
    for fold, entry in report["folds"].items():
        sizes, checks = entry["sizes"], entry["checks"]
        fp32 = max(checks["fp32"]["max_abs_diff_segmentation"], checks["fp32"]["max_abs_diff_class"])
        if "int8" in checks:
            int8 = checks["int8"]
            cells = (f"{sizes['int8_bytes'] / 1e6:>8.2f}", f"{sizes['int8_ratio']:>6.1%}",
                     f"{max(int8['max_abs_diff_segmentation'], int8['max_abs_diff_class']):>15.3g}",
                     f"{int8['mask_agreement']:>16.2%}", f"{int8['diagnosis_agreement']:>21.0%}")
        else:
            cells = (f"{'—':>8}", f"{'—':>6}", f"{'—':>15}", f"{'—':>16}", f"{'—':>21}")
        lines.append(f"{fold:>5} {sizes['fp32_bytes'] / 1e6:>8.2f} {cells[0]} {cells[1]} {fp32:>15.3g} "
                     + " ".join(cells[2:]))
    first = next(iter(report["folds"].values()))
    lines.append(f"checked on {first['checks']['fp32']['n_images']} {first['check_images']}")
    if "integer_kernels" in first:
        kernels = ", ".join(f"{n} {op}" for op, n in first["integer_kernels"].items())
        lines.append(f"INT8 runs on integer kernels in ONNX Runtime: {kernels}")
        kept = first["float_nodes"]
        rules = ", ".join(kept["rules"]) or "none"
        lines.append(f"INT8 keeps {len(kept['nodes'])} nodes float: the heads and {rules} "
                     f"(calibration: {first['calibration']['method']})")
    lines.append(f"opset {report['opset']}, dynamic batch axis; written to {report['out']}")
    return "\n".join(lines)
