"""nnU-Net's postprocessing decision in the benchmark (keep the largest component when it helps)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from nnunet_phyjoint.benchmark.postprocessing import describe, determine_nnunet_postprocessing
from nnunet_phyjoint.benchmark.table import postprocessed_table


def _mask(path: Path, boxes) -> None:
    m = np.zeros((32, 32), np.uint8)
    for y0, y1, x0, x1 in boxes:
        m[y0:y1, x0:x1] = 1
    Image.fromarray(m).save(path)


def _model_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "plans.json").write_text(json.dumps({
        "dataset_name": "Dataset999_T", "plans_name": "nnUNetPlans", "image_reader_writer": "NaturalImage2DIO",
        "original_median_spacing_after_transp": [1, 1], "original_median_shape_after_transp": [32, 32],
        "transpose_forward": [0, 1], "transpose_backward": [0, 1], "configurations": {},
        "experiment_planner_used": "x", "label_manager": "LabelManager", "foreground_intensity_properties_per_channel": {}}))
    (folder / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "US"}, "labels": {"background": 0, "lesion": 1}, "numTraining": 4,
        "file_ending": ".png"}))
    return folder


def _run(tmp_path: Path, gt_boxes: dict, pred_boxes: dict):
    gt, cv = tmp_path / "gt", tmp_path / "cv"
    gt.mkdir(), cv.mkdir()
    for case, boxes in gt_boxes.items():
        _mask(gt / f"{case}.png", boxes)
        _mask(cv / f"{case}.png", pred_boxes[case])
    (cv / "classification.csv").write_text("case,p_normal,p_benign,p_malignant\n")
    before = {p.name: p.read_bytes() for p in cv.iterdir()}
    result = determine_nnunet_postprocessing(cv, gt, _model_folder(tmp_path), tmp_path / "out")
    assert {p.name: p.read_bytes() for p in cv.iterdir()} == before  # the user's predictions stay as they were
    return result, tmp_path / "out"


def test_islands_are_removed_when_that_raises_the_dice(tmp_path):
    lesion, island = (8, 20, 8, 20), (26, 30, 26, 30)
    gt = {f"c{i}": [lesion] for i in range(3)}
    pred = {f"c{i}": [lesion, island] for i in range(3)}
    result, out = _run(tmp_path, gt, pred)
    assert describe(result["functions"]) == "largest component"
    assert result["dice_after"] > result["dice_before"]
    for i in range(3):
        m = np.array(Image.open(out / f"c{i}.png"))
        assert m[26:30, 26:30].sum() == 0 and m[8:20, 8:20].all()
    assert (out / "classification.csv").is_file() and (out / "postprocessing.json").is_file()
    # the decision is usable the way nnU-Net users apply it (nnUNetv2_apply_postprocessing)
    from batchgenerators.utilities.file_and_folder_operations import load_pickle
    from nnunetv2.postprocessing.remove_connected_components import apply_postprocessing_to_folder

    fns, kwargs = load_pickle(str(out / "postprocessing.pkl"))
    apply_postprocessing_to_folder(str(tmp_path / "cv"), str(tmp_path / "applied"), fns, kwargs,
                                   str(out / "plans.json"), str(out / "dataset.json"), num_processes=1)
    for i in range(3):
        assert np.array_equal(np.array(Image.open(tmp_path / "applied" / f"c{i}.png")),
                              np.array(Image.open(out / f"c{i}.png")))
    assert not any(p.name.startswith(".pp_") for p in tmp_path.iterdir())


def test_nothing_is_applied_when_keeping_one_component_would_cost_dice(tmp_path):
    two = [(2, 10, 2, 10), (20, 30, 20, 30)]
    gt = {f"c{i}": two for i in range(3)}
    result, out = _run(tmp_path, gt, dict(gt))
    assert result["functions"] == [] and describe([]) == "none"
    for i in range(3):
        assert np.array(Image.open(out / f"c{i}.png")).sum() == 8 * 8 + 10 * 10


def test_postprocessed_table_lists_the_decision_and_metrics():
    entry = {"value": 0.85, "ci_low": 0.8, "ci_high": 0.9, "n": 10}
    metrics = {"segmentation": {"dsc": {"lesion_only": entry, "all_image": entry},
                                "jaccard": {"lesion_only": entry}, "hd95_px": {"value": 9.5},
                                "area_ratio_lesion": {"median": 1.01},
                                "counts": {"both_empty": 3, "empty_gt_cases": 4}}}
    rows = [{"arm": "a", "postprocessed": {"functions": ["remove_all_but_largest_component_from_segmentation"],
                                           "metrics": metrics}},
            {"arm": "b"}]
    table = postprocessed_table(rows)
    assert "| `a` | largest component | 0.850 [0.800, 0.900] |" in table
    assert "9.5" in table and "1.01" in table and "3/4" in table
    assert "`b`" not in table


def test_the_cv_decision_is_applied_to_test_predictions_from_its_json_without_unpickling(tmp_path, monkeypatch):
    from nnunet_phyjoint.benchmark.test_set import apply_cv_postprocessing

    lesion, island = (8, 20, 8, 20), (26, 30, 26, 30)
    _, cv_pp = _run(tmp_path, {f"c{i}": [lesion] for i in range(3)}, {f"c{i}": [lesion, island] for i in range(3)})
    test = tmp_path / "test"
    test.mkdir()
    _mask(test / "t0.png", [lesion, island])
    (test / "classification.csv").write_text("case,p_normal,p_benign,p_malignant\n")
    before = {p.name: p.read_bytes() for p in test.iterdir()}
    import pickle

    monkeypatch.setattr(pickle, "load", lambda *a, **k: (_ for _ in ()).throw(AssertionError("unpickled")))
    assert apply_cv_postprocessing(test, cv_pp, tmp_path / "test_pp") == [
        "remove_all_but_largest_component_from_segmentation"]
    m = np.array(Image.open(tmp_path / "test_pp" / "t0.png"))
    assert m[26:30, 26:30].sum() == 0 and m[8:20, 8:20].all()
    assert (tmp_path / "test_pp" / "classification.csv").is_file()
    assert {p.name: p.read_bytes() for p in test.iterdir()} == before  # predictions untouched

    # a decision naming something that is not nnU-Net's postprocessing function is refused
    decision = json.loads((cv_pp / "postprocessing.json").read_text())
    decision["postprocessing_fns"] = ["system"]
    (cv_pp / "postprocessing.json").write_text(json.dumps(decision))
    import pytest

    with pytest.raises(ValueError, match="not nnU-Net's"):
        apply_cv_postprocessing(test, cv_pp, tmp_path / "test_pp2")


def test_a_no_op_decision_copies_the_raw_test_masks(tmp_path):
    from nnunet_phyjoint.benchmark.test_set import apply_cv_postprocessing

    two = [(2, 10, 2, 10), (20, 30, 20, 30)]
    _, cv_pp = _run(tmp_path, {f"c{i}": two for i in range(3)}, {f"c{i}": two for i in range(3)})
    test = tmp_path / "test"
    test.mkdir()
    _mask(test / "t0.png", two)
    assert apply_cv_postprocessing(test, cv_pp, tmp_path / "test_pp") == []
    assert (tmp_path / "test_pp" / "t0.png").read_bytes() == (test / "t0.png").read_bytes()


def test_test_set_table_and_folders(tmp_path, monkeypatch):
    import pytest

    from nnunet_phyjoint.benchmark.table import test_set_table
    from nnunet_phyjoint.benchmark.test_set import test_set_folders

    entry = {"value": 0.8, "ci_low": 0.7, "ci_high": 0.9, "n": 10}
    metrics = {"segmentation": {"dsc": {"lesion_only": entry, "all_image": entry}, "jaccard": {"lesion_only": entry},
                                "hd95_px": {"value": 5.0}}, "classification": {"f1_macro": entry, "auc_macro": entry}}
    pp = {"value": 0.85, "ci_low": 0.75, "ci_high": 0.95}
    rows = [{"arm": "a", "test": {"metrics": metrics, "postprocessed": {
                "functions": ["remove_all_but_largest_component_from_segmentation"],
                "metrics": {"segmentation": {"dsc": {"lesion_only": pp}}}}}},
            {"arm": "b", "test": {"metrics": metrics}}, {"arm": "c"}]
    table = test_set_table(rows)
    assert "| `a` | 0.800 [0.700, 0.900] |" in table and "| largest component | 0.850 [0.750, 0.950] |" in table
    assert table.count("\n") == 3 and "`c`" not in table

    raw = tmp_path / "raw"
    monkeypatch.setenv("nnUNet_raw", str(raw))
    ds = raw / "Dataset902_T"
    (ds / "imagesTr").mkdir(parents=True)
    (ds / "labelsTr").mkdir()
    with pytest.raises(FileNotFoundError, match="labelsTr is empty"):
        test_set_folders("Dataset902_T")
    (ds / "labelsTr" / "x.png").write_bytes(b"")
    assert [p.name for p in test_set_folders("Dataset902_T")[1:]] == ["imagesTr", "labelsTr"]
    (ds / "imagesTs").mkdir()
    (ds / "labelsTs").mkdir()
    (ds / "labelsTs" / "y.png").write_bytes(b"")
    assert [p.name for p in test_set_folders("Dataset902_T")[1:]] == ["imagesTs", "labelsTs"]
    with pytest.raises(FileNotFoundError, match="neither"):
        test_set_folders("Dataset903_None")
