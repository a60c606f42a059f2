"""BUS-UCLM: ``images/`` and ``masks/`` with identical names, RGB masks whose colour is the class, ``INFO.csv``."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from nnunet_phyjoint.metadata import CLASS_NAMES

from dataset_conversion.duplicates import DEFAULT_THRESHOLD
from dataset_conversion.imaging import read_binary_mask, read_mask_pixels
from dataset_conversion.layout import child, dataset_root, truthy
from dataset_conversion.naming import CaseIdAllocator
from dataset_conversion.problems import CaseProblem, ProblemLog
from dataset_conversion.tables import read_table
from dataset_conversion.writer import SourceCase, write_dataset

DEFAULT_NAME = "BUSUCLM"
SCANNER = "BUSUCLM"  # one Siemens ACUSON S2000
_NAME = re.compile(r"^(?P<patient>[A-Za-z]{4})_(?P<index>\d+)$")
# Colours by channel bits (channel >= 128): (R, G, B). Decoding by channel, not by grey level:
# pure red is ~76 in grey and a 127 grey threshold would drop every malignant lesion.
_COLOURS = {(0, 0, 0): None, (0, 1, 0): "benign", (1, 0, 0): "malignant", (1, 1, 1): "lesion"}


def decode_colour_mask(path: Path) -> tuple[np.ndarray, set[str]]:
    """Lesion pixels (green or red, or white/grey of an uncoloured mask) and the classes their colours say.

    An all-black mask says ``normal``. Any other colour is refused with the file named.
    """
    arr = read_mask_pixels(path)
    if arr.ndim == 2 or arr.dtype == bool:
        lesion = read_binary_mask(path)
        return lesion, (set() if lesion.any() else {"normal"})
    bits = (arr[..., :3] >= 128).astype(np.uint8)
    code = bits[..., 0] * 4 + bits[..., 1] * 2 + bits[..., 2]
    present = {(int(c) >> 2 & 1, int(c) >> 1 & 1, int(c) & 1) for c in np.unique(code)}
    unexpected = sorted(present - set(_COLOURS))
    if unexpected:
        names = ", ".join(f"RGB{tuple(255 * b for b in u)}" for u in unexpected)
        raise CaseProblem(path, f"unexpected mask colour(s) {names}: expected black, green (benign) or red (malignant)")
    lesion = code != 0
    classes = {_COLOURS[c] for c in present} - {None, "lesion"}
    return lesion, (classes if lesion.any() else {"normal"})


def _info(root: Path, log: ProblemLog) -> tuple[dict[str, tuple[int, str, bool]] | None, set[str]]:
    """Image stem -> (row number, class, doppler) from INFO.csv (None without INFO.csv), and stems of bad rows."""
    path = child(root, "INFO.csv")
    if path is None:
        return None, set()
    table = read_table(path, ["image", "label"])
    info: dict[str, tuple[int, str, bool]] = {}
    bad: set[str] = set()
    for n, row in table.rows:
        stem = Path(row["image"]).stem
        label = row["label"].strip().lower()
        if not stem:
            log.skip(path, f"row {n}: no image name")
        elif label not in CLASS_NAMES:
            log.skip(path, f"row {n} ({row['image']}): unknown label {row['label']!r}")
            bad.add(stem)
        elif stem in info:
            log.skip(path, f"row {n}: {row['image']} already described in row {info[stem][0]}")
        else:
            info[stem] = (n, label, truthy(row.get("doppler", "")))
    return info, bad


def find_cases(source: Path, log: ProblemLog) -> list[SourceCase]:
    root = dataset_root(source, ("images", "masks"), "BUS-UCLM")
    log.source_root = root
    images_dir, masks_dir = child(root, "images"), child(root, "masks")
    info, bad_rows = _info(root, log)
    masks = {p.stem: p for p in sorted(masks_dir.iterdir()) if p.is_file() and p.suffix.lower() == ".png"}
    new_id = CaseIdAllocator("BUSUCLM")
    cases, seen = [], set()
    for img in sorted(images_dir.iterdir()):
        if not img.is_file() or img.name.startswith("."):
            continue
        if img.suffix.lower() != ".png":
            log.ignore(img, "not a PNG file")
            continue
        seen.add(img.stem)
        m = _NAME.match(img.stem)
        if not m:
            log.skip(img, "name is not <4-letter patient code>_<index>.png, so the patient is unknown")
            continue
        if img.stem not in masks:
            log.skip(img, f"no mask masks/{img.name}")
            continue
        label, doppler = None, False
        if info is not None:
            if img.stem in bad_rows:
                continue  # its row was reported above
            if img.stem not in info:
                log.skip(img, "no row in INFO.csv")
                continue
            _, label, doppler = info[img.stem]
        cases.append(SourceCase(case_id=new_id(img.stem), image=img, masks=[masks[img.stem]], label=label,
                                patient=m["patient"].upper(), scanner=SCANNER, doppler=doppler))
    for stem, mask in masks.items():
        if stem not in seen:
            log.skip(mask, f"mask without an image (images/{mask.name} is missing)")
    for stem, (n, _, _) in sorted((info or {}).items(), key=lambda kv: kv[1][0]):
        if stem not in seen:
            log.skip(child(root, "INFO.csv"), f"row {n}: no image images/{stem}.png")
    return cases


def convert_bus_uclm(source: Path, dataset_id: int, name: str | None = None, overwrite: bool = False,
                     strict: bool = False, *, duplicate_threshold: int = DEFAULT_THRESHOLD, quiet: bool = False) -> Path:
    """Convert BUS-UCLM; the class comes from INFO.csv and must agree with the mask colour (or from the colour alone)."""
    log = ProblemLog(Path(source), strict)
    cases = find_cases(Path(source), log)
    return write_dataset(cases, log, source="bus-uclm", dataset_id=dataset_id, name=name or DEFAULT_NAME,
                         overwrite=overwrite, decode_mask=decode_colour_mask, duplicate_threshold=duplicate_threshold,
                         description="BUS-UCLM (Vallez et al. 2025); green and red mask pixels both lesion",
                         quiet=quiet)
