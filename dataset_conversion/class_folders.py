"""Layouts with one folder per class and masks beside their images (PRECISE, BUSI).

``<class>/<stem>.png`` with ``<stem>_mask.png`` and optionally ``<stem>_mask_1.png``, ``_mask_2.png``...
anywhere below the source folder (a release may nest class folders, e.g. ``images/Train/benign``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from nnunet_phyjoint.metadata import CLASS_NAMES

from dataset_conversion.problems import ConversionError, ProblemLog

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
_MASK = re.compile(r"^(?P<stem>.+)_mask(?:_\d+)?$", re.IGNORECASE)


@dataclass
class FolderImage:
    image: Path
    folder_class: str
    masks: list[Path]


def source_files(root: Path) -> list[Path]:
    """Every non-hidden file below ``root``, sorted; a clear error when ``root`` is not a folder."""
    root = Path(root)
    if not root.is_dir():
        raise ConversionError(f"source folder {root} does not exist or is not a folder")
    out = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).parts
        if p.is_file() and not any(part.startswith(".") for part in rel):
            out.append(p)
    return out


def mask_stem(path: Path) -> str | None:
    """``'benign (1)'`` for ``benign (1)_mask_2.png``; None for an image."""
    m = _MASK.match(path.stem)
    return m.group("stem") if m else None


def collect(root: Path, log: ProblemLog, suffix: str = ".png") -> list[FolderImage]:
    """Images found in class folders with their masks; everything unusable goes to ``log``."""
    images: dict[Path, FolderImage] = {}
    masks: dict[tuple[Path, str], list[Path]] = {}
    for f in source_files(root):
        ext = f.suffix.lower()
        if ext not in IMAGE_SUFFIXES:
            log.ignore(f, "not an image file")
            continue
        if f.parent == root:  # e.g. a preview image written beside the class folders
            log.ignore(f, "outside the class folders (benign/, malignant/, normal/)")
            continue
        if ext != suffix:
            log.skip(f, f"unexpected file type {f.suffix!r} in this layout (expected {suffix})")
            continue
        folder = f.parent.name.lower()
        if folder not in CLASS_NAMES:
            log.skip(f, f"unknown class folder {f.parent.name!r} (expected benign, malignant or normal)")
            continue
        stem = mask_stem(f)
        if stem is None:
            images[f] = FolderImage(f, folder, [])
        else:
            masks.setdefault((f.parent, stem), []).append(f)
    for (folder, stem), found in sorted(masks.items()):
        image = folder / f"{stem}{suffix}"
        if image in images:
            images[image].masks = sorted(found)
        else:
            for m in sorted(found):
                log.skip(m, f"mask without an image ({stem}{suffix} is missing)")
    out = []
    for img in sorted(images.values(), key=lambda i: i.image):
        if img.masks:
            out.append(img)
        else:
            log.skip(img.image, f"no mask beside the image (expected {img.image.stem}_mask{suffix})")
    return out
