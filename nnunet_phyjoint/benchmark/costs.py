"""What an arm costs: parameters, MACs, model size (checkpoint and packed export), training time, inference time."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from nnunet_phyjoint.evaluation.io import write_json
from nnunet_phyjoint.paths import preprocessed_dir


def checkpoint_facts(path: Path) -> dict[str, Any]:
    """Weight bytes, epochs trained and training seconds (sum of nnU-Net's logged epoch durations)."""
    import torch

    # nnU-Net's own checkpoint pickle, written by its trainer; read the way nnU-Net reads it
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    weights = ckpt["network_weights"]
    log = ckpt.get("logging", {})
    starts, ends = log.get("epoch_start_timestamps", []), log.get("epoch_end_timestamps", [])
    seconds = sum(e - s for s, e in zip(starts, ends))
    # stock PlainConvUNet registers every conv twice (``conv`` and ``all_modules.0``): count each storage once
    storages = {}
    for t in weights.values():
        if hasattr(t, "untyped_storage"):
            storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
    return {"weight_bytes": int(sum(storages.values())),
            "epochs": len(ends), "train_seconds": float(seconds)}


def arm_costs(dataset_name: str, plans: str, trainer: str, model_folder: Path, folds: list[int],
              export_bits: int | None, export_dir: Path, device, n_speed_images: int = 4,
              timing_cache: Path | None = None) -> dict[str, Any]:
    """Costs of one trained arm (``folds`` all done); inference timed on fold ``folds[0]``'s validation cases.

    With ``timing_cache`` (a JSON file) the timing is reused while fold ``folds[0]``'s checkpoint,
    the device and the image count are unchanged, and stored after a new measurement.
    """
    from nnunet_phyjoint.benchmark.speed import ModelSpec, load_cases, measure_inference, validation_case_ids
    from nnunet_phyjoint.network.model_info import model_info_from_plans

    facts = [checkpoint_facts(model_folder / f"fold_{f}" / "checkpoint_final.pth") for f in folds]
    info = model_info_from_plans(preprocessed_dir() / dataset_name / f"{plans}.json", "2d")
    out: dict[str, Any] = {
        "params": info["parameters"]["total"], "macs": info["macs"], "input_shape": info["input_shape"],
        "checkpoint_mb": facts[0]["weight_bytes"] / 1e6,
        "epochs_trained": [f["epochs"] for f in facts],
        "train_seconds": sum(f["train_seconds"] for f in facts),
        "train_seconds_per_fold": [f["train_seconds"] for f in facts],
        "export_bits": export_bits, "packed_mb": None,
    }
    if export_bits:
        from nnunet_phyjoint.quantization.export import export_model_folder

        report = export_model_folder(model_folder, export_bits, export_dir, folds=[folds[0]], overwrite=True,
                                     verbose=False)
        sizes = report["folds"][str(folds[0])]
        out["packed_mb"] = (sizes["encoder_file_bytes"] + sizes["rest_file_bytes"]) / 1e6
        out["export"] = sizes
    checkpoint = model_folder / f"fold_{folds[0]}" / "checkpoint_final.pth"
    key = {"checkpoint": str(checkpoint), "checkpoint_mtime_ns": checkpoint.stat().st_mtime_ns,
           "device": str(device), "n_images": n_speed_images}
    timing = _cached_timing(timing_cache, key)
    if timing is None:
        spec = ModelSpec(dataset_name, plans, trainer, checkpoint)
        cases = validation_case_ids(dataset_name, folds[0], n_speed_images)
        load_before = os.getloadavg()[0]
        timing = measure_inference(spec, load_cases(spec.data_folder(), cases), device, mirroring=True)
        timing["load_average_1min"] = [load_before, os.getloadavg()[0]]  # other jobs slow the clock down
        if timing_cache is not None:
            write_json(timing_cache, {"key": key, "timing": timing})
    out["inference_ms"] = timing["ms_per_image"]
    out["inference"] = timing
    return out


def _cached_timing(cache: Path | None, key: dict[str, Any]) -> dict[str, Any] | None:
    """The inference timing measured earlier for the same checkpoint, device and image count, if any.

    Re-running the benchmark to re-score finished arms must not re-time them: a later run often
    shares the machine with training jobs, and its timings would replace clean ones.
    """
    if cache is None or not cache.is_file():
        return None
    try:
        stored = json.loads(cache.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return stored.get("timing") if stored.get("key") == key else None
