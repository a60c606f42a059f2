"""PRECISE 2025 challenge submission: ``classification.csv`` (``image_id,label``) + ``segmentation/<image_id>_mask.png``.

Masks are written 0/255 (uint8) at the size of the prediction, which nnU-Net already gives at
the input size; with a ``cases.json`` (case id -> original file, written when test images are
converted) the size is checked against each original image and ``image_id`` is the original
file's stem.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from nnunet_phyjoint.atomic_io import atomic_folder
from nnunet_phyjoint.evaluation.io import CLASSIFICATION_CSV, list_pngs, read_mask, read_predicted_classes
from nnunet_phyjoint.metadata import CLASS_NAMES

CHALLENGE_LABELS: tuple[str, ...] = tuple(c.capitalize() for c in CLASS_NAMES)  # Normal, Benign, Malignant
# Written beside cases.json by dataset_conversion.convert_images (dataset_conversion.report.REPORT_NAME).
CONVERSION_REPORT = "conversion_report.json"
_ORIGINAL_KEYS = ("original_file", "source_file", "file", "path", "image")


def read_cases_json(path: str | Path) -> tuple[dict[str, str], str | None]:
    """(case id -> original file as written, source folder or None) from a cases.json.

    Accepts ``{"CASE": "orig.png"}``, ``{"CASE": {"original_file": "orig.png", ...}}`` (also
    ``source_file``/``file``/``path``/``image``/``source_files[0]``), and either of these under
    a top-level ``"cases"`` key next to an optional ``"source_dir"``.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: cannot read cases.json ({e})") from None
    source_dir = None
    if isinstance(data, dict) and isinstance(data.get("cases"), dict):
        source_dir = data.get("source_dir") or data.get("source")
        data = data["cases"]
    if not isinstance(data, dict) or not data:
        raise ValueError(f"{path}: expected a non-empty mapping case id -> original file")
    out = {}
    for cid, value in data.items():
        original = value if isinstance(value, str) else _original_from_dict(value)
        if not original:
            raise ValueError(f"{path}: case {cid} has no original file name ({value!r})")
        out[str(cid)] = original
    return out, source_dir if isinstance(source_dir, str) else None


def _original_from_dict(value: Any) -> str | None:
    if not isinstance(value, dict):
        return None
    for key in _ORIGINAL_KEYS:
        if isinstance(value.get(key), str):
            return value[key]
    files = value.get("source_files")
    return files[0] if isinstance(files, list) and files and isinstance(files[0], str) else None


def export_submission(
    pred_dir: str | Path,
    out_dir: str | Path,
    cases_json: str | Path | None = None,
    classification_csv: str | Path | None = None,
    source_dir: str | Path | None = None,
    check_size: bool = True,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Write the challenge layout for the predictions in ``pred_dir`` to ``out_dir``; returns ``out_dir``.

    Class labels come from ``classification_csv`` (default ``pred_dir/classification.csv``).
    Original files named in ``cases_json`` are looked up as given (absolute), under ``source_dir``,
    under the cases.json's own ``source_dir``, under the ``source_folder`` that the conversion
    report beside it records, and beside the cases.json. The result is built in a
    temporary folder and renamed into place.
    """
    from PIL import Image
    from nnunet_phyjoint.progress import progress as progress_bar

    pred_dir, out_dir = Path(pred_dir), Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"{out_dir} exists and is not empty (pass --overwrite to replace it)")
    masks = list_pngs(pred_dir)
    if not masks:
        raise FileNotFoundError(f"no prediction PNGs in {pred_dir}")
    csv_path = Path(classification_csv) if classification_csv else pred_dir / CLASSIFICATION_CSV
    if not csv_path.is_file():
        raise FileNotFoundError(f"class predictions {csv_path} not found (pass --classification CSV)")
    classes = read_predicted_classes(csv_path)
    _same_cases(set(masks), set(classes), f"masks in {pred_dir}", str(csv_path))

    originals: dict[str, Path | None] = {cid: None for cid in masks}
    image_ids = {cid: cid for cid in masks}
    if cases_json is not None:
        mapping, json_source = read_cases_json(cases_json)
        _same_cases(set(masks), set(mapping), f"masks in {pred_dir}", str(cases_json))
        roots = [Path(p) for p in (source_dir, json_source, _converted_from(cases_json)) if p]
        roots.append(Path(cases_json).parent)
        for cid in masks:
            image_ids[cid] = Path(mapping[cid]).stem
            originals[cid] = _locate(mapping[cid], roots, cid, check_size)
        seen: dict[str, str] = {}
        for cid, iid in image_ids.items():
            if iid in seen:
                raise ValueError(f"cases {seen[iid]} and {cid} both map to image_id {iid} in {cases_json}")
            seen[iid] = cid

    with atomic_folder(out_dir) as tmp:
        (tmp / "segmentation").mkdir()
        for cid in progress_bar(sorted(masks), desc="export", unit="case", disable=not progress, leave=False):
            mask = read_mask(masks[cid])
            if check_size and originals[cid] is not None:
                with Image.open(originals[cid]) as im:
                    width, height = im.size
                if mask.shape != (height, width):
                    raise ValueError(f"case {cid}: prediction {masks[cid]} is {mask.shape[1]}x{mask.shape[0]} "
                                     f"(WxH) but the original {originals[cid]} is {width}x{height}")
            Image.fromarray(mask.astype(np.uint8) * 255).save(
                tmp / "segmentation" / f"{image_ids[cid]}_mask.png")
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["image_id", "label"])
        for cid in sorted(masks, key=lambda c: image_ids[c]):
            writer.writerow([image_ids[cid], CHALLENGE_LABELS[classes[cid]]])
        (tmp / "classification.csv").write_text(buf.getvalue(), encoding="utf-8")
    return out_dir


def _same_cases(a: set[str], b: set[str], a_name: str, b_name: str) -> None:
    only_a, only_b = sorted(a - b), sorted(b - a)
    if only_a or only_b:
        parts = []
        if only_a:
            parts.append(f"{len(only_a)} in {a_name} only: {', '.join(only_a[:10])}")
        if only_b:
            parts.append(f"{len(only_b)} in {b_name} only: {', '.join(only_b[:10])}")
        raise ValueError("case ids differ; " + "; ".join(parts))


def _converted_from(cases_json: str | Path) -> str | None:
    """The source folder recorded by `phyjoint convert images` in the report beside its cases.json."""
    report = Path(cases_json).parent / CONVERSION_REPORT
    try:
        folder = json.loads(report.read_text(encoding="utf-8")).get("source_folder")
    except (OSError, ValueError, AttributeError):
        return None
    return folder if isinstance(folder, str) else None


def _locate(original: str, roots: list[Path], cid: str, required: bool) -> Path | None:
    candidates = [Path(original)] if Path(original).is_absolute() else [r / original for r in roots]
    for c in candidates:
        if c.is_file():
            return c
    if required:
        raise FileNotFoundError(
            f"case {cid}: original image {original} not found (tried {', '.join(map(str, candidates))}); "
            "pass --source-dir, or --no-size-check to skip the size check")
    return None


