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
    several = f" ({len(inner)} folders below it hold them: {', '.join(p.name for p in inner)})" if inner else ""
    raise ConversionError(f"{source} does not look like {what}: expected {', '.join(n + '/' for n in must_hold)} "
                          f"in it or in one folder below it{several}; found instead: {describe_contents(source)}")


def describe_contents(folder: Path, limit: int = 6) -> str:
    """What ``folder`` holds at its top level, for error messages: ``'2 folders (a/, b/), 1 file (x.csv)'``."""
    folder = Path(folder)
    if not folder.is_dir():
        return "no such folder"
    entries = [p for p in sorted(folder.iterdir()) if not p.name.startswith(".")]
    parts = []
    for names, word in (([p.name + "/" for p in entries if p.is_dir()], "folder"),
                        ([p.name for p in entries if not p.is_dir()], "file")):
        if names:
            shown = ", ".join(names[:limit]) + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")
            parts.append(f"{len(names)} {word}{'s' if len(names) != 1 else ''} ({shown})")
    return ", ".join(parts) or "nothing (an empty folder)"


def no_layout_error(source: Path, what: str, tried: list[str]) -> ConversionError:
    """The error of a converter that recognises none of its layouts: each layout tried, then what is there."""
    listed = "".join(f"\n  - {t}" for t in tried)
    return ConversionError(f"{source} does not look like {what}; layouts tried:{listed}\n"
                           f"found instead: {describe_contents(source)}")


def truthy(text: str) -> bool:
    """Yes-like cell values of metadata tables (``1``, ``yes``, ``true``, ``y``, ``si``, ``x``)."""
    return text.strip().lower() in {"1", "yes", "y", "true", "t", "si", "sí", "x"}
