"""Cross-validation predictions of an arm in one folder, and their evaluation.

Each fold's ``fold_X/validation`` holds nnU-Net's masks of that fold's validation cases (and,
for PhyJoint trainers, ``classification.csv``); merged over the folds they are one prediction
per case, which :func:`nnunet_phyjoint.evaluation.evaluate_folders` scores against the raw labels.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Iterable, Mapping

from nnunet_phyjoint.atomic_io import atomic_folder
from nnunet_phyjoint.evaluation.io import (
    CLASSIFICATION_CSV, list_pngs, read_classification_csv, write_classification_csv,
)


def collect_cv_predictions(model_folder: Path, folds: Iterable[int], out: Path,
                           ungated: bool = False) -> dict[str, Any]:
    """Merge ``fold_X/validation/*.png`` (+ ``classification.csv``) of ``folds`` into ``out`` (replaced atomically).

    With ``ungated`` a case whose mask the diagnosis gating emptied contributes its original mask
    (``validation/ungated_masks``) instead: the segmentation the network made, before the diagnosis
    decided about it. Returns ``{"cases": [...], "case_fold": {case: fold}, "classification": bool,
    "ungated_cases": [...]}``. A case in two folds' validation sets is an error (the folds would not be
    a cross-validation).
    """
    from nnunet_phyjoint.inference.normal_gating import UNGATED_FOLDER

    model_folder, out = Path(model_folder), Path(out)
    folds = list(folds)
    case_fold: dict[str, int] = {}
    sources: dict[str, Path] = {}
    restored: list[str] = []
    csv_files = []
    for fold in folds:
        val = model_folder / f"fold_{fold}" / "validation"
        if not val.is_dir():
            raise FileNotFoundError(f"{val} not found: fold {fold} of {model_folder.name} has not been validated")
        for case, path in list_pngs(val).items():
            if case in case_fold:
                raise ValueError(f"case {case} is in the validation output of folds {case_fold[case]} and {fold} "
                                 f"of {model_folder}")
            case_fold[case], sources[case] = fold, path
        if ungated and (val / UNGATED_FOLDER).is_dir():
            for case, path in list_pngs(val / UNGATED_FOLDER).items():
                if case_fold.get(case) == fold:
                    sources[case] = path
                    restored.append(case)
        if (val / CLASSIFICATION_CSV).is_file():
            csv_files.append(val / CLASSIFICATION_CSV)
    if not case_fold:
        raise FileNotFoundError(f"no validation predictions in folds {folds} of {model_folder}")
    with_classification = len(csv_files) == len(folds)

    with atomic_folder(out) as staging:
        for case, path in sources.items():
            shutil.copy2(path, staging / path.name)
        if with_classification:
            probabilities = {}
            for f in csv_files:
                for case, probs in read_classification_csv(f).items():
                    if case in probabilities:
                        raise ValueError(f"{f}: case {case} appears in more than one fold's classification.csv")
                    probabilities[case] = probs
            missing = sorted(set(case_fold) - set(probabilities))
            if missing:
                raise ValueError(f"{len(missing)} validation case(s) of {model_folder} have no classification row: "
                                 f"{missing[:5]}")
            write_classification_csv(staging / CLASSIFICATION_CSV, probabilities)
    return {"cases": sorted(case_fold), "case_fold": case_fold, "classification": with_classification,
            "ungated_cases": sorted(restored)}


def ground_truth_subset(raw_dataset: Path, case_ids: Iterable[str], out: Path, labels_folder: str = "labelsTr") -> Path:
    """``out/labelsTr`` with the labels of ``case_ids`` (from ``raw_dataset/labels_folder``) and
    ``out/dataset.json``; returns the labels folder.

    :func:`evaluate_folders` scores every ground-truth case, so a run over some folds (or one
    held-out scanner) needs a label folder with exactly those cases. Rebuilt only when it differs.
    """
    raw_dataset, out = Path(raw_dataset), Path(out)
    case_ids = sorted(set(case_ids))
    dj = json.loads((raw_dataset / "dataset.json").read_text())
    ending = dj.get("file_ending", ".png")
    labels = out / "labelsTr"
    if labels.is_dir() and sorted(p.name[: -len(ending)] for p in labels.iterdir()) == case_ids \
            and (out / "dataset.json").is_file():
        return labels
    with atomic_folder(out) as staging:
        (staging / "labelsTr").mkdir()
        for case in case_ids:
            src = raw_dataset / labels_folder / f"{case}{ending}"
            if not src.is_file():
                raise FileNotFoundError(f"{src} not found (case {case} has a prediction but no label)")
            shutil.copy2(src, staging / "labelsTr" / src.name)
        shutil.copy2(raw_dataset / "dataset.json", staging / "dataset.json")
    return labels


def evaluate_predictions(gt_labels: Path, pred_folder: Path, raw_dataset: Path, out_dir: Path,
                         n_bootstrap: int = 1000, seed: int = 0, images_folder: str = "imagesTr",
                         case_folds: Mapping[str, int] | None = None) -> dict[str, Any]:
    """:func:`evaluate_folders` of ``pred_folder`` against ``gt_labels`` (report and figures in ``out_dir``;
    the figures' images from ``raw_dataset/images_folder``; per fold too with ``case_folds``)."""
    from nnunet_phyjoint.evaluation import evaluate_folders

    images = raw_dataset / images_folder
    return evaluate_folders(gt_labels, pred_folder, dataset_json=raw_dataset / "dataset.json", out_dir=out_dir,
                            n_bootstrap=n_bootstrap, seed=seed,
                            images_dir=images if images.is_dir() else None,
                            progress=False, case_folds=case_folds)
