"""Diagnosis gating: masks of images diagnosed normal are emptied, nothing else changes, originals are kept."""
from __future__ import annotations

import numpy as np
from PIL import Image

from nnunet_phyjoint.evaluation.io import write_classification_csv
from nnunet_phyjoint.inference.normal_gating import UNGATED_FOLDER, gate_masks, gate_prediction_folder


def _mask(path, value: int) -> np.ndarray:
    a = np.zeros((16, 20), dtype=np.uint8)
    a[4:9, 5:12] = value
    Image.fromarray(a).save(path)
    return a


def test_only_cases_called_normal_with_lesion_pixels_are_emptied(tmp_path):
    called_normal = _mask(tmp_path / "a.png", 1)
    called_benign = _mask(tmp_path / "b.png", 1)
    _mask(tmp_path / "c.png", 0)  # called normal, already empty: untouched
    probs = {"a": np.array([0.7, 0.2, 0.1]), "b": np.array([0.3, 0.6, 0.1]), "c": np.array([0.9, 0.05, 0.05]),
             "missing": np.array([1.0, 0.0, 0.0])}
    gated = gate_masks(tmp_path, probs, ".png")
    assert gated == ["a"]
    a = np.array(Image.open(tmp_path / "a.png"))
    assert a.shape == called_normal.shape and a.dtype == np.uint8 and not a.any()
    np.testing.assert_array_equal(np.array(Image.open(tmp_path / "b.png")), called_benign)
    np.testing.assert_array_equal(np.array(Image.open(tmp_path / UNGATED_FOLDER / "a.png")), called_normal)
    assert not (tmp_path / UNGATED_FOLDER / "b.png").exists()
    assert not list(tmp_path.glob(".*")), "no temporary file may be left behind"


def test_prediction_folder_gating_reads_classification_csv(tmp_path, capsys):
    _mask(tmp_path / "n.png", 1)
    _mask(tmp_path / "m.png", 1)
    write_classification_csv(tmp_path / "classification.csv",
                             {"n": np.array([0.8, 0.1, 0.1]), "m": np.array([0.1, 0.1, 0.8])})
    assert gate_prediction_folder(tmp_path, ".png") == ["n"]
    assert "1 of 2 cases diagnosed normal" in capsys.readouterr().out
    assert not np.array(Image.open(tmp_path / "n.png")).any() and np.array(Image.open(tmp_path / "m.png")).any()
    # no classification.csv: nothing to gate, nothing touched
    other = tmp_path / "other"
    other.mkdir()
    _mask(other / "x.png", 1)
    assert gate_prediction_folder(other, ".png") == []
    assert np.array(Image.open(other / "x.png")).any()


def test_png_masks_are_gated_without_simpleitk(tmp_path, monkeypatch):
    """2D predictions are read and rewritten by nnU-Net's natural-image reader/writer, as nnU-Net wrote them."""
    import sys

    monkeypatch.setitem(sys.modules, "SimpleITK", None)  # any `import SimpleITK` now raises ImportError
    original = _mask(tmp_path / "a.png", 1)
    _mask(tmp_path / "b.png", 0)
    probs = {"a": np.array([0.9, 0.05, 0.05]), "b": np.array([0.9, 0.05, 0.05])}
    assert gate_masks(tmp_path, probs, ".png") == ["a"]
    a = np.array(Image.open(tmp_path / "a.png"))
    assert a.shape == original.shape and a.dtype == np.uint8 and not a.any()
    np.testing.assert_array_equal(np.array(Image.open(tmp_path / UNGATED_FOLDER / "a.png")), original)


def test_gating_is_off_for_a_model_that_never_saw_a_normal_image():
    from nnunet_phyjoint.inference.normal_gating import gating_off_reason

    assert gating_off_reason(training_labels=[1, 2, 2, 1]) is not None  # benign/malignant only (BUS-BRA)
    assert gating_off_reason(training_labels=[0, 1, 2]) is None
    assert gating_off_reason() is None  # nothing known against gating
    cases = {"a": {"class": "benign", "patient": "1", "scanner": "s"},
             "b": {"class": "malignant", "patient": "2", "scanner": "s"}}
    assert "no normal case" in gating_off_reason(dataset_json={"phyjoint": {"cases": cases}})
    cases["c"] = {"class": "normal", "patient": "3", "scanner": "s"}
    assert gating_off_reason(dataset_json={"phyjoint": {"cases": cases}}) is None
    assert gating_off_reason(dataset_json={"file_ending": ".png"}) is None  # no per-case metadata
