"""Inference latency, training throughput and peak memory of a trainer's network on preprocessed images.

Inference runs nnU-Net's own predictor (``predict_sliding_window_return_logits``: sliding window,
Gaussian weighting, optional mirroring) at batch 1 on preprocessed cases; training runs the real
trainer's ``train_step`` (its loss, optimizer, deep supervision) on batches from its own data loader.
Peak memory: CUDA ``max_memory_allocated``; CPU the process's peak resident set (``VmHWM``), reset
between measurements through ``/proc/self/clear_refs`` where Linux allows it.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from nnunet_phyjoint.paths import preprocessed_dir


# ---------------------------------------------------------------------------------------- timing and memory
def _timed_call(fn, *args, device: torch.device) -> float:
    """Seconds ``fn(*args)`` takes, with CUDA work finished before and after (kernels run asynchronously)."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn(*args)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def reset_peak_memory(device) -> bool:
    """Reset the peak-memory counter; False when the CPU peak cannot be reset (then it is the process peak)."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        return True
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # "5" resets VmHWM to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def peak_memory_bytes(device) -> int | None:
    """Peak memory since the last reset: CUDA allocated bytes, or CPU peak resident set size."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
        return int(torch.cuda.max_memory_allocated(device))
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # kB on Linux


# ---------------------------------------------------------------------------------------- inputs
@dataclass
class ModelSpec:
    """A trainer on a plans file, optionally with a trained checkpoint."""

    dataset_name: str
    plans_name: str
    trainer_name: str
    checkpoint: Path | None = None

    @property
    def plans_file(self) -> Path:
        return preprocessed_dir() / self.dataset_name / f"{self.plans_name}.json"

    def plans(self) -> dict:
        if not self.plans_file.is_file():
            raise FileNotFoundError(f"{self.plans_file} not found")
        return json.loads(self.plans_file.read_text())

    def dataset_json(self) -> dict:
        return json.loads((preprocessed_dir() / self.dataset_name / "dataset.json").read_text())

    def data_folder(self) -> Path:
        return preprocessed_dir() / self.dataset_name / self.plans()["configurations"]["2d"]["data_identifier"]


def trainer_class(name: str):
    """The trainer class nnU-Net would use for ``-tr name`` (our trainers folder on its search path)."""
    from nnunet_phyjoint.benchmark.runner import subprocess_env

    os.environ["nnUNet_extTrainer"] = subprocess_env()["nnUNet_extTrainer"]
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    with contextlib.redirect_stdout(open(os.devnull, "w")):
        return recursive_find_trainer_class_by_name(name)


def load_cases(data_folder: Path, case_ids: list[str]):
    """Preprocessed image arrays (C, H, W) as float32 torch tensors."""
    import torch
    from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class

    dataset = infer_dataset_class(str(data_folder))(str(data_folder), case_ids)
    return [torch.from_numpy(np.asarray(dataset.load_case(c)[0][:], dtype=np.float32)) for c in case_ids]


def build_inference_network(spec: ModelSpec, device):
    """(network in eval mode, mirroring axes, whether trained weights were loaded)."""
    import torch
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    plans, dj = spec.plans(), spec.dataset_json()
    pm = PlansManager(plans)
    cm = pm.get_configuration("2d")
    cls = trainer_class(spec.trainer_name)
    network = cls.build_network_architecture(pm, cm, determine_num_input_channels(pm, cm, dj),
                                             pm.get_label_manager(dj).num_segmentation_heads,
                                             enable_deep_supervision=False)
    trained = spec.checkpoint is not None and Path(spec.checkpoint).is_file()
    # our own trainers' defaults: PhyJoint mirrors left-right only, stock nnU-Net both axes
    mirror_axes = (1,) if "PhyJoint" in spec.trainer_name else (0, 1)
    if trained:
        # nnU-Net's own checkpoint pickle (written by its trainer), read as nnU-Net reads it
        ckpt = torch.load(spec.checkpoint, map_location="cpu", weights_only=False)
        network.load_state_dict(ckpt["network_weights"])
        mirror_axes = ckpt.get("inference_allowed_mirroring_axes") or mirror_axes
    return network.to(device).eval(), tuple(mirror_axes), pm, cm, dj, trained


# ---------------------------------------------------------------------------------------- measurements
def measure_inference(spec: ModelSpec, images: list, device, mirroring: bool) -> dict[str, Any]:
    """Milliseconds per image at batch 1 with nnU-Net's predictor (one warm-up image first)."""
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    from nnunet_phyjoint.inference.predictor import PhyJointPredictor

    network, axes, pm, cm, dj, trained = build_inference_network(spec, device)
    predictor_cls = PhyJointPredictor if hasattr(network, "classification_head") else nnUNetPredictor
    predictor = predictor_cls(tile_step_size=0.5, use_gaussian=True, use_mirroring=mirroring,
                              perform_everything_on_device=device.type == "cuda", device=device, verbose=False,
                              verbose_preprocessing=False, allow_tqdm=False)
    predictor.manual_initialization(network, pm, cm, None, dj, spec.trainer_name, axes)
    predictor.predict_sliding_window_return_logits(images[0])  # warm-up (allocations, Gaussian map)
    reset_ok = reset_peak_memory(device)
    times = []
    for image in images:
        times.append(_timed_call(predictor.predict_sliding_window_return_logits, image, device=device))
    return {"ms_per_image": 1000 * float(np.mean(times)), "ms_std": 1000 * float(np.std(times)),
            "n_images": len(images), "mirroring": mirroring, "mirror_axes": list(axes),
            "peak_memory_bytes": peak_memory_bytes(device), "peak_reset": reset_ok, "trained_weights": trained}


@contextlib.contextmanager
def _scratch_results() -> Iterator[None]:
    # a trainer writes its log and folders under nnUNet_results at construction: keep them out of the real one
    saved = os.environ.get("nnUNet_results")
    with tempfile.TemporaryDirectory(prefix="phyjoint_bench_speed_") as tmp:
        os.environ["nnUNet_results"] = tmp
        try:
            yield
        finally:
            if saved is None:
                os.environ.pop("nnUNet_results", None)
            else:
                os.environ["nnUNet_results"] = saved


def measure_training(spec: ModelSpec, device, steps: int = 3, fold: int = 0) -> dict[str, Any]:
    """Images per second of the trainer's own ``train_step`` (loss, backward, optimizer step) at its batch size.

    The trainer is built and started as ``nnUNetv2_train`` does it (fold ``fold`` of splits_final.json), one
    warm-up step is not timed, and data loading/augmentation time is excluded.
    """
    cls = trainer_class(spec.trainer_name)
    saved_da = os.environ.get("nnUNet_n_proc_DA")
    os.environ["nnUNet_n_proc_DA"] = "0"  # augmentation in this process; it is not what we time
    try:
        with _scratch_results(), contextlib.redirect_stdout(open(os.devnull, "w")):
            plans = spec.plans()
            plans["continue_training"] = False  # the MetaLogger argument nnUNetv2_train passes through the plans
            trainer = cls(plans=plans, configuration="2d", fold=fold, dataset_json=spec.dataset_json(), device=device)
            # nnU-Net's own start-of-training hook: network, loss, optimizer, data loaders, and anything a
            # trainer adds there (the PhyJoint style shift, fitted once per fold when missing)
            trainer.on_train_start()
            trainer.network.train()
            batches = [next(trainer.dataloader_train) for _ in range(steps + 1)]
            trainer.train_step(batches[0])  # warm-up: optimizer state, allocator
            reset_ok = reset_peak_memory(device)
            times = []
            for batch in batches[1:]:
                times.append(_timed_call(trainer.train_step, batch, device=device))
            peak = peak_memory_bytes(device)
            batch_size = int(batches[1]["data"].shape[0])
            optimizer = f"{type(trainer.optimizer).__module__}.{type(trainer.optimizer).__name__}"
            del trainer
    finally:
        if saved_da is None:
            os.environ.pop("nnUNet_n_proc_DA", None)
        else:
            os.environ["nnUNet_n_proc_DA"] = saved_da
    return {"images_per_second": batch_size * len(times) / float(np.sum(times)), "batch_size": batch_size,
            "steps": len(times), "seconds_per_step": float(np.mean(times)), "optimizer": optimizer,
            "peak_memory_bytes": peak, "peak_reset": reset_ok}


def validation_case_ids(dataset_name: str, fold: int, n: int) -> list[str]:
    """The first ``n`` validation cases of ``fold`` in splits_final.json (all cases if there is no split)."""
    from nnunet_phyjoint.benchmark.runner import raw_case_ids

    splits_file = preprocessed_dir() / dataset_name / "splits_final.json"
    if splits_file.is_file():
        splits = json.loads(splits_file.read_text())
        if fold < len(splits):
            return sorted(splits[fold]["val"])[:n]
    return raw_case_ids(dataset_name)[:n]


# ---------------------------------------------------------------------------------------- report
def format_speed_table(results: dict[str, dict[str, Any]], names: tuple[str, str]) -> str:
    """Side-by-side table of two models' measurements with the ratio first/second."""
    a, b = names
    ra, rb = results[a], results[b]

    def mb(x):
        return None if x is None else x / 2**20

    rows = [
        ("inference ms/img, mirroring", ra["inference_mirror"]["ms_per_image"], rb["inference_mirror"]["ms_per_image"]),
        ("inference ms/img, no mirroring", ra["inference_plain"]["ms_per_image"],
         rb["inference_plain"]["ms_per_image"]),
        ("inference peak memory MiB", mb(ra["inference_mirror"]["peak_memory_bytes"]),
         mb(rb["inference_mirror"]["peak_memory_bytes"])),
        ("training images/s", ra["training"]["images_per_second"], rb["training"]["images_per_second"]),
        ("training s/step", ra["training"]["seconds_per_step"], rb["training"]["seconds_per_step"]),
        ("training batch size", ra["training"]["batch_size"], rb["training"]["batch_size"]),
        ("training peak memory MiB", mb(ra["training"]["peak_memory_bytes"]), mb(rb["training"]["peak_memory_bytes"])),
    ]
    head = ("", a, b, f"ratio {a}/{b}")
    body = []
    for label, x, y in rows:
        ratio = f"{x / y:.2f}" if x is not None and y not in (None, 0) else "—"
        body.append((label, _fmt(x), _fmt(y), ratio))
    widths = [max(len(r[i]) for r in (head, *body)) for i in range(4)]
    line = lambda r: "| " + " | ".join(v.ljust(w) for v, w in zip(r, widths)) + " |"  # noqa: E731
    return "\n".join([line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, body)])


def _fmt(x) -> str:
    if x is None:
        return "—"
    if isinstance(x, int):
        return str(x)
    return f"{x:.1f}" if abs(x) >= 10 else f"{x:.3g}"
