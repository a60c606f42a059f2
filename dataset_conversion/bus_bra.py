"""BUS-BRA: ``Images/bus_0001-l.png``, ``Masks/mask_0001-l.png`` and ``bus_data.csv`` (patient, pathology, device)."""
from __future__ import annotations

from pathlib import Path

from dataset_conversion.duplicates import DEFAULT_THRESHOLD
from dataset_conversion.layout import child, dataset_root
from dataset_conversion.naming import CaseIdAllocator
from dataset_conversion.problems import ConversionError, ProblemLog
from dataset_conversion.tables import read_table
from dataset_conversion.writer import SourceCase, write_dataset

DEFAULT_NAME = "BUSBRA"
SOURCE_TAG = "BUSBRA"
METADATA = "bus_data.csv"


def _png_files(folder: Path, log: ProblemLog) -> dict[str, Path]:
    out = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and not p.name.startswith("."):
            if p.suffix.lower() == ".png":
                out[p.stem] = p
            else:
                log.ignore(p, "not a PNG file")
    return out


def find_cases(source: Path, log: ProblemLog) -> list[SourceCase]:
    root = dataset_root(source, ("images", "masks"), "BUS-BRA")
    log.source_root = root
    csv_path = child(root, METADATA) or child(root.parent, METADATA)
    if csv_path is None:
        raise ConversionError(f"{root}: {METADATA} not found (it gives each image's patient and pathology)")
    table = read_table(csv_path, ["id", "case", "pathology"])
    images = _png_files(child(root, "images"), log)
    masks = _png_files(child(root, "masks"), log)
    new_id = CaseIdAllocator(SOURCE_TAG)
    cases, used_images, used_masks, rows = [], set(), set(), {}
    for n, row in table.rows:
        stem = row["id"].strip()
        stem = stem if stem.lower().startswith("bus_") else f"bus_{stem}"
        mask_stem = "mask_" + stem[4:]
        pathology = row["pathology"].strip().lower()
        if stem in rows:
            log.skip(csv_path, f"row {n}: {row['id']} already described in row {rows[stem]}")
            continue
        rows[stem] = n
        if stem not in images:
            log.skip(csv_path, f"row {n}: no image Images/{stem}.png")
            continue
        used_images.add(stem)
        if pathology not in ("benign", "malignant"):
            log.skip(images[stem], f"row {n} of {METADATA}: unknown pathology {row['pathology']!r} (benign or malignant)")
            continue
        if not row["case"].strip():
            log.skip(images[stem], f"row {n} of {METADATA}: no patient (Case) given")
            continue
        if mask_stem not in masks:
            log.skip(images[stem], f"no mask Masks/{mask_stem}.png")
            continue
        used_masks.add(mask_stem)
        cases.append(SourceCase(case_id=new_id(stem[4:]), image=images[stem], masks=[masks[mask_stem]],
                                label=pathology, patient=row["case"].strip(),
                                scanner=row.get("device", "").strip() or SOURCE_TAG))
    for stem, img in images.items():
        if stem not in used_images:
            log.skip(img, f"no row in {METADATA}")
    for stem, mask in masks.items():
        image_stem = "bus_" + stem[5:] if stem.lower().startswith("mask_") else None
        if stem not in used_masks and image_stem not in rows and image_stem not in images:  # else reported above
            log.skip(mask, f"mask without an image (expected Images/{image_stem or 'bus_<id>'}.png and a row in {METADATA})")
    return cases


def convert_bus_bra(source: Path, dataset_id: int, name: str | None = None, overwrite: bool = False,
                    strict: bool = False, *, duplicate_threshold: int = DEFAULT_THRESHOLD, quiet: bool = False) -> Path:
    """Convert BUS-BRA; patient = ``Case``, class = ``Pathology``, scanner = ``Device`` of bus_data.csv."""
    log = ProblemLog(Path(source), strict)
    cases = find_cases(Path(source), log)
    return write_dataset(cases, log, source="bus-bra", dataset_id=dataset_id, name=name or DEFAULT_NAME,
                         overwrite=overwrite, duplicate_threshold=duplicate_threshold,
                         description="BUS-BRA (Gomez-Flores et al. 2024)", quiet=quiet)
