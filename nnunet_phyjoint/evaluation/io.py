"""Files in and out of evaluation: label PNGs, the classification CSV, atomic writes.

The classification CSV is the one hand-off between the predictor and everything after it
(evaluation, ensembling, challenge export)::

    case_id,predicted_class,prob_normal,prob_benign,prob_malignant
    CASE_0001,benign,0.1,0.7,0.2
"""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from nnunet_phyjoint.atomic_io import atomic_write_text
from nnunet_phyjoint.metadata import CLASS_NAMES

CLASSIFICATION_HEADER: tuple[str, ...] = ("case_id", "predicted_class", *(f"prob_{c}" for c in CLASS_NAMES))
CLASSIFICATION_CSV = "classification.csv"


def json_safe(obj: Any) -> Any:
    """``obj`` with NaN/inf turned into ``None`` and numpy scalars/arrays into Python ones (strict JSON)."""
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(path: str | Path, obj: Any) -> None:
    """Strict JSON (no NaN), indented, written atomically."""
    atomic_write_text(path, json.dumps(json_safe(obj), indent=2, allow_nan=False) + "\n")


def list_pngs(folder: str | Path) -> dict[str, Path]:
    """Case id -> path for every ``*.png`` directly in ``folder`` (sorted by case id)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder")
    return {p.stem: p for p in sorted(folder.glob("*.png")) if p.is_file()}


def read_mask(path: str | Path) -> np.ndarray:
    """A binary lesion mask (bool, H x W) from a single-channel PNG with values {0, 1}.

    nnU-Net writes labels and predictions with values 0/1; anything else (0/255 masks,
    RGB masks, other labels) is refused rather than silently thresholded.
    """
    from PIL import Image

    path = Path(path)
    try:
        with Image.open(path) as im:
            arr = np.asarray(im)
    except Exception as e:  # PIL raises several unrelated types for unreadable files
        raise ValueError(f"{path}: cannot read image ({e})") from None
    if arr.ndim != 2:
        raise ValueError(f"{path}: expected a single-channel label PNG, got shape {arr.shape}")
    values = np.unique(arr)
    if not set(values.tolist()) <= {0, 1}:
        raise ValueError(
            f"{path}: label values {values[:10].tolist()} are not in {{0, 1}} "
            "(nnU-Net labels and predictions use 0 = background, 1 = lesion)"
        )
    return arr.astype(bool)


def read_grey_image(path: str | Path) -> np.ndarray:
    """An image as a 2D float array for display (colour images averaged to grey)."""
    from PIL import Image

    with Image.open(path) as im:
        arr = np.asarray(im, dtype=np.float32)
    return arr.mean(axis=2) if arr.ndim == 3 else arr


def write_classification_csv(path: str | Path, rows: Mapping[str, np.ndarray]) -> None:
    """Write case id -> class probabilities (length 3, order of CLASS_NAMES); predicted = argmax."""
    lines = [",".join(CLASSIFICATION_HEADER)]
    for case_id in sorted(rows):
        probs = np.asarray(rows[case_id], dtype=np.float64).reshape(-1)
        if probs.shape != (len(CLASS_NAMES),) or not np.all(np.isfinite(probs)):
            raise ValueError(f"case {case_id}: expected {len(CLASS_NAMES)} finite probabilities, got {probs}")
        if "," in case_id:
            raise ValueError(f"case id {case_id!r} contains a comma")
        predicted = CLASS_NAMES[int(np.argmax(probs))]
        lines.append(",".join([case_id, predicted, *(repr(float(p)) for p in probs)]))
    atomic_write_text(path, "\n".join(lines) + "\n")


def read_classification_csv(path: str | Path) -> dict[str, np.ndarray]:
    """Case id -> class probabilities (float64, order of CLASS_NAMES) from a classification CSV.

    ``predicted_class`` must name a class; a row whose predicted class is not the argmax of
    its probabilities is accepted (an external model may threshold differently) but the
    probabilities are what is returned. Use :func:`read_predicted_classes` for the column itself.
    """
    return {cid: probs for cid, (_, probs) in _read_rows(path).items()}


def read_predicted_classes(path: str | Path) -> dict[str, int]:
    """Case id -> predicted class index (the ``predicted_class`` column) from a classification CSV."""
    return {cid: pred for cid, (pred, _) in _read_rows(path).items()}


def _read_rows(path: str | Path) -> dict[str, tuple[int, np.ndarray]]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"classification CSV {path} does not exist")
    out: dict[str, tuple[int, np.ndarray]] = {}
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header) != CLASSIFICATION_HEADER:
            raise ValueError(f"{path}: header must be {','.join(CLASSIFICATION_HEADER)}, got {header}")
        for line_no, row in enumerate(reader, start=2):
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != len(CLASSIFICATION_HEADER):
                raise ValueError(f"{path}:{line_no}: expected {len(CLASSIFICATION_HEADER)} columns, got {len(row)}")
            case_id, predicted = row[0].strip(), row[1].strip()
            if case_id in out:
                raise ValueError(f"{path}:{line_no}: case {case_id} appears twice")
            if predicted not in CLASS_NAMES:
                raise ValueError(f"{path}:{line_no}: predicted_class {predicted!r} is not one of {CLASS_NAMES}")
            try:
                probs = np.array([float(c) for c in row[2:]], dtype=np.float64)
            except ValueError:
                raise ValueError(f"{path}:{line_no}: probabilities {row[2:]} are not numbers") from None
            if not np.all(np.isfinite(probs)):
                raise ValueError(f"{path}:{line_no}: probabilities {row[2:]} are not finite")
            out[case_id] = (CLASS_NAMES.index(predicted), probs)
    return out
