"""BUSI (``Dataset_BUSI_with_GT``) and Curated BUSI (BUSI restricted to a ``class;id`` keep-list)."""
from __future__ import annotations

import re
from pathlib import Path

from nnunet_phyjoint.metadata import CLASS_NAMES

from dataset_conversion import class_folders
from dataset_conversion.duplicates import DEFAULT_THRESHOLD
from dataset_conversion.naming import CaseIdAllocator
from dataset_conversion.problems import ConversionError, ProblemLog
from dataset_conversion.tables import read_rows
from dataset_conversion.writer import SourceCase, write_dataset

DEFAULT_NAME = "BUSI"
CURATED_DEFAULT_NAME = "CuratedBUSI"
SCANNER = "BUSI"  # one GE LOGIQ E9; no patient ids are published, so every image is its own patient
_NUMBERED = re.compile(r"^(?P<cls>[A-Za-z]+)\s*\((?P<n>\d+)\)$")


def find_cases(source: Path, log: ProblemLog, prefix: str = "BUSI") -> list[SourceCase]:
    """BUSI cases: every mask of an image (``_mask``, ``_mask_1``...) is merged into its label later."""
    new_id = CaseIdAllocator(prefix)
    cases = []
    for item in class_folders.collect(source, log):
        m = _NUMBERED.match(item.image.stem)
        if m and m["cls"].lower() != item.folder_class:
            log.warn(item.image, f"name says {m['cls']} but the file is in {item.image.parent.name}/; the folder is used")
        cases.append(SourceCase(case_id=new_id(item.image.stem), image=item.image, masks=item.masks,
                                label=item.folder_class, patient=None, scanner=SCANNER))
    return cases


def read_keep_list(path: Path) -> dict[tuple[str, int], int]:
    """(class, N) -> row number, from a ``class;id`` CSV (header optional, ``;`` or ``,``).

    Rows that cannot be read are fatal: a keep-list is a deliberate choice, and guessing around a
    broken row would silently change the dataset.
    """
    path = Path(path)
    (rows,) = read_rows(path)[:1] or [[]]
    keep: dict[tuple[str, int], int] = {}
    for n, row in enumerate(rows, start=1):
        cells = [c for c in row if c != ""]
        if not cells:
            continue
        if n == 1 and len(cells) >= 2 and not cells[1].isdigit():
            continue  # header
        if len(cells) < 2 or cells[0].lower() not in CLASS_NAMES or not cells[1].isdigit():
            raise ConversionError(f"{path}: row {n} {';'.join(row)!r} is not '<benign|malignant|normal>;<number>'")
        key = (cells[0].lower(), int(cells[1]))
        if key in keep:
            raise ConversionError(f"{path}: row {n} repeats {key[0]};{key[1]} (first in row {keep[key]})")
        keep[key] = n
    if not keep:
        raise ConversionError(f"{path}: the keep-list has no rows")
    return keep


def _keep_key(rel: Path) -> tuple[str, int] | None:
    """(class folder, N) of an image or mask path, or None when the name does not say."""
    stem = class_folders.mask_stem(rel) or rel.stem
    m = _NUMBERED.match(stem)
    if not m or len(rel.parts) < 2:
        return None
    return rel.parent.name.lower(), int(m["n"])


def convert_busi(source: Path, dataset_id: int, name: str | None = None, overwrite: bool = False,
                 strict: bool = False, *, duplicate_threshold: int = DEFAULT_THRESHOLD, quiet: bool = False) -> Path:
    """Convert BUSI (class folders ``benign/ malignant/ normal/``, ``<class> (N).png`` + ``_mask*.png``)."""
    source = Path(source)
    log = ProblemLog(source, strict)
    return write_dataset(find_cases(source, log), log, source="busi", dataset_id=dataset_id,
                         name=name or DEFAULT_NAME, overwrite=overwrite, duplicate_threshold=duplicate_threshold,
                         description="BUSI (Al-Dhabyani et al. 2020), all masks of an image merged by logical OR",
                         quiet=quiet)


def convert_curated_busi(source: Path, dataset_id: int, name: str | None = None, overwrite: bool = False,
                         strict: bool = False, *, keep_list: Path,
                         duplicate_threshold: int = DEFAULT_THRESHOLD, quiet: bool = False) -> Path:
    """Convert the BUSI images named in ``keep_list`` (``class;id`` rows, id = N in ``<class> (N).png``).

    Unlike the curators' own preprocessing, every mask (``_mask_2`` included) is kept and merged by OR.
    """
    source, keep_list = Path(source), Path(keep_list)
    keep = read_keep_list(keep_list)
    log = ProblemLog(source, strict)
    # Scan leniently first: a broken file the curators left out must not stop a strict run.
    scan = ProblemLog(source, strict=False)
    scanned = find_cases(source, scan, prefix="CBUSI")
    for problem in scan.skipped:
        key = _keep_key(Path(problem.file))
        if key is not None and key not in keep:
            log.ignore(problem.file, f"not in the keep-list ({problem.reason})")
        else:
            log.skip(source / problem.file, problem.reason)
    log.warnings += scan.warnings
    log.ignored += scan.ignored
    found: set[tuple[str, int]] = set()
    cases = []
    for case in scanned:
        m = _NUMBERED.match(case.image.stem)
        key = (case.label, int(m["n"])) if m else None
        if key not in keep:
            log.ignore(case.image, "not in the keep-list" if m else "name is not '<class> (N).png': the keep-list cannot name it")
            continue
        found.add(key)
        cases.append(case)
    for key, row in sorted(keep.items(), key=lambda kv: kv[1]):
        if key not in found:
            log.skip(keep_list, f"row {row} ({key[0]};{key[1]}): no usable image {key[0]}/{key[0]} ({key[1]}).png in the source")
    return write_dataset(cases, log, source="curated-busi", dataset_id=dataset_id,
                         name=name or CURATED_DEFAULT_NAME, overwrite=overwrite,
                         duplicate_threshold=duplicate_threshold,
                         description="Curated BUSI (Aumente-Maestro et al. 2024 keep-list), masks merged by logical OR",
                         quiet=quiet)
