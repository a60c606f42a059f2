"""The shared back end of every converter: read each case, write nnU-Net's raw layout, metadata and report."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from nnunet_phyjoint.metadata import CaseMeta, metadata_block

from dataset_conversion.duplicates import DEFAULT_THRESHOLD, duplicate_groups, perceptual_hash
from dataset_conversion.imaging import read_binary_mask, read_grey_image, save_png
from dataset_conversion.problems import CaseProblem, ConversionError, ProblemLog
from dataset_conversion.report import REPORT_NAME, build_report, summary_text
from dataset_conversion.target import atomic_folder, dataset_target

# Reads one mask file: the lesion pixels, and the classes its colours encode (empty when colours carry none).
MaskDecoder = Callable[[Path], tuple[np.ndarray, set[str]]]
# What each converter looks for, named in the error when a source holds none of it
EXPECTED_LAYOUTS = {
    "precise": "class folders benign/, malignant/, normal/ (also under images/Train/, images/Val/) with "
               "PACE_<subject>_<code>_<tag>.png + _mask.png",
    "busi": "[Dataset_BUSI_with_GT/]benign|malignant|normal/<class> (N).png + <class> (N)_mask.png",
    "curated-busi": "[Dataset_BUSI_with_GT/]benign|malignant|normal/<class> (N).png + <class> (N)_mask.png",
}
CHANNEL_NAME = "zscore"  # nnU-Net picks its normalisation by channel name; this one means z-score explicitly


def generic_mask(path: Path) -> tuple[np.ndarray, set[str]]:
    """Binary mask whose colour says nothing about the class."""
    return read_binary_mask(path), set()


@dataclass
class SourceCase:
    """One image of a source dataset as a converter found it, before any pixel is read."""

    case_id: str
    image: Path
    masks: list[Path]
    label: str | None  # None: the mask colours decide (BUS-UCLM without INFO.csv)
    patient: str | None = None  # None: no patient ids published, the image is its own patient
    scanner: str = ""
    doppler: bool = False  # known from metadata; colour detection may add it


@dataclass
class ConvertedCase:
    meta: CaseMeta
    grey: np.ndarray
    mask: np.ndarray


def _resolve_label(case: SourceCase, mask: np.ndarray, implied: set[str]) -> str:
    where = case.masks[0] if case.masks else case.image
    if implied:
        if case.label is None:
            if len(implied) > 1:
                raise CaseProblem(where, f"mask holds lesions of several classes ({', '.join(sorted(implied))})")
            return next(iter(implied))
        if case.label not in implied:
            raise CaseProblem(where, f"metadata says {case.label} but the mask colours say {', '.join(sorted(implied))}")
        return case.label
    if case.label is None:
        if mask.any():
            raise CaseProblem(where, "the lesion colour does not tell the class and no metadata gives it")
        return "normal"
    return case.label


def load_case(case: SourceCase, log: ProblemLog, decode_mask: MaskDecoder = generic_mask) -> ConvertedCase:
    """Read image and masks, merge masks by logical OR, check sizes and classes."""
    grey, colour = read_grey_image(case.image)
    mask = np.zeros(grey.shape, dtype=bool)
    implied: set[str] = set()
    for m in case.masks:
        lesion, classes = decode_mask(m)
        if lesion.shape != grey.shape:
            raise CaseProblem(m, f"mask size {lesion.shape[1]}x{lesion.shape[0]} differs from image size "
                                 f"{grey.shape[1]}x{grey.shape[0]} ({log.rel(case.image)})")
        mask |= lesion
        implied |= classes
    label = _resolve_label(case, mask, implied)
    if len(implied) > 1:
        log.warn(case.masks[0], f"mask colours show {', '.join(sorted(implied))}; metadata class {label} used")
    if label == "normal" and mask.any():
        log.warn(case.image, "class normal but the mask holds a lesion (kept as is)")
    if label != "normal" and not mask.any():
        log.warn(case.image, f"class {label} but the lesion mask is empty")
    meta = CaseMeta(
        case_id=case.case_id,
        label=label,
        patient=case.patient if case.patient is not None else case.case_id,
        scanner=case.scanner,
        source_files=[log.rel(case.image), *(log.rel(m) for m in case.masks)],
        doppler=bool(case.doppler or colour),
    )
    return ConvertedCase(meta, grey, mask)


def write_dataset(
    cases: list[SourceCase],
    log: ProblemLog,
    *,
    source: str,
    dataset_id: int,
    name: str,
    overwrite: bool = False,
    decode_mask: MaskDecoder = generic_mask,
    duplicate_threshold: int = DEFAULT_THRESHOLD,
    description: str = "",
    quiet: bool = False,
) -> Path:
    """Write ``$nnUNet_raw/DatasetXXX_NAME`` from ``cases``; returns the dataset folder.

    Cases whose files are bad are skipped and reported (or stop the run in strict mode, through ``log``).
    """
    from nnunetv2.dataset_conversion.generate_dataset_json import generate_dataset_json
    from nnunet_phyjoint.progress import progress

    target = dataset_target(dataset_id, name, overwrite)
    if not cases:
        from dataset_conversion.layout import describe_contents

        raise ConversionError(
            f"no cases found in {log.source_root} for the {source} layout"
            + (f" ({len(log.skipped)} files skipped: first {log.skipped[0]})" if log.skipped else "")
            + f"; found instead: {describe_contents(log.source_root)}"
            + (f"; expected: {EXPECTED_LAYOUTS[source]}" if source in EXPECTED_LAYOUTS else "")
        )
    metas: list[CaseMeta] = []
    hashes: dict[str, int] = {}
    with atomic_folder(target, overwrite) as tmp:
        (tmp / "imagesTr").mkdir()
        (tmp / "labelsTr").mkdir()
        for case in progress(cases, desc=f"converting {source}", unit="image", disable=quiet):
            try:
                done = load_case(case, log, decode_mask)
            except CaseProblem as p:
                log.skip(p.path, p.reason)
                continue
            save_png(done.grey, tmp / "imagesTr" / f"{case.case_id}_0000.png")
            save_png(done.mask.astype(np.uint8), tmp / "labelsTr" / f"{case.case_id}.png")
            hashes[case.case_id] = perceptual_hash(done.grey)
            metas.append(done.meta)
        if not metas:
            raise ConversionError(f"every case in {log.source_root} was skipped; first problem: {log.skipped[0]}")
        groups = duplicate_groups(hashes, duplicate_threshold)
        by_id = {m.case_id: m for m in metas}
        for group, ids in groups.items():
            for cid in ids:
                by_id[cid].duplicate_group = group
        generate_dataset_json(
            str(tmp),
            channel_names={0: CHANNEL_NAME},
            labels={"background": 0, "lesion": 1},
            num_training_cases=len(metas),
            file_ending=".png",
            dataset_name=target.name,
            description=description or f"Breast ultrasound converted from {source} by `phyjoint convert`",
            license="that of the source dataset",
            converted_by="phyjoint convert",
            **{"phyjoint": metadata_block(metas, source)},
        )
        report = build_report(dataset=target.name, source=source, source_folder=log.source_root, cases=metas,
                              duplicate_groups=groups, duplicate_threshold=duplicate_threshold, log=log)
        with open(tmp / REPORT_NAME, "w") as f:
            json.dump(report, f, indent=2)
    if not quiet:
        print(summary_text(report))
        print(f"  written to {target}")
        stale = _preprocessed_copy(target.name)
        if overwrite and stale is not None:
            print(f"  note: {stale} was made from the previous version; run nnU-Net's planning/preprocessing again")
    return target


def _preprocessed_copy(folder_name: str) -> Path | None:
    import os

    base = os.environ.get("nnUNet_preprocessed")
    p = Path(base) / folder_name if base else None
    return p if p is not None and p.is_dir() else None
