"""Independent benchmark runs side by side (``--repeat K``, ``phyjoint benchmark-repeats``)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nnunet_phyjoint.benchmark.repeats import load_repeats, repeats_markdown, repeats_summary
from nnunet_phyjoint.benchmark.stages import results_of_repeat

BIN = Path(sys.executable).parent


def _e(v):
    return {"value": v, "ci_low": v - 0.01, "ci_high": v + 0.01, "n": 10}


def _cv(folder: Path, repeat: int, dsc: dict, f1: float | None = 0.9, budget: str = "5 epochs") -> Path:
    rows = []
    for arm, d in dsc.items():
        metrics = {"segmentation": {"dsc": {"lesion_only": _e(d)}, "hd95_px": _e(5.0)},
                   "classification": None if arm == "nnunet" else {"f1_macro": _e(f1)}}
        rows.append({"arm": arm, "metrics": metrics,
                     "postprocessed": {"metrics": {"segmentation": {"dsc": {"lesion_only": _e(d + 0.01)}}}}})
    folder.mkdir(parents=True)
    (folder / "table1.json").write_text(json.dumps({
        "protocol": "cross-validation", "dataset": "Dataset601_S", "folds": [0, 1, 2, 3], "repeat": repeat,
        "budget": {"kind": "epochs", "value": 5, "label": budget}, "test_dataset": None, "rows": rows}))
    return folder


def test_runs_side_by_side_with_mean_spread_and_differences(tmp_path):
    a = _cv(tmp_path / "r1", 1, {"nnunet": 0.84, "phyjoint": 0.82})
    b = _cv(tmp_path / "r2", 2, {"nnunet": 0.86, "phyjoint": 0.85})
    s = repeats_summary(load_repeats([a, b]))
    dsc = s["metrics"]["DSC lesion-only"]
    assert dsc["nnunet"]["values"] == [0.84, 0.86] and dsc["nnunet"]["mean"] == pytest.approx(0.85)
    assert dsc["phyjoint"]["spread"] == pytest.approx(0.03)
    assert dsc["phyjoint"]["difference_to_first_arm"] == pytest.approx([-0.02, -0.01])
    assert s["metrics"]["F1 macro"]["nnunet"]["mean"] is None  # segmentation-only arm
    assert "test-set DSC lesion-only" not in s["metrics"]  # no run had a test set
    md = repeats_markdown(s)
    assert "| `phyjoint` | 0.820 | 0.850 | 0.835 | 0.030 | -0.020 / -0.010 |" in md
    assert "**DSC lesion-only after nnU-Net pp**" in md


def test_benign_vs_malignant_metrics_are_compared_when_the_runs_have_them(tmp_path):
    a = _cv(tmp_path / "r1", 1, {"nnunet": 0.84, "phyjoint": 0.82})
    b = _cv(tmp_path / "r2", 2, {"nnunet": 0.86, "phyjoint": 0.85})
    assert "Sensitivity (malignant)" not in repeats_summary(load_repeats([a, b]))["metrics"]  # older results
    for k, folder in enumerate((a, b)):
        result = json.loads((folder / "table1.json").read_text())
        result["rows"][1]["metrics"]["classification"].update(
            auc_malignant=_e(0.9 + k / 100), sensitivity=_e(0.7), specificity=_e(0.8 - k / 10))
        (folder / "table1.json").write_text(json.dumps(result))
    s = repeats_summary(load_repeats([a, b]))
    assert s["metrics"]["AUC malignant vs benign"]["phyjoint"]["values"] == pytest.approx([0.9, 0.91])
    assert s["metrics"]["Specificity (benign)"]["phyjoint"]["spread"] == pytest.approx(0.1)
    assert s["metrics"]["Sensitivity (malignant)"]["nnunet"]["mean"] is None


def test_runs_of_different_benchmarks_are_refused_by_name(tmp_path):
    a = _cv(tmp_path / "r1", 1, {"nnunet": 0.84})
    b = _cv(tmp_path / "r2", 2, {"nnunet": 0.86}, budget="5 minutes")
    with pytest.raises(ValueError, match=r"r2/table1.json is not a repeat .* budget"):
        load_repeats([a, b])
    with pytest.raises(FileNotFoundError, match="no table1.json"):
        load_repeats([a, tmp_path / "missing"])
    with pytest.raises(ValueError, match="at least two"):
        load_repeats([a])


def test_loso_runs_use_the_mean_over_held_out_scanners(tmp_path):
    paths = []
    for k, d in ((1, 0.7), (2, 0.6)):
        f = tmp_path / f"r{k}" / "loso"
        f.mkdir(parents=True)
        (f / "table_loso.json").write_text(json.dumps({
            "protocol": "leave-one-scanner-out", "dataset": "Dataset701_S", "budget": {"label": "5 epochs"},
            "rows": [{"arm": "phyjoint", "mean": {"dsc_lesion_only": d, "f1_macro": 0.9}},
                     {"arm": "no_phyaug", "mean": {"dsc_lesion_only": d + 0.05, "f1_macro": 0.8}}]}))
        paths.append(tmp_path / f"r{k}")
    s = repeats_summary(load_repeats(paths))
    entry = s["metrics"]["mean DSC lesion-only over held-out scanners"]["no_phyaug"]
    assert entry["difference_to_first_arm"] == pytest.approx([0.05, 0.05])


def test_the_command_writes_table_json_and_figure(tmp_path):
    a = _cv(tmp_path / "r1", 1, {"nnunet": 0.84, "phyjoint": 0.82})
    b = _cv(tmp_path / "r2", 2, {"nnunet": 0.86, "phyjoint": 0.85})
    proc = subprocess.run([str(BIN / "phyjoint"), "benchmark-repeats", str(a), str(b), "-o", str(tmp_path / "rep")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "run 2" in (tmp_path / "rep.md").read_text() and (tmp_path / "rep.png").stat().st_size > 1000
    assert json.loads((tmp_path / "rep.json").read_text())["repeat"] == [1, 2]
    bad = subprocess.run([str(BIN / "phyjoint"), "benchmark-repeats", str(a), "-o", str(tmp_path / "x")],
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "at least two" in bad.stderr


def test_repeat_k_trains_into_its_own_results_folder_and_restores_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("nnUNet_results", str(tmp_path / "res"))
    with results_of_repeat(1) as root:
        assert root == tmp_path / "res"
    with results_of_repeat(3) as root:
        assert root == tmp_path / "res" / "repeat_3" and root.is_dir()
        assert os.environ["nnUNet_results"] == str(root)  # nnU-Net's commands inherit it
    assert os.environ["nnUNet_results"] == str(tmp_path / "res")
    with pytest.raises(ValueError, match="1 or more"):
        with results_of_repeat(0):
            pass
