"""nnU-Net folders, read from the environment at call time.

``nnunetv2.paths`` reads the variables once at import; our commands and tests may set them
later, so we look them up whenever they are needed.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

_VARS = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")


def nnunet_dir(var: str) -> Path:
    """The folder named by environment variable ``var`` (one of nnU-Net's three)."""
    if var not in _VARS:
        raise ValueError(f"{var} is not one of {_VARS}")
    value = os.environ.get(var)
    if not value:
        raise RuntimeError(
            f"environment variable {var} is not set; run `eval \"$(phyjoint env WORKDIR)\"` "
            "or export nnUNet_raw, nnUNet_preprocessed and nnUNet_results yourself"
        )
    return Path(value)


def raw_dir() -> Path:
    return nnunet_dir("nnUNet_raw")


def preprocessed_dir() -> Path:
    return nnunet_dir("nnUNet_preprocessed")


def results_dir() -> Path:
    return nnunet_dir("nnUNet_results")


def find_dataset_name(dataset_id: int | str, base: Path | None = None) -> str:
    """``DatasetXXX_NAME`` for an id (or a full name), searching raw then preprocessed."""
    if isinstance(dataset_id, str) and dataset_id.startswith("Dataset"):
        return dataset_id
    did = int(dataset_id)
    pattern = re.compile(rf"^Dataset{did:03d}_.+")
    bases = [base] if base is not None else []
    for var in _VARS:
        if os.environ.get(var):
            bases.append(Path(os.environ[var]))
    for b in bases:
        if b.is_dir():
            hits = sorted(p.name for p in b.iterdir() if p.is_dir() and pattern.match(p.name))
            if len(hits) > 1:
                raise RuntimeError(f"more than one dataset with id {did} in {b}: {hits}")
            if hits:
                return hits[0]
    raise FileNotFoundError(f"no Dataset{did:03d}_* folder in {[str(b) for b in bases]}")
