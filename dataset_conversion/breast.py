"""BrEaST: a flat folder of ``caseNNN.png`` with ``_tumor`` / ``_other`` masks, described by an xlsx (or its CSV export)."""
from __future__ import annotations

import re
from pathlib import Path

from nnunet_phyjoint.metadata import CLASS_NAMES

from dataset_conversion.duplicates import DEFAULT_THRESHOLD
from dataset_conversion.layout import child, no_layout_error
from dataset_conversion.naming import CaseIdAllocator
from dataset_conversion.problems import ConversionError, ProblemLog
from dataset_conversion.tables import read_table
from dataset_conversion.writer import SourceCase, write_dataset

DEFAULT_NAME = "BrEaST"
SCANNER = "BrEaST"
REQUIRED = ("image_filename", "mask_tumor_filename", "classification")
_EMPTY = {"", "-", "nan", "none", "n/a", "na"}
_OTHER = re.compile(r"_other\d*$", re.IGNORECASE)
IMAGES_FOLDER = "BrEaST-Lesions_USG-images_and_masks"  # the download: this folder beside the clinical-data xlsx
_CASE_IMAGE = re.compile(r"^case\d+\.png$", re.IGNORECASE)


def split_names(cell: str) -> list[str]:
    """File names of one cell: several are joined by ``&``; empty markers give none."""
    return [n.strip() for n in cell.split("&") if n.strip().lower() not in _EMPTY]


def find_metadata(source: Path) -> Path:
    """The one xlsx (else csv) in ``source`` or beside it that has BrEaST's columns."""
    candidates = []
    for folder in (source, source.parent):
        for ext in ("*.xlsx", "*.csv"):
            candidates += sorted(p for p in folder.glob(ext) if not p.name.startswith((".", "~$")))
        if candidates:
            break
    usable = []
    for p in candidates:
        try:
            read_table(p, REQUIRED)
            usable.append(p)
        except ConversionError:
            continue
    if len(usable) != 1:
        found = ", ".join(str(p) for p in usable) or "none"
        raise ConversionError(f"cannot choose BrEaST's metadata in {source} or {source.parent} (usable: {found}); "
                              "name it with --metadata FILE (the xlsx or a CSV export of it)")
    return usable[0]


def _holds_case_images(folder: Path) -> bool:
    return folder.is_dir() and any(p.is_file() and _CASE_IMAGE.match(p.name) for p in folder.iterdir())


def find_image_folder(source: Path) -> Path:
    """The folder of ``caseNNN.png``: ``source`` itself, its ``BrEaST-Lesions_USG-images_and_masks/``, or its
    one sub-folder that holds such images; otherwise an error naming each layout tried and what is there."""
    if not source.is_dir():
        raise ConversionError(f"source folder {source} does not exist or is not a folder")
    if _holds_case_images(source):
        return source
    named = child(source, IMAGES_FOLDER)
    if named is not None and _holds_case_images(named):
        return named
    inner = [p for p in sorted(source.iterdir()) if not p.name.startswith(".") and _holds_case_images(p)]
    if len(inner) == 1:
        return inner[0]
    several = f" (found {len(inner)}: {', '.join(p.name + '/' for p in inner)})" if inner else ""
    raise no_layout_error(source, "BrEaST", [
        f"caseNNN.png (+ _tumor/_other masks) directly in {source}, the xlsx in it or in the folder above",
        f"{source}/{IMAGES_FOLDER}/caseNNN.png with the xlsx in {source} (the published download)",
        f"caseNNN.png in exactly one other folder below {source}{several}",
    ])


def _with_suffix(name: str) -> str:
    return name if Path(name).suffix else f"{name}.png"


def find_cases(source: Path, log: ProblemLog, metadata: Path | None = None) -> list[SourceCase]:
    """BrEaST cases of ``source`` (the flat image folder, or the folder that holds it and the xlsx)."""
    folder = find_image_folder(source)
    metadata = Path(metadata) if metadata else find_metadata(folder)  # in the image folder or the one above
    table = read_table(metadata, REQUIRED)
    files = {p.name: p for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith(".")}
    referenced: set[str] = set()
    new_id = CaseIdAllocator("BrEaST")
    cases, rows_of_image = [], {}
    for n, row in table.rows:
        where = f"row {n} of {metadata.name}"
        image_names = split_names(row["image_filename"])
        tumor = [_with_suffix(t) for t in split_names(row["mask_tumor_filename"])]
        other = [_with_suffix(o) for o in split_names(row.get("mask_other_filename", ""))]
        referenced.update(tumor + other + [_with_suffix(i) for i in image_names])
        if len(image_names) != 1:
            log.skip(metadata, f"{where}: expected one image file name, got {row['image_filename']!r}")
            continue
        image = _with_suffix(image_names[0])
        label = row["classification"].strip().lower()
        if image in rows_of_image:
            log.skip(metadata, f"{where}: {image} already described in row {rows_of_image[image]}")
            continue
        rows_of_image[image] = n
        if image not in files:
            log.skip(metadata, f"{where}: image {image} not found in {folder}")
            continue
        if label not in CLASS_NAMES:
            log.skip(files[image], f"{where}: unknown classification {row['classification']!r}")
            continue
        missing = [t for t in tumor if t not in files]
        if missing:
            log.skip(files[image], f"{where}: tumor mask {', '.join(missing)} not found")
            continue
        if label != "normal" and not tumor:
            log.skip(files[image], f"{where}: {label} but no tumor mask is named")
            continue
        for o in other:
            if o in files:
                log.ignore(files[o], f"'other' finding of {image} (not a lesion)")
        patient = row.get("caseid", "").strip() or None
        cases.append(SourceCase(case_id=new_id(Path(image).stem), image=files[image],
                                masks=[files[t] for t in tumor], label=label, patient=patient, scanner=SCANNER))
    for name, path in files.items():
        if name in referenced or path.resolve() == metadata.resolve():
            continue
        if path.suffix.lower() != ".png":
            log.ignore(path, "not a PNG file")
        elif _OTHER.search(path.stem):
            log.ignore(path, f"'other' finding mask without a row in {metadata.name} (not a lesion)")
        else:
            log.skip(path, f"file without a row in {metadata.name}")
    return cases


def convert_breast(source: Path, dataset_id: int, name: str | None = None, overwrite: bool = False,
                   strict: bool = False, *, metadata: Path | None = None,
                   duplicate_threshold: int = DEFAULT_THRESHOLD, quiet: bool = False) -> Path:
    """Convert BrEaST; only ``Mask_tumor_filename`` masks (``&``-joined, merged by OR) are lesions.

    ``source`` is the flat folder of ``caseNNN.png`` or the folder that holds it
    (``BrEaST-Lesions_USG-images_and_masks/``) and the xlsx, as published. ``metadata`` is the xlsx
    or a CSV export of it; by default the one in the image folder or the folder above it.
    """
    source = Path(source)
    log = ProblemLog(source, strict)
    cases = find_cases(source, log, metadata)
    return write_dataset(cases, log, source="breast", dataset_id=dataset_id, name=name or DEFAULT_NAME,
                         overwrite=overwrite, duplicate_threshold=duplicate_threshold,
                         description="BrEaST (Pawlowska et al. 2024); tumor masks only", quiet=quiet)
