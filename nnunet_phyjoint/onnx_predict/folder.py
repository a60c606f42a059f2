"""Predict a folder of images with an ONNX export: the files ``phyjoint predict`` writes, without torch.

Inputs are checked first exactly as ``phyjoint predict`` checks them (colour images converted to grey
as the converters do, unreadable ones named and skipped, exit status 3; ``strict`` stops before any
work). Outputs: ``OUT/CASE<file_ending>`` (label map at the input's size), ``OUT/classification.csv``
(merged with rows already there), the model's dataset.json and plans.json, and with ``gating`` the
diagnosis gating of :mod:`nnunet_phyjoint.inference.normal_gating` (a case called *normal* gets an
empty mask; the raw one is kept in ``OUT/ungated_masks``), applied before the mask is written rather
than by reading it back. Masks and the CSV are written through a temporary name and a rename.
"""
from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from nnunet_phyjoint.onnx_predict.predictor import ExportPredictor, onnx_runners
from nnunet_phyjoint.onnx_predict.preprocessing import read_case

CLASSIFICATION_FILE = "classification.csv"  # the name PhyJointPredictor writes


def predict_folder(model: str | Path, source: str | Path, output: str | Path, folds: Sequence[int | str] | None = None,
                   precision: str | None = None, threads: int | None = None, use_mirroring: bool = True,
                   tile_step_size: float | None = None, strict: bool = False, gating: bool = True,
                   continue_prediction: bool = False, command: str = "phyjoint predict") -> int:
    """Check, predict, write; 0, 3 (some inputs skipped) or 1 (nothing done: bad folder, ``strict`` stop)."""
    from nnunet_phyjoint.inference.input_check import (
        EXIT_SKIPPED, check_prediction_folder, log_checks, strict_error, summary,
    )
    from nnunet_phyjoint.inference.normal_gating import UNGATED_FOLDER, is_called_normal

    manifest, runners, paths = onnx_runners(model, folds, precision, threads)
    try:
        report = check_prediction_folder(source, manifest["file_ending"], int(manifest["num_input_channels"]))
    except (NotADirectoryError, FileNotFoundError) as e:
        print(f"{command}: error: {e}", file=sys.stderr)
        return 1
    log_checks(report)
    if strict and report.skipped:
        print(strict_error(report, command), file=sys.stderr)
        return 1
    predictor = ExportPredictor(manifest, runners, use_mirroring, tile_step_size)
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    for name in ("dataset.json", "plans.json"):  # as nnU-Net's predictor leaves them beside the masks
        if (Path(model) / name).is_file():
            shutil.copy2(Path(model) / name, output / name)
    ending = manifest["file_ending"]
    cases = [c for c in report.usable if not (continue_prediction and (output / f"{c.case_id}{ending}").is_file())]
    print(f"ONNX model {Path(model)} ({', '.join(p.parent.name + '/' + p.name for p in paths)}), "
          f"{len(cases)} case(s), mirroring {'on' if use_mirroring else 'off'}", flush=True)
    rows: dict[str, np.ndarray] = {}
    gated: list[str] = []
    started = time.perf_counter()
    try:
        for case in cases:
            result = predictor.predict(_case_pixels(case))
            mask = result.segmentation
            if gating and is_called_normal(result.probabilities) and mask.any():
                write_mask(output / UNGATED_FOLDER / f"{case.case_id}{ending}", mask)
                mask = np.zeros_like(mask)
                gated.append(case.case_id)
            write_mask(output / f"{case.case_id}{ending}", mask)
            rows[case.case_id] = result.probabilities
    finally:
        # cases already written keep their diagnosis even when a later case fails
        if rows:
            _write_classification(output / CLASSIFICATION_FILE, rows)
    if cases:
        print(f"predicted {len(cases)} case(s) in {time.perf_counter() - started:.1f} s", flush=True)
    if gating:
        called_normal = sum(is_called_normal(p) for p in rows.values())
        print(f"diagnosis-gated masks: {called_normal} of {len(rows)} cases diagnosed normal, {len(gated)} of them "
              f"had lesion pixels and now have an empty mask (originals in {output / UNGATED_FOLDER}; "
              "--no-gating keeps the raw masks)", flush=True)
    print(summary(report, "predicted"), flush=True)
    return EXIT_SKIPPED if report.skipped else 0


def _case_pixels(case) -> np.ndarray:
    """A checked case as nnU-Net would read it; colour files converted to grey as the converters do."""
    from nnunet_phyjoint.inference.input_check import CONVERT

    if not any(f.status == CONVERT for f in case.files):
        return read_case([f.path for f in case.files])
    from dataset_conversion.imaging import read_grey_image

    channels = []
    for f in case.files:
        pixels = read_grey_image(f.path)[0] if f.status == CONVERT else read_case([f.path])[0, 0]
        channels.append(np.asarray(pixels)[None, None])
    return np.vstack(channels, dtype=np.float32, casting="unsafe")


def write_mask(path: Path, segmentation: np.ndarray) -> None:
    """A label map as nnU-Net's NaturalImage2DIO writes it (uint8, uint16 from 255 labels on), atomically."""
    from PIL import Image

    from nnunet_phyjoint.atomic_io import atomic_path

    labels = segmentation.astype(np.uint8 if segmentation.max() < 255 else np.uint16, copy=False)
    with atomic_path(path) as tmp:
        Image.fromarray(np.ascontiguousarray(labels)).save(tmp, format=_pil_format(path))


def _pil_format(path: Path) -> str:
    return {".png": "PNG", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF"}.get(path.suffix.lower(), "PNG")


def _write_classification(path: Path, rows: dict[str, np.ndarray]) -> None:
    from nnunet_phyjoint.evaluation.io import read_classification_csv, write_classification_csv

    merged = read_classification_csv(path) if path.is_file() else {}
    merged.update(rows)
    write_classification_csv(path, merged)
