"""Case ids and dataset folder names that are safe in file names and in nnU-Net."""
from __future__ import annotations

import re

_UNSAFE = re.compile(r"[^A-Za-z0-9]+")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


def sanitize(text: str) -> str:
    """Letters and digits joined by single underscores: ``'benign (3)'`` -> ``'benign_3'``."""
    return _UNSAFE.sub("_", text).strip("_")


class CaseIdAllocator:
    """Hands out sanitized, prefixed, unique case ids.

    Deterministic as long as callers ask in a deterministic order (converters walk sorted paths);
    a clash gets ``_2``, ``_3``... appended.
    """

    def __init__(self, prefix: str = ""):
        self.prefix = sanitize(prefix)
        self.used: set[str] = set()

    def __call__(self, text: str) -> str:
        base = "_".join(p for p in (self.prefix, sanitize(text)) if p) or "case"
        cid, n = base, 1
        while cid.lower() in self.used:  # case-insensitive: ids become file names on any file system
            n += 1
            cid = f"{base}_{n}"
        self.used.add(cid.lower())
        return cid


def dataset_folder_name(dataset_id: int, name: str) -> str:
    """``Dataset501_BUSI`` from 501 and ``'BUSI'``, with clear errors for unusable input."""
    if not 1 <= int(dataset_id) <= 999:
        raise ValueError(f"dataset id must be between 1 and 999 (nnU-Net uses three digits), got {dataset_id}")
    if not _NAME.match(name):
        raise ValueError(f"dataset name {name!r} may hold only letters, digits, '_' and '-' (and start with a letter or digit)")
    return f"Dataset{int(dataset_id):03d}_{name}"
