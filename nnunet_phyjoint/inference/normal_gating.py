"""Diagnosis-gated masks: an image the diagnosis head calls *normal* gets an empty lesion mask.

A normal breast-ultrasound image has no lesion by definition, and the joint model says so with its
own head. The segmentation decoder, trained per pixel, leaves a few scattered false-positive pixels
on most normal images (measured: 20 of 20 normal validation images of the 400-image simulated set
had a non-empty mask while the head called all 20 normal with p >= 0.92; ``docs/training-recipe.md``).
Gating the mask by the diagnosis removes them; it never touches an image called benign or
malignant. The raw masks are kept beside the gated ones so that nothing the model predicted is lost.

A model that never saw a normal image (BUS-BRA, for instance, has none) has not learnt what normal
looks like, so its "normal" is no evidence of an empty image: gating is then off
(:func:`gating_off_reason`), in the trainer's final validation and in ``phyjoint predict``/``ensemble``.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from nnunet_phyjoint.atomic_io import atomic_path
from nnunet_phyjoint.metadata import CLASS_NAMES

NORMAL = CLASS_NAMES.index("normal")
UNGATED_FOLDER = "ungated_masks"


def gating_off_reason(training_labels: "list[int] | np.ndarray | None" = None,
                      dataset_json: Mapping[str, Any] | None = None) -> str | None:
    """Why masks must not be gated for this model (None: gate them).

    Pass the training fold's class indices (the trainer knows them) or the model's ``dataset.json``
    (its per-case classes stand for the training data). Without either, nothing is known against gating.
    """
    if training_labels is None and dataset_json is not None:
        from nnunet_phyjoint.metadata import class_labels

        try:
            training_labels = list(class_labels(dataset_json).values())
        except (KeyError, TypeError, ValueError):  # a dataset.json without our per-case metadata
            training_labels = None
    if training_labels is None or len(training_labels) == 0:
        return None
    if not np.any(np.asarray(training_labels) == NORMAL):
        return "diagnosis gating off: the model's training data has no normal case, so its 'normal' means nothing"
    return None


def is_called_normal(probabilities: np.ndarray) -> bool:
    """Whether the diagnosis (argmax of the class probabilities) is *normal*."""
    return int(np.argmax(probabilities)) == NORMAL


def gate_masks(folder: str | os.PathLike, probabilities: Mapping[str, np.ndarray], file_ending: str,
               keep_ungated: bool = True) -> list[str]:
    """Empty the mask file of every case in ``folder`` whose diagnosis is normal; returns those case ids.

    ``probabilities`` maps case id -> class probabilities (as in ``classification.csv``). With
    ``keep_ungated`` the original masks of changed cases are first copied to ``folder/ungated_masks``.
    Each mask is rewritten through a temporary file and a rename, so an interrupted run never leaves
    half a file. Masks are read and written with nnU-Net's natural-image reader/writer for PNG/BMP/TIF
    files (no SimpleITK needed for 2D) and SimpleITK otherwise, as nnU-Net writes them.
    """
    folder = Path(folder)
    natural = _is_natural_image(file_ending)
    gated = []
    for case, probs in sorted(probabilities.items()):
        path = folder / f"{case}{file_ending}"
        if not path.is_file() or not is_called_normal(np.asarray(probs)):
            continue
        mask, meta = _read_mask(path, natural)
        if not mask.any():
            continue
        if keep_ungated:
            (folder / UNGATED_FOLDER).mkdir(exist_ok=True)
            shutil.copy2(path, folder / UNGATED_FOLDER / path.name)
        _write_empty_like(path, natural, mask, meta)
        gated.append(case)
    return gated


def _is_natural_image(file_ending: str) -> bool:
    """Whether nnU-Net reads and writes this ending with its natural-image (2D PNG/BMP/TIF) reader/writer."""
    from nnunetv2.imageio.natural_image_reader_writer import NaturalImage2DIO

    return file_ending.lower() in NaturalImage2DIO.supported_file_endings


def _read_mask(path: Path, natural: bool) -> tuple[np.ndarray, Any]:
    """The mask's values and what writing it back needs: nnU-Net's properties (2D natural images, so that
    2D predictions need no SimpleITK) or the SimpleITK image (its spacing, origin, direction)."""
    if natural:
        from nnunetv2.imageio.natural_image_reader_writer import NaturalImage2DIO

        return NaturalImage2DIO().read_seg(str(path))
    import SimpleITK as sitk

    image = sitk.ReadImage(str(path))
    return sitk.GetArrayViewFromImage(image), image


def _write_empty_like(path: Path, natural: bool, mask: np.ndarray, meta: Any) -> None:
    """Replace ``path`` by an all-zero mask of ``mask``'s size, written as :func:`_read_mask` read it."""
    with atomic_path(path) as tmp:
        if natural:
            from nnunetv2.imageio.natural_image_reader_writer import NaturalImage2DIO

            NaturalImage2DIO().write_seg(np.zeros(mask.shape[1:], dtype=np.uint8), str(tmp), meta)
        else:
            import SimpleITK as sitk

            image = sitk.GetImageFromArray(np.zeros_like(mask))
            image.CopyInformation(meta)
            sitk.WriteImage(image, str(tmp))


def gate_prediction_folder(folder: str | os.PathLike, file_ending: str) -> list[str]:
    """:func:`gate_masks` for a prediction folder with its ``classification.csv``; prints one summary line."""
    from nnunet_phyjoint.evaluation.io import read_classification_csv
    from nnunet_phyjoint.inference.predictor import CLASSIFICATION_FILE

    csv = Path(folder) / CLASSIFICATION_FILE
    if not csv.is_file():
        return []
    rows = read_classification_csv(csv)
    gated = gate_masks(folder, rows, file_ending)
    called_normal = sum(is_called_normal(p) for p in rows.values())
    print(f"diagnosis-gated masks: {called_normal} of {len(rows)} cases diagnosed normal, {len(gated)} of them had "
          f"lesion pixels and now have an empty mask (originals in {Path(folder) / UNGATED_FOLDER}; "
          "--no-gating keeps the raw masks)", flush=True)
    return gated
