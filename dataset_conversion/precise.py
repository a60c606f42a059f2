"""PRECISE 2025 (PACE challenge) and our simulator's output: class folders, ``PACE_<subject>_<code>_<tag>.png``."""
from __future__ import annotations

import re
from pathlib import Path

from dataset_conversion import class_folders
from dataset_conversion.duplicates import DEFAULT_THRESHOLD
from dataset_conversion.problems import ProblemLog
from dataset_conversion.writer import SourceCase, write_dataset

SOURCE = "precise"
DEFAULT_NAME = "PRECISE"
# 100/101 are follow-up images of a benign/malignant lesion (the challenge documents), so one
# subject may contribute several images.
CLASS_CODES = {"000": "normal", "001": "benign", "002": "malignant", "100": "benign", "101": "malignant"}
_NAME = re.compile(r"^PACE_(?P<subject>\d{5})_(?P<code>\d{3})_(?P<tag>[A-Za-z0-9]+)$")


def find_cases(source: Path, log: ProblemLog) -> list[SourceCase]:
    """PRECISE cases below ``source``; bad files go to ``log``."""
    cases: list[SourceCase] = []
    seen: dict[str, Path] = {}
    for item in class_folders.collect(source, log):
        stem = item.image.stem
        m = _NAME.match(stem)
        if not m:
            log.skip(item.image, "file name does not follow PACE_<5-digit subject>_<3-digit code>_<source tag>.png")
            continue
        label = CLASS_CODES.get(m["code"])
        if label is None:
            log.skip(item.image, f"unknown class code {m['code']} (known: {', '.join(sorted(CLASS_CODES))})")
            continue
        if label != item.folder_class:
            log.skip(item.image, f"class code {m['code']} ({label}) disagrees with its folder {item.image.parent.name}/")
            continue
        if stem in seen:
            log.skip(item.image, f"case {stem} already taken from {log.rel(seen[stem])}")
            continue
        seen[stem] = item.image
        cases.append(SourceCase(case_id=stem, image=item.image, masks=item.masks, label=label,
                                patient=m["subject"], scanner=m["tag"]))
    return cases


def convert_precise(source: Path, dataset_id: int, name: str | None = None, overwrite: bool = False,
                    strict: bool = False, *, duplicate_threshold: int = DEFAULT_THRESHOLD, quiet: bool = False) -> Path:
    """Convert a PRECISE-layout folder (real or simulated) into ``$nnUNet_raw/DatasetXXX_NAME``; returns that folder.

    Case id = file stem, patient = subject number, scanner = source tag.
    """
    source = Path(source)
    log = ProblemLog(source, strict)
    return write_dataset(find_cases(source, log), log, source=SOURCE, dataset_id=dataset_id,
                         name=name or DEFAULT_NAME, overwrite=overwrite, duplicate_threshold=duplicate_threshold,
                         description="PRECISE 2025 (PACE challenge) layout: BUSI + BrEaST + BUS-BRA, or simulated",
                         quiet=quiet)
