"""Temporary input folders holding only what passed :mod:`.input_check` (links, plus grey copies of colour images).

nnU-Net's predict and ensemble read whole folders, so skipping a file means handing them another
folder: links to the good files (nothing is copied when links work), converted images written
fresh. The folder lives in the system's temporary directory and is removed afterwards.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from PIL import Image

from nnunet_phyjoint.inference.input_check import CONVERT, InputReport


def link_or_copy(src: Path, dst: Path) -> None:
    """A symbolic link to ``src`` at ``dst`` (a copy where links are not allowed)."""
    try:
        os.symlink(Path(src).resolve(), dst)
    except OSError:
        shutil.copy2(src, dst)


def write_prediction_inputs(report: InputReport, target: Path) -> None:
    """The usable cases of ``report`` into ``target``, under their own names; colour images converted to grey."""
    from dataset_conversion.imaging import read_grey_image

    for case in report.usable:
        for f in case.files:
            if f.status == CONVERT:
                grey, _ = read_grey_image(f.path)
                # PIL picks the format from the name: the file keeps the ending the model expects
                Image.fromarray(np.ascontiguousarray(grey, dtype=np.uint8), "L").save(target / f.path.name)
            else:
                link_or_copy(f.path, target / f.path.name)


@contextmanager
def prediction_inputs(report: InputReport) -> Iterator[Path]:
    """The folder to predict from: ``report.source`` itself when nothing is skipped or converted, else a staged one."""
    if not report.needs_staging:
        yield report.source
        return
    with tempfile.TemporaryDirectory(prefix="phyjoint_inputs_") as tmp:
        write_prediction_inputs(report, Path(tmp))
        yield Path(tmp)


@contextmanager
def ensemble_inputs(report: InputReport, folders: Sequence[Path | str],
                    classification_file: str = "classification.csv") -> Iterator[list[Path]]:
    """The folders to ensemble: the given ones when nothing is skipped, else staged copies with the usable cases only."""
    from nnunet_phyjoint.evaluation.io import read_classification_csv, write_classification_csv

    folders = [Path(f) for f in folders]
    if not report.skipped:
        yield folders
        return
    keep = [c.case_id for c in report.usable]
    with tempfile.TemporaryDirectory(prefix="phyjoint_ensemble_inputs_") as tmp:
        staged = []
        for i, folder in enumerate(folders):
            target = Path(tmp) / f"{i}_{folder.name}"
            target.mkdir()
            for name in ("dataset.json", "plans.json"):
                if (folder / name).is_file():
                    link_or_copy(folder / name, target / name)
            for case_id in keep:
                for suffix in (".npz", ".pkl"):
                    link_or_copy(folder / f"{case_id}{suffix}", target / f"{case_id}{suffix}")
            table = read_classification_csv(folder / classification_file)
            write_classification_csv(target / classification_file, {c: table[c] for c in keep})
            staged.append(target)
        yield staged


def restore_recorded_input(output_folder: Path, staged: Path, original: Path) -> None:
    """Name the real input folder in nnU-Net's ``predict_from_raw_data_args.json`` instead of the staged one."""
    record = Path(output_folder) / "predict_from_raw_data_args.json"
    if not record.is_file() or staged == original:
        return
    args = json.loads(record.read_text())
    if args.get("list_of_lists_or_source_folder") == str(staged):
        args["list_of_lists_or_source_folder"] = str(original)
        record.write_text(json.dumps(args, indent=4))
