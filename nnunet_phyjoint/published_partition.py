"""Cross-validation folds from BUS-BRA's published partition (``5-fold-cv.csv`` / ``10-fold-cv.csv``).

Results on the authors' own folds compare with the numbers published on BUS-BRA; our patient-wise
stratified split (:mod:`nnunet_phyjoint.splits`) does not. The partition file has one row per image:
``ID`` (``bus_0001-l``), ``kFold`` (the fold whose test set holds the image) and ``valid_k`` (1 = training,
0 = validation in fold k). nnU-Net scores the last epoch and selects nothing on a validation set, so
fold k here validates on the authors' *test* set k and trains on their training and validation images
together.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Mapping

from nnunet_phyjoint.metadata import CaseMeta
from nnunet_phyjoint.split_checks import Split, verify_splits


def _image_ids(metadata: Mapping[str, CaseMeta]) -> dict[str, str]:
    """BUS-BRA image ID (``bus_0001-l``) -> case id, from each case's source image file."""
    ids = {}
    for cid, meta in metadata.items():
        for source in meta.source_files:
            if Path(source).parent.name == "Images":
                ids[Path(source).stem] = cid
    return ids


def bus_bra_partition_splits(partition_csv: str | Path,
                             metadata: Mapping[str, CaseMeta]) -> tuple[list[Split], list[str]]:
    """nnU-Net's splits from the authors' partition, and warnings about it.

    Split ``k - 1`` has ``val`` = the images with ``kFold == k`` and ``train`` = all others. Raises
    ``ValueError`` naming the file when it lacks a column, an image of the dataset, or has a row the dataset
    lacks, and when a patient sits on both sides of a fold. Near-duplicate images (the converter's
    duplicate groups) split across folds are allowed, since the partition is the authors', and each is
    named in a warning.
    """
    path = Path(partition_csv)
    ids = _image_ids(metadata)
    if not ids:
        raise ValueError(f"{path}: the dataset's cases have no BUS-BRA source image (Images/bus_*.png); "
                         "convert it with `phyjoint convert bus-bra`")
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        missing_columns = {"ID", "kFold"} - set(reader.fieldnames or ())
        if missing_columns:
            raise ValueError(f"{path}: no column(s) {sorted(missing_columns)}; expected BUS-BRA's "
                             "5-fold-cv.csv or 10-fold-cv.csv (ID, Pathology, kFold, valid_1, ...)")
        fold_of: dict[str, int] = {}
        for line, row in enumerate(reader, start=2):
            try:
                fold = int(row["kFold"])
            except (TypeError, ValueError):
                raise ValueError(f"{path}, line {line}: kFold {row['kFold']!r} is not a fold number") from None
            image = (row["ID"] or "").strip()
            if image not in ids:
                raise ValueError(f"{path}, line {line}: image {image!r} is not in the dataset")
            fold_of[ids[image]] = fold
    absent = sorted(set(metadata) - set(fold_of))
    if absent:
        raise ValueError(f"{path}: {len(absent)} case(s) of the dataset have no row: {absent[:5]}")

    folds = sorted(set(fold_of.values()))
    splits = [{"train": sorted(c for c, k in fold_of.items() if k != fold),
               "val": sorted(c for c, k in fold_of.items() if k == fold)} for fold in folds]
    try:
        warnings = verify_splits(splits, metadata, duplicates="report")
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    return splits, warnings
