"""Every arm on an independent test set: its cross-validation fold models, ensembled as a user would.

Cross-validation scores each case with the one model that did not see it; a user deploys all fold
models at once (``nnUNetv2_predict -f 0 1 2 3``, ``phyjoint predict`` for PhyJoint models). The test
set is another raw dataset (e.g. simulated with another seed and converted under its own id); it is
never planned, preprocessed or trained on. Its images are ``imagesTs`` with ``labelsTs`` when both
exist, else ``imagesTr`` with ``labelsTr``. Each arm's CV postprocessing decision
(``OUT/cv_pp/<arm>/postprocessing.json``, read without unpickling its ``.pkl`` twin) is applied to its
test predictions too, with nnU-Net's own ``apply_postprocessing_to_folder``: the decision is taken on
the cross-validation, never on the test set.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable

from nnunet_phyjoint.atomic_io import atomic_folder
from nnunet_phyjoint.benchmark import runner
from nnunet_phyjoint.evaluation.io import CLASSIFICATION_CSV, list_pngs, write_json

SOURCE_FILE = "test_source.json"  # which checkpoints made the predictions (reuse while unchanged)


def test_set_folders(test_dataset_name: str) -> tuple[Path, Path, Path]:
    """(raw dataset folder, images folder, labels folder) of the test dataset.

    ``imagesTs`` + ``labelsTs`` when both exist, else ``imagesTr`` + ``labelsTr``; a missing or empty
    folder is a FileNotFoundError naming it.
    """
    from nnunet_phyjoint.paths import raw_dir

    raw = raw_dir() / test_dataset_name
    for images, labels in (("imagesTs", "labelsTs"), ("imagesTr", "labelsTr")):
        if (raw / images).is_dir() and (raw / labels).is_dir():
            if not any((raw / labels).iterdir()):
                raise FileNotFoundError(f"{raw / labels} is empty: the test set needs a label per image")
            return raw, raw / images, raw / labels
    raise FileNotFoundError(f"{raw} has neither imagesTs+labelsTs nor imagesTr+labelsTr")


def _checkpoints(model_folder: Path, folds: Iterable[int]) -> dict[str, float]:
    out = {}
    for fold in folds:
        chk = model_folder / f"fold_{fold}" / "checkpoint_final.pth"
        if not chk.is_file():
            raise FileNotFoundError(f"{chk} not found: fold {fold} of {model_folder.name} is not trained")
        out[str(fold)] = chk.stat().st_mtime
    return out


def predict_test_set(dataset_name: str, trainer: str, plans: str, model_folder: Path, folds: list[int],
                     images: Path, out: Path, device: str, log_file: Path, label: str,
                     with_classification: bool) -> dict[str, Any]:
    """Predict ``images`` with the ensemble of ``folds`` into ``out`` (replaced atomically); returns the source record.

    PhyJoint arms go through ``phyjoint predict`` (masks gated by the diagnosis, ``classification.csv``),
    stock arms through ``nnUNetv2_predict``; both with nnU-Net's defaults (mirroring on). A folder made
    by the same checkpoints from the same number of images is reused.
    """
    out = Path(out)
    n_images = len(list(Path(images).glob("*_0000.*")))
    source = {"trainer": trainer, "plans": plans, "folds": folds, "checkpoint_mtimes": _checkpoints(model_folder, folds),
              "images": str(images), "n_images": n_images, "device": device}
    recorded = out / SOURCE_FILE
    if recorded.is_file() and json.loads(recorded.read_text()) == source and len(list_pngs(out)) == n_images:
        print(f"[{label}] test predictions up to date: {out}", flush=True)
        return source
    command = [runner.script("phyjoint"), "predict"] if with_classification else [runner.script("nnUNetv2_predict")]
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".test_", dir=out.parent) as tmp:
        cmd = [*command, "-i", str(images), "-o", tmp, "-d", dataset_name[7:10], "-tr", trainer, "-p", plans,
               "-c", "2d", "-f", *map(str, folds), "-device", device, "-npp", "1", "-nps", "1",
               "--disable_progress_bar"]  # the log gets nnU-Net's per-case lines, not bar redraws
        runner.run_logged(cmd, log_file, label)
        predicted = list_pngs(Path(tmp))
        if len(predicted) != n_images:
            raise RuntimeError(f"[{label}] {len(predicted)} masks for {n_images} test images (log: {log_file})")
        with atomic_folder(out) as staging:
            for path in predicted.values():
                shutil.copy2(path, staging / path.name)
            if with_classification:
                shutil.copy2(Path(tmp) / CLASSIFICATION_CSV, staging / CLASSIFICATION_CSV)
            write_json(staging / SOURCE_FILE, source)
    return source


def apply_cv_postprocessing(predictions: Path, cv_pp_folder: Path, out: Path) -> list[str]:
    """Apply the arm's cross-validation decision to ``predictions``, into ``out`` (replaced atomically).

    The decision is read from nnU-Net's ``postprocessing.json`` (function names and their kwargs, resolved
    in nnU-Net's own module), so nothing is unpickled. Returns the function names (empty: ``out`` holds
    copies of the raw masks).
    """
    import nnunetv2.postprocessing.remove_connected_components as nnunet_pp

    from nnunet_phyjoint.benchmark.postprocessing import DECISION_FILE

    decision_file = cv_pp_folder / DECISION_FILE
    decision = json.loads(decision_file.read_text())
    functions = list(decision.get("postprocessing_fns", []))
    unknown = [f for f in functions if not callable(getattr(nnunet_pp, f, None))]
    if unknown:
        raise ValueError(f"{decision_file}: postprocessing function(s) {unknown} are not nnU-Net's")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".test_pp_", dir=out.parent) as tmp:
        if functions:
            nnunet_pp.apply_postprocessing_to_folder(
                str(predictions), tmp, [getattr(nnunet_pp, f) for f in functions],
                list(decision.get("postprocessing_kwargs", [{}] * len(functions))), num_processes=1,
                plans_file_or_dict=str(cv_pp_folder / "plans.json"),
                dataset_json_file_or_dict=str(cv_pp_folder / "dataset.json"))
        with atomic_folder(out) as staging:
            source = Path(tmp) if functions else predictions
            for path in list_pngs(source).values():
                shutil.copy2(path, staging / path.name)
            if (predictions / CLASSIFICATION_CSV).is_file():
                shutil.copy2(predictions / CLASSIFICATION_CSV, staging / CLASSIFICATION_CSV)
    return functions
