"""Where a dataset goes, and writing it there atomically (temporary folder beside it, renamed when complete)."""
from __future__ import annotations

import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from dataset_conversion.naming import dataset_folder_name
from dataset_conversion.problems import ConversionError
from nnunet_phyjoint import atomic_io


def _nnunet_folders() -> list[Path]:
    from nnunet_phyjoint.paths import raw_dir

    folders = [raw_dir()]  # required: raises a clear error when nnUNet_raw is unset
    for var in ("nnUNet_preprocessed", "nnUNet_results"):
        if os.environ.get(var):
            folders.append(Path(os.environ[var]))
    return folders


def dataset_target(dataset_id: int, name: str, overwrite: bool) -> Path:
    """``$nnUNet_raw/DatasetXXX_NAME`` after checking that writing there is allowed.

    Refused: an id that another dataset name already uses (in raw, preprocessed or results, where
    nnU-Net would then find two datasets for one id), and an existing folder without ``overwrite``.
    """
    from nnunet_phyjoint.paths import raw_dir

    try:
        folder_name = dataset_folder_name(dataset_id, name)
    except ValueError as e:
        raise ConversionError(str(e)) from None
    same_id = re.compile(rf"^Dataset{int(dataset_id):03d}_.+")
    for base in _nnunet_folders():
        if not base.is_dir():
            continue
        for p in sorted(base.iterdir()):
            if p.is_dir() and same_id.match(p.name) and p.name != folder_name:
                raise ConversionError(
                    f"dataset id {int(dataset_id)} is already used by {p}; choose another id (-d) "
                    f"or remove that folder first"
                )
    target = raw_dir() / folder_name
    if target.exists() and not overwrite:
        raise ConversionError(f"{target} already exists; pass --overwrite (overwrite=True) to replace it")
    return target


@contextmanager
def atomic_folder(target: Path, overwrite: bool) -> Iterator[Path]:
    """Yield a temporary folder beside ``target``; on success it replaces ``target``, on failure it is removed.

    The temporary name starts with a dot so neither nnU-Net nor our id lookup mistakes it for a dataset.
    """
    with atomic_io.atomic_folder(target) as tmp:
        yield tmp
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the dataset should not be
        if target.exists() and not overwrite:
            raise ConversionError(f"{target} appeared while converting; not replacing it without overwrite")
