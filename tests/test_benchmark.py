"""phyjoint benchmark / bench-speed: arms, equal-budget trainers, cv collection, tables, and one tiny end-to-end run."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


# ------------------------------------------------------------------ trainer classes
def test_stock_budget_trainers_exist_and_set_epochs():
    from nnunet_phyjoint.training import stock_variants as sv

    for n in sv.EPOCH_BUDGETS:
        cls = getattr(sv, f"nnUNetTrainer_onePass_{n}epochs")
        assert issubclass(cls, sv.nnUNetTrainer_onePass) and cls.budget_epochs == n
        assert cls.__module__ == sv.__name__ and cls.__name__ in sv.__all__


def test_phyjoint_budget_trainers_cover_every_method_variant():
    from nnunet_phyjoint.training import budget_variants as bv
    from nnunet_phyjoint.training import variants

    assert {"PhyJointTrainer", "PhyJointTrainer_noLatentAug", "PhyJointTrainer_INT8", "PhyJointTrainer_INT4",
            "PhyJointTrainer_AdamW", "PhyJointTrainer_lr1e3"} <= set(bv.BASE_TRAINERS)
    # length-only variants and private helpers are not bases
    assert not any(b.endswith(("epoch", "epochs", "_demo")) or b.startswith("_") for b in bv.BASE_TRAINERS)
    for base in bv.BASE_TRAINERS:
        for n in (1, 10, 200):
            cls = getattr(bv, f"{base}_{n}ep")
            assert cls.max_epochs == n and cls.__mro__[1].__name__ == base
    assert bv.PhyJointTrainer_INT8_5ep.build_network_architecture is variants.PhyJointTrainer_INT8.build_network_architecture
    assert bv.is_length_only_variant(variants.PhyJointTrainer_10epochs)
    assert not bv.is_length_only_variant(variants.PhyJointTrainer_noLatentAug)


def test_thin_trainer_module_exposes_the_classes_to_nnunet(monkeypatch):
    monkeypatch.setenv("nnUNet_extTrainer", str(REPO / "trainers"))
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    assert recursive_find_trainer_class_by_name("nnUNetTrainer_onePass_3epochs").budget_epochs == 3
    assert recursive_find_trainer_class_by_name("PhyJointTrainer_noLatentAug_3ep").max_epochs == 3


# ------------------------------------------------------------------ arms
def test_arm_resolution_and_skipping():
    from nnunet_phyjoint.benchmark.arms import known_arms, resolve_arms

    arms, skipped = resolve_arms(["nnunet", "phyjoint", "PhyJointTrainer_doesNotExist"], 5)
    assert [a.name for a in arms] == ["nnunet", "phyjoint"]
    assert arms[0].trainer(5) == "nnUNetTrainer_onePass_5epochs" and arms[0].is_stock
    assert arms[1].trainer(5) == "PhyJointTrainer_5ep" and arms[1].model_folder_name(5) == \
        "PhyJointTrainer_5ep__PhyJointPlans__2d"
    assert skipped and skipped[0][0] == "PhyJointTrainer_doesNotExist" and "not found" in skipped[0][1]
    with pytest.raises(ValueError, match="--epochs 7"):
        resolve_arms(["phyjoint"], 7)
    with pytest.raises(ValueError, match="unknown arm 'nnunett'"):
        resolve_arms(["nnunett"], 5)
    everything, _ = resolve_arms(None, 5)
    assert {"nnunet", "nnunet_phyjoint_plans", "phyjoint", "no_latent", "int8", "int4", "adamw32"} <= \
        {a.name for a in everything}
    assert set(known_arms()) >= {a.name for a in everything}


def test_missing_trainer_of_a_known_arm_is_skipped(monkeypatch):
    from nnunet_phyjoint.benchmark import arms as arms_mod

    real = arms_mod.trainer_exists
    monkeypatch.setattr(arms_mod, "trainer_exists", lambda name: "noPhyAug" not in name and real(name))
    arms, skipped = arms_mod.resolve_arms(["phyjoint", "no_phyaug"], 3)
    assert [a.name for a in arms] == ["phyjoint"]
    assert skipped[0][0] == "no_phyaug" and "PhyJointTrainer_noPhyAug" in skipped[0][1]


def test_fold_done_needs_final_checkpoint_and_validation_summary(tmp_path):
    from nnunet_phyjoint.benchmark.runner import fold_done

    fd = tmp_path / "fold_0"
    (fd / "validation").mkdir(parents=True)
    (fd / "checkpoint_final.pth").write_bytes(b"x")
    assert not fold_done(tmp_path, 0)
    (fd / "validation" / "summary.json").write_text("{}")
    assert fold_done(tmp_path, 0) and not fold_done(tmp_path, 1)


# ------------------------------------------------------------------ collection
def _mask(path: Path, value: int, size=(8, 8)) -> None:
    arr = np.zeros(size, np.uint8)
    arr[2:5, 2:5] = value
    Image.fromarray(arr).save(path)


def _fake_model_folder(root: Path, folds: dict[int, list[str]], with_csv: bool) -> Path:
    for fold, cases in folds.items():
        val = root / f"fold_{fold}" / "validation"
        val.mkdir(parents=True)
        (val / "summary.json").write_text("{}")
        for c in cases:
            _mask(val / f"{c}.png", 1)
        if with_csv:
            lines = ["case_id,predicted_class,prob_normal,prob_benign,prob_malignant"]
            lines += [f"{c},benign,0.1,0.7,0.2" for c in cases]
            (val / "classification.csv").write_text("\n".join(lines) + "\n")
    return root


def test_collect_cv_predictions_merges_folds(tmp_path):
    from nnunet_phyjoint.benchmark.collect import collect_cv_predictions

    folder = _fake_model_folder(tmp_path / "model", {0: ["a", "b"], 1: ["c"]}, with_csv=True)
    out = tmp_path / "cv" / "arm"
    info = collect_cv_predictions(folder, [0, 1], out)
    assert info["cases"] == ["a", "b", "c"] and info["case_fold"]["c"] == 1 and info["classification"]
    assert sorted(p.name for p in out.glob("*.png")) == ["a.png", "b.png", "c.png"]
    with open(out / "classification.csv") as f:
        assert [r["case_id"] for r in csv.DictReader(f)] == ["a", "b", "c"]
    # collecting again replaces the folder (no stale files), and no temp folders are left behind
    info = collect_cv_predictions(folder, [0], out)
    assert sorted(p.name for p in out.glob("*.png")) == ["a.png", "b.png"]
    assert [p.name for p in out.parent.iterdir()] == ["arm"]


def test_collect_refuses_overlapping_folds_and_missing_folds(tmp_path):
    from nnunet_phyjoint.benchmark.collect import collect_cv_predictions

    folder = _fake_model_folder(tmp_path / "m", {0: ["a"], 1: ["a"]}, with_csv=False)
    with pytest.raises(ValueError, match="folds 0 and 1"):
        collect_cv_predictions(folder, [0, 1], tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="fold 2"):
        collect_cv_predictions(folder, [2], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_stock_arm_without_classification_is_segmentation_only(tmp_path):
    from nnunet_phyjoint.benchmark.collect import collect_cv_predictions, evaluate_predictions, ground_truth_subset
    from nnunet_phyjoint.metadata import CaseMeta, metadata_block

    raw = tmp_path / "raw"
    (raw / "labelsTr").mkdir(parents=True)
    cases = ["a", "b", "c", "d"]
    for c in cases:
        _mask(raw / "labelsTr" / f"{c}.png", 1)
    meta = [CaseMeta(c, "benign", c, "S1") for c in cases]
    (raw / "dataset.json").write_text(json.dumps({"file_ending": ".png", "phyjoint": metadata_block(meta, "test")}))
    folder = _fake_model_folder(tmp_path / "model", {0: ["a", "b"], 1: ["c"]}, with_csv=False)
    collect_cv_predictions(folder, [0, 1], tmp_path / "cv")
    gt = ground_truth_subset(raw, ["a", "b", "c"], tmp_path / "gt")
    assert sorted(p.name for p in gt.iterdir()) == ["a.png", "b.png", "c.png"]
    metrics = evaluate_predictions(gt, tmp_path / "cv", raw, tmp_path / "eval", n_bootstrap=50)
    assert metrics["n_cases"] == 3 and metrics["classification"] is None
    assert metrics["segmentation"]["dsc"]["lesion_only"]["value"] == pytest.approx(1.0)


# ------------------------------------------------------------------ table and figure
def _entry(v, lo, hi):
    return {"value": v, "ci_low": lo, "ci_high": hi, "n": 10}


def _row(arm, dsc, f1=None):
    seg = {"dsc": {"lesion_only": _entry(dsc, dsc - 0.05, dsc + 0.04), "all_image": _entry(dsc + 0.02, dsc, dsc + 0.05)},
           "jaccard": {"lesion_only": _entry(dsc - 0.1, dsc - 0.15, dsc - 0.05)},
           "hd95_px": _entry(12.345, 10.0, 15.5)}
    cls = None if f1 is None else {"f1_macro": _entry(f1, f1 - 0.1, f1 + 0.1), "auc_macro": _entry(0.9, 0.85, 0.95)}
    costs = {"params": 2_500_000, "macs": 1_230_000_000, "checkpoint_mb": 10.0, "packed_mb": None,
             "export_bits": None, "train_seconds": 600.0, "epochs_trained": [5, 5], "inference_ms": 12.34}
    return {"arm": arm, "metrics": {"segmentation": seg, "classification": cls}, "costs": costs}


def test_markdown_table_formats_values_cis_and_dashes():
    from nnunet_phyjoint.benchmark.table import format_ci, markdown_table

    assert format_ci(_entry(0.8123, 0.79, 0.83)) == "0.812 [0.790, 0.830]"
    assert format_ci(_entry(0.8, None, None)) == "0.800"
    assert format_ci(None) == "—"
    table = markdown_table([_row("nnunet", 0.7), _row("phyjoint", 0.8, f1=0.6)])
    lines = table.splitlines()
    assert len(lines) == 4 and lines[0].startswith("| Arm | DSC lesion-only | DSC all-image")
    nnunet = [c.strip() for c in lines[2].strip("|").split("|")]
    assert nnunet[0] == "`nnunet`" and nnunet[1] == "0.700 [0.650, 0.740]" and nnunet[4] == "12.3 [10.0, 15.5]"
    assert nnunet[5] == "—" and nnunet[6] == "—"  # no diagnosis head: no F1, no AUC
    assert nnunet[7:] == ["2.50", "1.23", "10.00", "10.0", "5/5", "12.3"]
    phyjoint = [c.strip() for c in lines[3].strip("|").split("|")]
    assert phyjoint[5] == "0.600 [0.500, 0.700]" and phyjoint[6] == "0.900 [0.850, 0.950]"


def test_loso_table_and_figures(tmp_path):
    from nnunet_phyjoint.benchmark.figures import plot_arms, plot_loso
    from nnunet_phyjoint.benchmark.table import loso_markdown_table

    rows = []
    for arm, base in (("phyjoint", 0.8), ("no_phyaug", 0.7)):
        per = {s: {"dsc_lesion_only": base + i / 100, "f1_macro": 0.5, "dsc_entry": _entry(base, base - .1, base + .1),
                   "f1_entry": _entry(0.5, 0.4, 0.6)} for i, s in enumerate(("A", "B"))}
        rows.append({"arm": arm, "per_scanner": per, "mean": {"dsc_lesion_only": base + 0.005, "f1_macro": 0.5}})
    table = loso_markdown_table(rows, ["A", "B"])
    assert "| `phyjoint` | 0.800 / 0.500 | 0.810 / 0.500 | 0.805 / 0.500 |" in table
    png = plot_loso(rows, ["A", "B"], tmp_path / "loso.png")
    fig = plot_arms([_row("nnunet", 0.7), _row("phyjoint", 0.8, f1=0.6)], tmp_path / "fig3.png")
    for p in (png, fig):
        with Image.open(p) as im:
            assert im.size[0] > 300 and im.size[1] > 200


def test_benchmark_cli_rejects_bad_epochs(tmp_path, nnunet_env):
    from nnunet_phyjoint.cli import main

    assert main(["benchmark", "-d", "1", "--epochs", "7", "-o", str(tmp_path / "b")]) == 1


# ------------------------------------------------------------------ end to end
def _run(cmd: list[str], env: dict) -> subprocess.CompletedProcess:
    exe = BIN / cmd[0]
    proc = subprocess.run([str(exe) if exe.exists() else cmd[0], *cmd[1:]], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


@pytest.mark.slow
def test_benchmark_end_to_end_two_arms(tmp_path):
    env = dict(os.environ)
    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        (tmp_path / var).mkdir()
        env[var] = str(tmp_path / var)
    env.update(nnUNet_extTrainer=str(REPO / "trainers"), nnUNet_n_proc_DA="0", nnUNet_compile="f",
               OMP_NUM_THREADS="1", nnUNet_def_n_proc="1")
    _run(["phyjoint", "simulate", str(tmp_path / "src"), "--n", "32", "--scanners", "2", "--size", "64", "64",
          "--seed", "3"], env)
    _run(["phyjoint", "convert", "precise", str(tmp_path / "src"), "-d", "991", "--name", "Bench"], env)
    out = tmp_path / "bench"
    cmd = ["phyjoint", "benchmark", "-d", "991", "--arms", "nnunet", "phyjoint", "--epochs", "1",
           "--folds", "0", "1", "2", "3", "--device", "cpu", "-o", str(out), "--encoder", "mobilenetv3_small_050",
           "--size", "64", "--batch-size", "4", "--bootstrap", "100", "--speed-images", "2"]
    first = _run(cmd, env)
    assert "| `nnunet` |" in first.stdout and "| `phyjoint` |" in first.stdout

    result = json.loads((out / "table1.json").read_text())
    assert [r["arm"] for r in result["rows"]] == ["nnunet", "phyjoint"]
    nnunet, phyjoint = result["rows"]
    assert nnunet["trainer"] == "nnUNetTrainer_onePass_1epochs" and phyjoint["trainer"] == "PhyJointTrainer_1ep"
    for row in result["rows"]:
        assert row["metrics"]["n_cases"] == 32  # every case predicted once across the 4 folds
        dsc = row["metrics"]["segmentation"]["dsc"]["all_image"]
        assert 0.0 <= dsc["ci_low"] <= dsc["value"] <= dsc["ci_high"] <= 1.0
        c = row["costs"]
        assert c["params"] > 1e4 and c["macs"] > 1e5 and c["checkpoint_mb"] > 0.01
        assert c["epochs_trained"] == [1, 1, 1, 1] and c["train_seconds"] > 0 and c["inference_ms"] > 0
    assert nnunet["metrics"]["classification"] is None
    f1 = phyjoint["metrics"]["classification"]["f1_macro"]
    assert 0.0 <= f1["value"] <= 1.0
    table = (out / "table1.md").read_text()
    assert "| `nnunet` |" in table and "segmentation only" in table
    with Image.open(out / "fig3_arms.png") as im:
        assert im.size[0] > 300
    assert len(list((out / "cv" / "phyjoint").glob("*.png"))) == 32
    assert (out / "cv" / "phyjoint" / "classification.csv").is_file()

    # a second run trains nothing: every fold is done
    again = _run(cmd, env)
    assert again.stdout.count("already trained") == 8 and "$ nnUNetv2_train" not in again.stdout
