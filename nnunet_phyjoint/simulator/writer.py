"""Writing a simulated dataset: PNG files inside a temporary folder that is renamed into place when complete."""
from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from PIL import Image

from nnunet_phyjoint.atomic_io import atomic_folder


def write_png(path: Path, array: np.ndarray) -> None:
    """A single-channel 8-bit PNG."""
    if array.dtype != np.uint8 or array.ndim != 2:
        raise ValueError(f"{path}: expected a 2-D uint8 array, got {array.dtype} {array.shape}")
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode="L").save(path, optimize=False)


def write_json(path: Path, data: Any) -> None:
    with open(path, "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")


@contextlib.contextmanager
def staging_dir(out: Path, overwrite: bool = False) -> Iterator[Path]:
    """A temporary folder beside ``out`` that becomes ``out`` when the block finishes without error.

    An existing non-empty ``out`` is refused unless ``overwrite``; then it is replaced only after the
    new dataset is complete. On error the temporary folder is removed and ``out`` is untouched.
    """
    out = Path(out).absolute()
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out} exists and is not empty; pass --overwrite to replace it")
    with atomic_folder(out) as tmp:
        yield tmp
