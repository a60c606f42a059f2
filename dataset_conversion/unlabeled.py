"""Unlabeled test images -> a folder ``nnUNetv2_predict`` reads: ``CASE_0000.png`` (grey) + ``cases.json``."""
from __future__ import annotations

import json
import re
from pathlib import Path

from dataset_conversion.class_folders import IMAGE_SUFFIXES, source_files
from dataset_conversion.imaging import read_grey_image, save_png
from dataset_conversion.naming import CaseIdAllocator
from dataset_conversion.problems import CaseProblem, ConversionError, ProblemLog
from dataset_conversion.report import REPORT_NAME
from dataset_conversion.target import atomic_folder

CASES_JSON = "cases.json"
_MASK_LIKE = re.compile(r"_(mask(_\d+)?|tumor|other\d*)$", re.IGNORECASE)


def candidate_images(source: Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The image files below ``source`` that :func:`convert_images` converts, and the files it leaves out (why)."""
    images, left_out = [], []
    for f in source_files(Path(source)):
        if f.suffix.lower() not in IMAGE_SUFFIXES:
            left_out.append((f, "not an image file"))
        elif _MASK_LIKE.search(f.stem):
            left_out.append((f, "named like a mask"))
        else:
            images.append(f)
    return images, left_out


def convert_images(source: Path, out: Path, overwrite: bool = False, strict: bool = False, *,
                   quiet: bool = False) -> Path:
    """Write every image below ``source`` as ``out/<case>_0000.png`` and ``out/cases.json`` (case id -> file).

    The file is given relative to ``source``. Case ids are the sanitized file stems (``benign (3).png``
    -> ``benign_3``), made unique in sorted path order. Files named like masks are left out.
    Returns ``out``.
    """
    from nnunet_phyjoint.progress import progress

    source, out = Path(source), Path(out)
    images, left_out = candidate_images(source)
    if out.resolve().is_relative_to(source.resolve()):
        raise ConversionError(f"output folder {out} lies inside the source folder {source}; the source is never modified")
    if out.exists() and not overwrite:
        raise ConversionError(f"{out} already exists; pass --overwrite (overwrite=True) to replace it")
    log = ProblemLog(source, strict)
    for f, reason in left_out:
        log.ignore(f, reason)
    if not images:
        raise ConversionError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found in {source}")
    new_id = CaseIdAllocator()
    mapping: dict[str, str] = {}
    doppler: list[str] = []
    with atomic_folder(out, overwrite) as tmp:
        for f in progress(images, desc="preparing images", unit="image", disable=quiet):
            try:
                grey, colour = read_grey_image(f)
            except CaseProblem as p:
                log.skip(p.path, p.reason)
                continue
            cid = new_id(f.stem)
            save_png(grey, tmp / f"{cid}_0000.png")
            mapping[cid] = log.rel(f)
            if colour:
                doppler.append(cid)
        if not mapping:
            raise ConversionError(f"no image in {source} could be read; first problem: {log.skipped[0]}")
        (tmp / CASES_JSON).write_text(json.dumps(mapping, indent=2))
        report = {
            "source_folder": str(source.resolve()), "num_cases": len(mapping), "doppler": doppler,
            "skipped": [p.to_json() for p in log.skipped], "ignored": [p.to_json() for p in log.ignored],
        }
        (tmp / REPORT_NAME).write_text(json.dumps(report, indent=2))
    if not quiet:
        print(f"{len(mapping)} images written to {out} (case ids -> files in {out / CASES_JSON})")
        if doppler:
            print(f"  Doppler/colour images: {', '.join(doppler)}")
        for title, items in (("skipped", log.skipped), ("ignored", log.ignored)):
            print(f"  {title}: {len(items)}")
            for p in items:
                print(f"    {p}")
    return out
