"""Patient-wise cross-validation splits in nnU-Net's ``splits_final.json`` format.

Folds are stratified by diagnosis class and grouped so that no patient, and no pair of
near-duplicate images, ever sits on both sides of a split (the groups and the check:
:mod:`nnunet_phyjoint.split_checks`).
"""
from __future__ import annotations

import json
import warnings
from collections import Counter
from pathlib import Path
from typing import Any, Mapping

from nnunet_phyjoint.atomic_io import write_json_atomic
from nnunet_phyjoint.metadata import CLASS_NAMES, CaseMeta, load_case_metadata
from nnunet_phyjoint.split_checks import Split, case_groups, verify_splits

__all__ = ["SplitWarning", "case_groups", "format_fold_balance", "leave_one_scanner_out_splits",
           "load_raw_dataset_json", "make_splits", "validation_folds", "verify_splits", "write_splits"]


class SplitWarning(UserWarning):
    """Folds that are valid but worth a look (e.g. near-duplicates on both sides of a published split)."""


def _stratum(m: CaseMeta) -> int:
    # unlabeled cases form their own stratum instead of breaking the split
    return CLASS_NAMES.index(m.label) if m.label in CLASS_NAMES else len(CLASS_NAMES)


def _metadata(dataset_json: Mapping[str, Any] | str | Path | Mapping[str, CaseMeta]) -> dict[str, CaseMeta]:
    if isinstance(dataset_json, Mapping) and dataset_json and all(
        isinstance(v, CaseMeta) for v in dataset_json.values()
    ):
        return dict(dataset_json)  # already loaded metadata
    return load_case_metadata(dataset_json)


def make_splits(
    dataset_json: Mapping[str, Any] | str | Path, n_folds: int = 4, seed: int = 0
) -> list[dict[str, list[str]]]:
    """Stratified (by class), grouped (by patient and duplicate group) ``n_folds``-fold splits.

    ``dataset_json`` is a dataset.json dict or path carrying our ``"phyjoint"`` metadata (a dict
    of :class:`CaseMeta` is accepted too). Deterministic for a seed; case ids are sorted.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    metadata = _metadata(dataset_json)
    if n_folds < 2:
        raise ValueError(f"n_folds must be at least 2, got {n_folds}")
    case_ids = sorted(metadata)
    groups = case_groups(metadata)
    n_groups = len(set(groups.values()))
    if n_groups < n_folds:
        raise ValueError(f"{n_groups} patient group(s) cannot fill {n_folds} folds; use fewer folds")
    y = [_stratum(metadata[c]) for c in case_ids]
    g = [groups[c] for c in case_ids]
    sgkf = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    splits = []
    for train_idx, val_idx in sgkf.split(case_ids, y, g):
        splits.append({
            "train": sorted(case_ids[i] for i in train_idx),
            "val": sorted(case_ids[i] for i in val_idx),
        })
    verify_splits(splits, metadata)
    return splits


def leave_one_scanner_out_splits(dataset_json: Mapping[str, Any] | str | Path, min_cases: int = 1) -> list[Split]:
    """One split per scanner: ``val`` = all its cases, ``train`` = every case not sharing a group with them.

    A scanner with fewer than ``min_cases`` images is never held out (too few to score); its images stay in
    every split's training set.

    Each split also carries ``"held_out_scanner"``. nnU-Net's trainer reads only
    ``splits[fold]['train']`` and ``['val']`` (nnunetv2 2.8.1 ``nnUNetTrainer.do_split``), so the
    extra key is harmless in splits_final.json.
    """
    metadata = _metadata(dataset_json)
    counts: dict[str, int] = {}
    for m in metadata.values():
        counts[m.scanner] = counts.get(m.scanner, 0) + 1
    if len(counts) < 2:
        raise ValueError(f"leave-one-scanner-out needs at least two scanners, found {sorted(counts)}")
    scanners = sorted(s for s, n in counts.items() if n >= min_cases)
    if not scanners:
        raise ValueError(f"no scanner has {min_cases} or more images to hold out: {counts}")
    groups = case_groups(metadata)
    splits = []
    for scanner in scanners:
        val = sorted(c for c, m in metadata.items() if m.scanner == scanner)
        val_groups = {groups[c] for c in val}
        # a patient group reaching into the held-out scanner is dropped from training entirely
        train = sorted(c for c, m in metadata.items() if m.scanner != scanner and groups[c] not in val_groups)
        splits.append({"train": train, "val": val, "held_out_scanner": scanner})
    verify_splits(splits, metadata, require_partition=False)
    return splits


def format_fold_balance(splits: list[Split], metadata: Mapping[str, CaseMeta] | Mapping[str, Any] | str | Path) -> str:
    """A text table of cases, patient groups and class counts (with %) per fold and side."""
    metadata = _metadata(metadata)
    groups = case_groups(metadata)
    labels = list(CLASS_NAMES)
    if any(m.label not in CLASS_NAMES for m in metadata.values()):
        labels.append("unknown")
    header = ["fold", "side", "cases", "groups", *labels]
    rows = []
    for i, split in enumerate(splits):
        name = str(i) if "held_out_scanner" not in split else f"{i} ({split['held_out_scanner']})"
        for side in ("train", "val"):
            cases = split[side]
            counts = Counter(metadata[c].label if metadata[c].label in CLASS_NAMES else "unknown" for c in cases)
            n = max(len(cases), 1)
            rows.append([name, side, str(len(cases)), str(len({groups[c] for c in cases})),
                         *(f"{counts[l]} ({100 * counts[l] / n:.0f}%)" for l in labels)])
    widths = [max(len(r[j]) for r in [header, *rows]) for j in range(len(header))]
    fmt = lambda r: "  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([fmt(header), fmt(["-" * w for w in widths]), *map(fmt, rows)])


def _case_ids_in_images(raw_dataset: Path, file_ending: str) -> set[str] | None:
    images = raw_dataset / "imagesTr"
    if not images.is_dir():
        return None
    suffix = f"_0000{file_ending}"
    return {p.name[: -len(suffix)] for p in images.iterdir() if p.name.endswith(suffix)}


def validation_folds(splits_json: str | Path) -> dict[str, int]:
    """Case id -> the fold whose validation set holds it, read from nnU-Net's ``splits_final.json``.

    Raises ``ValueError`` naming the file when it is not a list of ``{"train": [...], "val": [...]}`` or a case
    is in two validation sets; ``FileNotFoundError`` when it is missing.
    """
    path = Path(splits_json)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found (nnU-Net's splits_final.json)")
    try:
        splits = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(splits, list) or not all(isinstance(s, dict) and isinstance(s.get("val"), list) for s in splits):
        raise ValueError(f"{path}: not nnU-Net's splits_final.json (a list of {{\"train\": [...], \"val\": [...]}})")
    fold_of: dict[str, int] = {}
    for fold, split in enumerate(splits):
        for case in split["val"]:
            if case in fold_of:
                raise ValueError(f"{path}: case {case!r} is in the validation set of folds {fold_of[case]} and {fold}")
            fold_of[case] = fold
    return fold_of


def load_raw_dataset_json(dataset_id: int | str) -> tuple[str, Path, dict[str, Any]]:
    """(``DatasetXXX_NAME``, its raw folder, the parsed dataset.json) for an id."""
    from nnunet_phyjoint.paths import find_dataset_name, raw_dir

    name = find_dataset_name(dataset_id, raw_dir())
    folder = raw_dir() / name
    path = folder / "dataset.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: convert the dataset first (`phyjoint convert ...`)")
    try:
        with open(path) as f:
            return name, folder, json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from None


def write_splits(
    dataset_id: int | str,
    n_folds: int = 4,
    seed: int = 0,
    overwrite: bool = False,
    *,
    leave_one_scanner_out: bool = False,
    loso_min_cases: int = 1,
    partition_csv: str | Path | None = None,
) -> Path:
    """Write ``$nnUNet_preprocessed/DatasetXXX_NAME/splits_final.json`` and return its path.

    Reads dataset.json from ``$nnUNet_raw``. An existing file with different content is kept
    (``FileExistsError``) unless ``overwrite``; an identical one is left untouched. With
    ``partition_csv`` the folds are BUS-BRA's published ones (:mod:`nnunet_phyjoint.published_partition`),
    each of their warnings issued as a :class:`SplitWarning`.
    """
    from nnunet_phyjoint.paths import preprocessed_dir

    name, raw_folder, dataset_json = load_raw_dataset_json(dataset_id)
    metadata = load_case_metadata(dataset_json)
    on_disk = _case_ids_in_images(raw_folder, dataset_json.get("file_ending", ".png"))
    if on_disk is not None and on_disk != set(metadata):
        only_meta, only_disk = sorted(set(metadata) - on_disk), sorted(on_disk - set(metadata))
        raise ValueError(
            f"{raw_folder / 'dataset.json'}: metadata and imagesTr disagree "
            f"(metadata only: {only_meta[:5]}, images only: {only_disk[:5]})"
        )
    if partition_csv is not None:
        from nnunet_phyjoint.published_partition import bus_bra_partition_splits

        splits, notes = bus_bra_partition_splits(partition_csv, metadata)
        for note in notes:
            warnings.warn(note, SplitWarning, stacklevel=2)
    elif leave_one_scanner_out:
        splits = leave_one_scanner_out_splits(metadata, loso_min_cases)
    else:
        splits = make_splits(metadata, n_folds, seed)
    path = preprocessed_dir() / name / "splits_final.json"
    if path.exists():
        try:
            existing = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            existing = None
        if existing == splits:
            return path
        if not overwrite:
            raise FileExistsError(f"{path} exists with different splits; pass --overwrite to replace it")
    write_json_atomic(path, splits)
    return path

