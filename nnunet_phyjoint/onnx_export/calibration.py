"""Calibration and check images: a fold's training cases as nnU-Net's preprocessing wrote them.

Static INT8 quantization needs activation ranges from real inputs. The inputs the exported graph
sees are the preprocessed images (normalised, resampled, padded to the patch size), so they are read
from ``$nnUNet_preprocessed/<dataset>/<data_identifier>`` with nnU-Net's own dataset class, for the
fold's training cases in ``splits_final.json``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from nnunet_phyjoint.onnx_predict.sliding_window import pad_to_patch


def preprocessed_folder(plans: dict, configuration: str, root: str | Path | None = None) -> Path:
    """``<root or $nnUNet_preprocessed>/<dataset_name>/<data_identifier>`` of the plans' configuration."""
    if root is None:
        env = os.environ.get("nnUNet_preprocessed")
        if not env:
            raise FileNotFoundError("nnUNet_preprocessed is not set: INT8 calibration reads the fold's preprocessed "
                                    "training images (set it, or pass --calibration-data FOLDER)")
        root = Path(env) / plans["dataset_name"]
    identifier = plans["configurations"][configuration]["data_identifier"]
    folder = Path(root) / identifier
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} not found: INT8 calibration needs nnU-Net's preprocessed training data "
                                f"(phyjoint preprocess -d {plans['dataset_name']} -plans_name {plans['plans_name']} "
                                f"-c {configuration}, or pass --calibration-data FOLDER)")
    return folder


def fold_training_cases(folder: Path, fold: int | str) -> list[str]:
    """The fold's training case ids from ``splits_final.json`` beside ``folder``; every case for fold 'all'."""
    cases = sorted(_case_ids(folder))
    if str(fold) == "all":
        return cases
    splits_file = folder.parent / "splits_final.json"
    if not splits_file.is_file():
        raise FileNotFoundError(f"{splits_file} not found: cannot tell fold {fold}'s training cases")
    splits = json.loads(splits_file.read_text())
    if int(fold) >= len(splits):
        raise ValueError(f"{splits_file} has {len(splits)} folds, no fold {fold}")
    train = set(splits[int(fold)]["train"])
    chosen = [c for c in cases if c in train]
    if not chosen:
        raise FileNotFoundError(f"none of fold {fold}'s training cases is in {folder}")
    return chosen


def load_patches(folder: Path, case_ids: Sequence[str], patch_size: Sequence[int], n: int) -> np.ndarray:
    """Up to ``n`` of the cases (evenly spread over the sorted list), each padded to the patch size as the
    predictor pads it (centre crop where larger): float32 (n, C, *patch)."""
    from nnunet_phyjoint.benchmark.speed import load_cases

    picked = [case_ids[int(i)] for i in np.unique(np.linspace(0, len(case_ids) - 1, min(n, len(case_ids))).round())]
    patches = []
    for image in load_cases(folder, picked):
        data = image.numpy()[:, 0] if image.ndim == 4 else image.numpy()  # (C, 1, h, w) -> (C, h, w)
        patches.append(as_patch(data, patch_size))
    return np.stack(patches).astype(np.float32)


def as_patch(data: np.ndarray, patch_size: Sequence[int]) -> np.ndarray:
    """A preprocessed image (C, h, w) as one network input (C, *patch): padded as the predictor pads it,
    centre-cropped where it is larger than the patch."""
    padded, _ = pad_to_patch(data, patch_size)
    starts = [(s - p) // 2 for s, p in zip(padded.shape[1:], patch_size)]
    return padded[(slice(None), *(slice(b, b + p) for b, p in zip(starts, patch_size)))]


def _case_ids(folder: Path) -> list[str]:
    from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class

    return list(infer_dataset_class(str(folder)).get_identifiers(str(folder)))
