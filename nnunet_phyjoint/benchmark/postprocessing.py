"""nnU-Net's postprocessing of an arm's cross-validation predictions, decided as nnU-Net decides it.

``nnUNetv2_find_best_configuration`` ends by calling nnU-Net's ``determine_postprocessing`` on the
pooled cross-validation predictions: "keep only the largest foreground component" is kept when
it raises the mean foreground Dice (and lowers no class). Users then apply it to their test
predictions with ``nnUNetv2_apply_postprocessing``. The benchmark makes the same decision per arm,
with nnU-Net's own function, so that every arm is compared as its user would deploy it.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from nnunet_phyjoint.atomic_io import atomic_folder
from nnunet_phyjoint.evaluation.io import CLASSIFICATION_CSV, list_pngs

DECISION_FILE = "postprocessing.json"
PICKLE_FILE = "postprocessing.pkl"  # nnU-Net's own format, read by nnUNetv2_apply_postprocessing


def determine_nnunet_postprocessing(cv_folder: Path, gt_labels: Path, model_folder: Path, out: Path) -> dict[str, Any]:
    """Run nnU-Net's ``determine_postprocessing`` on a copy of ``cv_folder``; write the result to ``out``.

    ``out`` (replaced atomically) receives the postprocessed masks (identical copies where nnU-Net
    keeps the raw ones), ``cv_folder``'s ``classification.csv``, nnU-Net's decision as
    ``postprocessing.json`` and ``postprocessing.pkl`` (for ``nnUNetv2_apply_postprocessing``) and the
    model's ``plans.json`` / ``dataset.json``. ``cv_folder`` itself is left untouched. The plans and dataset.json are
    the trained model folder's. Returns ``{"functions": [...], "dice_before": x, "dice_after": y}``
    (nnU-Net's foreground-mean Dice, empty-on-empty cases left out as nnU-Net leaves them out).
    """
    from nnunetv2.postprocessing.remove_connected_components import determine_postprocessing

    cv_folder, gt_labels, model_folder, out = Path(cv_folder), Path(gt_labels), Path(model_folder), Path(out)
    for needed in (model_folder / "plans.json", model_folder / "dataset.json"):
        if not needed.is_file():
            raise FileNotFoundError(f"{needed} not found: {model_folder} is not a trained nnU-Net model folder")
    masks = list_pngs(cv_folder)
    if not masks:
        raise FileNotFoundError(f"no predicted masks in {cv_folder}")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".pp_", dir=out.parent) as tmp:
        work = Path(tmp) / "predictions"
        work.mkdir()
        for path in masks.values():
            shutil.copy2(path, work / path.name)
        # one worker: nnU-Net's pool runs beside training jobs on small machines
        determine_postprocessing(str(work), str(gt_labels), str(model_folder / "plans.json"),
                                 str(model_folder / "dataset.json"), num_processes=1,
                                 keep_postprocessed_files=True)
        decision = json.loads((work / DECISION_FILE).read_text())
        with atomic_folder(out) as staging:
            for path in (work / "postprocessed").glob("*.png"):
                shutil.copy2(path, staging / path.name)
            if (cv_folder / CLASSIFICATION_CSV).is_file():
                shutil.copy2(cv_folder / CLASSIFICATION_CSV, staging / CLASSIFICATION_CSV)
            shutil.copy2(work / DECISION_FILE, staging / DECISION_FILE)
            # what nnUNetv2_apply_postprocessing needs: -pp_pkl_file, plus plans.json/dataset.json beside the masks
            shutil.copy2(work / PICKLE_FILE, staging / PICKLE_FILE)
            for name in ("plans.json", "dataset.json"):
                shutil.copy2(model_folder / name, staging / name)
    return {"functions": list(decision.get("postprocessing_fns", [])),
            "dice_before": decision["input_folder"]["foreground_mean"]["Dice"],
            "dice_after": decision["postprocessed"]["foreground_mean"]["Dice"]}


def describe(functions: list[str]) -> str:
    """Short name of nnU-Net's chosen postprocessing for a table cell."""
    if not functions:
        return "none"
    names = {"remove_all_but_largest_component_from_segmentation": "largest component"}
    return " + ".join(names.get(f, f) for f in functions)
