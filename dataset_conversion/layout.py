"""Finding the dataset folder when the user points at it or at the folder above it."""
from __future__ import annotations

from pathlib import Path

from dataset_conversion.problems import ConversionError


def child(folder: Path, name: str) -> Path | None:
    """The entry of ``folder`` called ``name``, ignoring case (releases differ: ``Images`` vs ``images``)."""
    if not folder.is_dir():
        return None
    hits = sorted(p for p in folder.iterdir() if p.name.lower() == name.lower())
    return hits[0] if hits else None


def dataset_root(source: Path, must_hold: tuple[str, ...], what: str) -> Path:
    """``source`` or its single sub-folder that holds every entry in ``must_hold``."""
    source = Path(source)
    if not source.is_dir():
        raise ConversionError(f"source folder {source} does not exist or is not a folder")
    if all(child(source, n) for n in must_hold):
        return source
    inner = [p for p in sorted(source.iterdir()) if p.is_dir() and all(child(p, n) for n in must_hold)]
    if len(inner) == 1:
        return inner[0]
    raise ConversionError(f"{source} does not look like {what}: expected {', '.join(n + '/' for n in must_hold)} "
                          f"in it or in one folder below it")


def truthy(text: str) -> bool:
    """Yes-like cell values of metadata tables (``1``, ``yes``, ``true``, ``y``, ``si``, ``x``)."""
    return text.strip().lower() in {"1", "yes", "y", "true", "t", "si", "sí", "x"}
