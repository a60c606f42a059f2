"""phyjoint benchmark / bench-speed: arms, equal-budget trainers, cv collection, tables, and one tiny end-to-end run."""
from __future__ import annotations

import csv
import json
import os
import shutil
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
            "PhyJointTrainer_AdamW", "PhyJointTrainer_paper"} <= set(bv.BASE_TRAINERS)
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


def test_train_fold_reruns_only_an_interrupted_final_validation(tmp_path, monkeypatch):
    from nnunet_phyjoint.benchmark import runner

    folder = tmp_path / "model"
    fd = folder / "fold_3"
    (fd / "validation").mkdir(parents=True)
    (fd / "checkpoint_final.pth").write_bytes(b"x")
    # nnU-Net's part done, PhyJoint's not: its summary set aside, no summary.json yet
    (fd / "validation" / ".summary_nnunet.partial.json").write_text("{}")
    calls = []

    def fake_run(cmd, log_file, label, env=None):
        calls.append(cmd)
        (fd / "validation" / "classification.csv").write_text("case_id,predicted_class\n")
        (fd / "validation" / "summary.json").write_text("{}")
        return 1.0

    monkeypatch.setattr(runner, "model_folder", lambda *a: folder)
    monkeypatch.setattr(runner, "run_logged", fake_run)
    record = runner.train_fold("Dataset601_X", "PhyJointTrainer_5ep", "PhyJointPlans", 3, "cpu", tmp_path, "t")
    assert record["status"] == "validated" and calls[0][-1] == "--val" and "--c" not in calls[0]
    assert runner.train_fold("Dataset601_X", "PhyJointTrainer_5ep", "PhyJointPlans", 3, "cpu", tmp_path,
                             "t")["status"] == "done before" and len(calls) == 1


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


def test_collect_ungated_restores_the_masks_the_diagnosis_emptied(tmp_path):
    from nnunet_phyjoint.benchmark.collect import collect_cv_predictions
    from nnunet_phyjoint.evaluation.io import read_mask

    folder = _fake_model_folder(tmp_path / "model", {0: ["a", "b"], 1: ["c"]}, with_csv=True)
    ungated = folder / "fold_0" / "validation" / "ungated_masks"
    ungated.mkdir()
    shutil.move(folder / "fold_0" / "validation" / "b.png", ungated / "b.png")  # b was gated: its mask emptied
    _mask(folder / "fold_0" / "validation" / "b.png", 0)
    gated = collect_cv_predictions(folder, [0, 1], tmp_path / "cv")
    assert not read_mask(tmp_path / "cv" / "b.png").any() and gated["ungated_cases"] == []
    raw = collect_cv_predictions(folder, [0, 1], tmp_path / "cv_ungated", ungated=True)
    assert raw["ungated_cases"] == ["b"] and raw["cases"] == ["a", "b", "c"]
    assert read_mask(tmp_path / "cv_ungated" / "b.png").any()
    assert sorted(p.name for p in (tmp_path / "cv_ungated").iterdir()) == ["a.png", "b.png", "c.png",
                                                                           "classification.csv"]
    assert read_mask(folder / "fold_0" / "validation" / "ungated_masks" / "b.png").any()  # the model's files untouched


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
           "hd95_px": _entry(12.345, 10.0, 15.5),
           "area_ratio_lesion": {"median": 1.0349, "q25": 0.9, "q75": 1.2, "n": 8},
           "counts": {"cases": 10, "lesion_cases": 8, "empty_gt_cases": 2, "both_empty": 1}}
    cls = None if f1 is None else {"f1_macro": _entry(f1, f1 - 0.1, f1 + 0.1), "auc_macro": _entry(0.9, 0.85, 0.95),
                                   "auc_malignant": _entry(0.95, 0.9, 0.98), "sensitivity": _entry(0.75, 0.6, 0.9),
                                   "specificity": _entry(float("nan"), float("nan"), float("nan"))}
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
    assert lines[0].split(" | ")[7:10] == ["AUC malignant", "Sensitivity", "Specificity"]
    assert nnunet[5:10] == ["—"] * 5  # no diagnosis head: no F1, no AUC, no benign-vs-malignant numbers
    assert nnunet[10:12] == ["1.03", "1/2"]  # median predicted/true area; empty masks on the 2 normal images
    # costs; Total min/fold is "—" for results without the time breakdown
    assert nnunet[12:] == ["2.50", "1.23", "10.00", "10.0", "—", "5/5", "12.3"]
    phyjoint = [c.strip() for c in lines[3].strip("|").split("|")]
    assert phyjoint[5] == "0.600 [0.500, 0.700]" and phyjoint[6] == "0.900 [0.850, 0.950]"
    assert phyjoint[7:10] == ["0.950 [0.900, 0.980]", "0.750 [0.600, 0.900]", "—"]  # NaN: no benign case


def test_ungated_table_lists_restored_masks_and_their_scores():
    from nnunet_phyjoint.benchmark.table import ungated_table

    stock = _row("nnunet", 0.7)
    phyjoint = {**_row("phyjoint", 0.6, f1=0.8),
                "ungated": {"restored_cases": ["a", "b", "c"], "lesion_cases": ["a", "c"], **{
                    "metrics": _row("phyjoint", 0.75, f1=0.8)["metrics"]}}}
    lines = ungated_table([stock, phyjoint]).splitlines()
    assert len(lines) == 3 and "Masks restored" in lines[0]  # stock arms have no gating: no line
    cells = [c.strip() for c in lines[2].strip("|").split("|")]
    assert cells[:3] == ["`phyjoint`", "3 (2)", "0.750 [0.700, 0.790]"]


def test_loso_table_and_figures(tmp_path):
    from nnunet_phyjoint.benchmark.figures import plot_arms, plot_loso
    from nnunet_phyjoint.benchmark.table import loso_detail_table, loso_markdown_table

    rows = []
    for arm, base in (("phyjoint", 0.8), ("no_phyaug", 0.7)):
        per = {s: {"dsc_lesion_only": base + i / 100, "f1_macro": 0.5, "dsc_entry": _entry(base, base - .1, base + .1),
                   "f1_entry": _entry(0.5, 0.4, 0.6)} for i, s in enumerate(("A", "B"))}
        rows.append({"arm": arm, "per_scanner": per, "mean": {"dsc_lesion_only": base + 0.005, "f1_macro": 0.5}})
    table = loso_markdown_table(rows, ["A", "B"])
    assert "| `phyjoint` | 0.800 / 0.500 | 0.810 / 0.500 | 0.805 / 0.500 |" in table
    rows[0]["per_scanner"]["A"].update(n_cases=12, auc_malignant_entry=_entry(0.9, 0.8, 0.97), sensitivity=0.75,
                                       specificity=None)
    detail = loso_detail_table(rows, ["A", "B"]).splitlines()
    assert len(detail) == 2 + 4  # header, rule, two arms x two held-out scanners
    assert detail[2] == "| `phyjoint` | A | 12 | 0.800 [0.700, 0.900] | 0.900 [0.800, 0.970] | 0.750 | — |"
    png = plot_loso(rows, ["A", "B"], tmp_path / "loso.png")
    fig = plot_arms([_row("nnunet", 0.7), _row("phyjoint", 0.8, f1=0.6)], tmp_path / "fig3.png")
    for p in (png, fig):
        with Image.open(p) as im:
            assert im.size[0] > 300 and im.size[1] > 200


def test_loso_rows_carry_the_benign_vs_malignant_metrics_and_their_means():
    from nnunet_phyjoint.benchmark.loso import MEAN_KEYS, _mean, _scanner_metrics

    seg = _row("phyjoint", 0.8)["metrics"]["segmentation"]
    cls = _row("phyjoint", 0.8, f1=0.6)["metrics"]["classification"]
    m = _scanner_metrics({"n_cases": 10, "segmentation": seg, "classification": cls})
    assert (m["auc_malignant"], m["sensitivity"]) == (0.95, 0.75)
    old = _scanner_metrics({"n_cases": 10, "segmentation": seg,  # an evaluation made before these metrics
                            "classification": {"f1_macro": _entry(0.6, 0.5, 0.7), "auc_macro": _entry(0.9, 0.8, 1)}})
    assert old["auc_malignant"] is None and old["f1_macro"] == 0.6
    stock = _scanner_metrics({"n_cases": 10, "segmentation": seg, "classification": None})
    assert stock["sensitivity"] is None
    assert {"auc_malignant", "sensitivity", "specificity"} <= set(MEAN_KEYS)
    assert _mean([m["auc_malignant"], old["auc_malignant"]]) is None  # a mean needs every held-out scanner


def test_benchmark_cli_rejects_bad_epochs(tmp_path, nnunet_env):
    from nnunet_phyjoint.cli import main

    assert main(["benchmark", "-d", "1", "--epochs", "7", "-o", str(tmp_path / "b")]) == 1


# ------------------------------------------------------------------ wall-clock budget
def test_minute_budget_trainer_classes_exist_for_stock_and_phyjoint_bases(monkeypatch):
    from nnunet_phyjoint.training import budget_variants as bv
    from nnunet_phyjoint.training import stock_variants as sv
    from nnunet_phyjoint.training.wall_clock_budget import WallClockBudgetMixin

    assert sv.MINUTE_BUDGETS == (1, 2, 3, 5, 8, 10, 15, 20, 30, 45, 60, 90, 120)
    for m in sv.MINUTE_BUDGETS:
        cls = getattr(sv, f"nnUNetTrainer_onePass_{m}min")
        assert cls.__mro__[1] is WallClockBudgetMixin and cls.__mro__[2] is sv.nnUNetTrainer_onePass
        assert cls.budget_minutes == m and cls.__module__ == sv.__name__ and cls.__name__ in sv.__all__
        for base in bv.BASE_TRAINERS:
            pj = getattr(bv, f"{base}_{m}min")
            assert pj.budget_minutes == m and pj.__mro__[1] is WallClockBudgetMixin
            assert pj.__mro__[2].__name__ == base and pj.__name__ in bv.__all__
    # minute classes are budget versions, not bases of their own
    assert not any(b.endswith("min") for b in bv.BASE_TRAINERS)
    # nnUNetTrainer.__init__ records its arguments by the names of type(self).__init__'s signature
    import inspect

    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    names = list(inspect.signature(nnUNetTrainer.__init__).parameters)
    assert list(inspect.signature(sv.nnUNetTrainer_onePass_5min.__init__).parameters) == names
    assert list(inspect.signature(bv.PhyJointTrainer_5min.__init__).parameters) == names
    monkeypatch.setenv("nnUNet_extTrainer", str(REPO / "trainers"))
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    assert recursive_find_trainer_class_by_name("nnUNetTrainer_onePass_5min").budget_minutes == 5
    assert recursive_find_trainer_class_by_name("PhyJointTrainer_noPhyAug_10min").budget_minutes == 10


def test_cli_budget_help_lists_match_the_trainer_classes():
    from nnunet_phyjoint.commands import benchmark as cmd
    from nnunet_phyjoint.training.stock_variants import EPOCH_BUDGETS, MINUTE_BUDGETS

    assert cmd.EPOCH_BUDGETS_HELP == ", ".join(map(str, EPOCH_BUDGETS))
    assert cmd.MINUTE_BUDGETS_HELP == ", ".join(map(str, MINUTE_BUDGETS))


def test_phyjoint_early_stop_shares_the_budget_stop_exception():
    from nnunet_phyjoint.training import phyjoint_trainer
    from nnunet_phyjoint.training.wall_clock_budget import StopTraining

    assert issubclass(phyjoint_trainer._EarlyStop, StopTraining)


def test_plan_epochs_and_stop_reason():
    from nnunet_phyjoint.training.wall_clock_budget import plan_epochs, stop_reason

    # the count nearest the budget: 300/61 = 4.9 -> 5, 300/70 = 4.3 -> 4, 300/172 = 1.7 -> 2 (not 1 = 57 %)
    assert plan_epochs(300, 61) == 5 and plan_epochs(300, 70) == 4 and plan_epochs(300, 172) == 2
    assert plan_epochs(300, 200) == 2 and plan_epochs(60, 90) == 1 and plan_epochs(60, 200) == 1
    assert plan_epochs(60, 0.0) >= 1 and plan_epochs(60, float("nan")) == 1
    with pytest.raises(ValueError):
        plan_epochs(0, 10)
    assert stop_reason(60, 6, []) is None
    assert stop_reason(60, 6, [10, 10]) is None
    assert "planned" in stop_reason(60, 2, [10, 10])
    assert stop_reason(60, 6, [10, 20]) is None                 # 30 s spent + 20 s = 50 s <= 60 s
    assert stop_reason(60, 6, [10, 20, 15]) is None            # 45 s spent + 15 s = 60 s: on budget
    assert "exceed" in stop_reason(60, 6, [10, 20, 20])        # 50 + 20 = 70 s > 60 s + half of 10 s
    assert stop_reason(60, 6, [20, 25]) is None                 # 45 + 25 = 70 s <= 60 s + half of 20 s
    assert "exceed" in stop_reason(60, 6, [20, 30])            # 50 + 30 = 80 s > 70 s



class _FakeLogger:
    def __init__(self):
        self.log_ = {"epoch_start_timestamps": [], "epoch_end_timestamps": []}

    def log(self, key, value, epoch):
        lst = self.log_[key]
        if len(lst) < epoch + 1:
            lst.append(value)
        else:
            lst[epoch] = value

    def get_value(self, key, step):
        return self.log_[key] if step is None else self.log_[key][step]


class _FakeScheduler:
    max_steps = None


class _FakeTrainer:
    """Just enough of nnUNetTrainer: the epoch loop computed once, timestamps, on_train_end, load_checkpoint."""

    def __init__(self, plans, configuration, fold, dataset_json, device):  # nnUNetTrainer's signature
        self.durations = list(plans["durations"])
        self.clock = 1000.0
        self.logger = _FakeLogger()
        self.lr_scheduler = _FakeScheduler()
        self.current_epoch = 0
        self.num_epochs = 3  # the base trainer's own length, which the mixin must replace
        self.lines, self.train_end_calls, self.epochs_run = [], 0, []
        self.lr_scheduler.max_steps = self.num_epochs

    def print_to_log_file(self, *args, **kwargs):
        self.lines.append(" ".join(str(a) for a in args))

    def on_epoch_start(self):
        self.logger.log("epoch_start_timestamps", self.clock, self.current_epoch)

    def on_epoch_end(self):
        self.clock += self.durations[self.current_epoch]
        self.logger.log("epoch_end_timestamps", self.clock, self.current_epoch)
        self.current_epoch += 1

    def on_train_end(self):
        self.train_end_calls += 1

    def load_checkpoint(self, ckpt):
        self.current_epoch = ckpt["current_epoch"]
        self.logger.log_ = {k: list(v) for k, v in ckpt["logging"].items()}

    def run_training(self):
        for epoch in range(self.current_epoch, self.num_epochs):  # computed once, as nnU-Net does
            self.on_epoch_start()
            self.epochs_run.append(epoch)
            self.on_epoch_end()
        self.on_train_end()


def _fake(durations, cls=_FakeTrainer):
    return cls({"durations": durations}, "2d", 0, {}, "cpu")


def _budgeted(minutes):
    from nnunet_phyjoint.training.wall_clock_budget import WallClockBudgetMixin

    cls = type("Fake_budget", (WallClockBudgetMixin, _FakeTrainer), {"budget_minutes": minutes})
    return lambda durations: _fake(durations, cls)


def test_wall_clock_mixin_plans_epochs_and_lr_decay_from_the_first_epoch():
    trainer = _budgeted(1)([10.0] * 50)  # 60 s budget, 10 s epochs
    assert trainer.num_epochs > 1000 and trainer.planned_epochs is None
    trainer.run_training()
    assert trainer.epochs_run == [0, 1, 2, 3, 4, 5] and trainer.current_epoch == 6
    assert trainer.planned_epochs == 6 and trainer.num_epochs == 6 and trainer.lr_scheduler.max_steps == 6
    assert trainer.train_end_calls == 1
    assert any("wall-clock budget 1 min: first epoch 10.0 s -> 6 epochs" in line for line in trainer.lines)


def test_wall_clock_mixin_stops_early_when_epochs_get_slower():
    trainer = _budgeted(1)([10.0, 20.0, 20.0, 20.0, 20.0, 20.0])
    trainer.run_training()
    # planned 6 from the 10 s first epoch; after 50 s another 20 s epoch would exceed 60 s
    assert trainer.planned_epochs == 6 and trainer.epochs_run == [0, 1, 2] and trainer.train_end_calls == 1
    assert any("stopping after 3 epochs" in line and "exceed" in line for line in trainer.lines)


def test_wall_clock_mixin_shares_the_stop_with_the_base_trainers_early_stopping():
    from nnunet_phyjoint.training.wall_clock_budget import StopTraining

    class EarlyStop(StopTraining):
        pass

    class Base(_FakeTrainer):
        def on_epoch_end(self):
            super().on_epoch_end()
            if self.current_epoch == 2:
                raise EarlyStop

    from nnunet_phyjoint.training.wall_clock_budget import WallClockBudgetMixin

    trainer = _fake([10.0] * 20, type("B", (WallClockBudgetMixin, Base), {"budget_minutes": 1}))
    trainer.run_training()
    assert trainer.epochs_run == [0, 1] and trainer.train_end_calls == 1


def test_wall_clock_mixin_resume_recomputes_the_plan_from_the_logged_epochs():
    durations = [10.0] * 20
    first = _fake(durations)  # the interrupted run's logged history
    first.on_epoch_start(); first.on_epoch_end(); first.on_epoch_start(); first.on_epoch_end()
    ckpt = {"current_epoch": 2, "logging": first.logger.log_}

    resumed = _budgeted(1)(durations)
    resumed.load_checkpoint(ckpt)
    assert resumed.planned_epochs == 6 and resumed.num_epochs == 6 and resumed.lr_scheduler.max_steps == 6
    resumed.run_training()
    assert resumed.epochs_run == [2, 3, 4, 5] and resumed.train_end_calls == 1

    # everything already trained (checkpoint_final + --c): an empty loop, then on_train_end
    done = _budgeted(1)(durations)
    done.load_checkpoint({"current_epoch": 6, "logging": resumed.logger.log_})
    done.run_training()
    assert done.epochs_run == [] and done.train_end_calls == 1
    # the time was spent (slow epochs) before the planned count was reached
    slow = _fake([10.0, 30.0, 30.0])
    for _ in range(2):
        slow.on_epoch_start(); slow.on_epoch_end()
    again = _budgeted(1)([10.0, 30.0, 30.0])
    again.load_checkpoint({"current_epoch": 2, "logging": slow.logger.log_})
    again.run_training()
    assert again.epochs_run == [] and again.num_epochs == 2 and again.train_end_calls == 1


def test_both_lr_schedulers_decay_to_the_planned_max_steps():
    import torch
    from nnunetv2.training.lr_scheduler.polylr import PolyLRScheduler

    from nnunet_phyjoint.training.param_groups import GroupPolyLRScheduler

    for make in (lambda o: PolyLRScheduler(o, 0.01, 100_000), lambda o: GroupPolyLRScheduler(o, 100_000)):
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.01)
        sched = make(opt)
        sched.step(0)
        assert opt.param_groups[0]["lr"] == pytest.approx(0.01)
        sched.max_steps = 4
        sched.step(3)
        assert opt.param_groups[0]["lr"] == pytest.approx(0.01 * 0.25 ** 0.9)


def test_budget_names_and_descriptions():
    from nnunet_phyjoint.benchmark.budget import Budget, as_budget

    assert as_budget(5) == Budget.epochs(5) and Budget.epochs(5).suffix == "_5ep"
    m = Budget.minutes(10)
    assert m.suffix == "_10min" and m.trainer_name("nnUNetTrainer_onePass", stock=True) == "nnUNetTrainer_onePass_10min"
    assert m.trainer_name("PhyJointTrainer", stock=False) == "PhyJointTrainer_10min"
    assert "wall-clock" in m.describe() and "10 min" in m.describe() and m.option == "--minutes-per-fold 10"
    assert "5 epochs" in Budget.epochs(5).describe() and m.to_json()["kind"] == "minutes"
    with pytest.raises(ValueError):
        Budget("hours", 1)
    with pytest.raises(ValueError, match="--minutes-per-fold 7"):
        Budget.minutes(7).validate()


def test_arm_resolution_with_a_minute_budget_and_the_resenc_m_arm():
    from nnunet_phyjoint.benchmark.arms import RESENC_M_PLANS, known_arms, resolve_arms
    from nnunet_phyjoint.benchmark.budget import Budget

    arms, skipped = resolve_arms(["nnunet", "resenc_m", "phyjoint", "no_phyaug"], Budget.minutes(5))
    assert not skipped and [a.name for a in arms] == ["nnunet", "resenc_m", "phyjoint", "no_phyaug"]
    by = {a.name: a for a in arms}
    assert by["nnunet"].trainer(Budget.minutes(5)) == "nnUNetTrainer_onePass_5min"
    assert by["resenc_m"].is_stock and by["resenc_m"].plans == RESENC_M_PLANS == "nnUNetResEncUNetMPlans"
    assert by["resenc_m"].model_folder_name(Budget.minutes(5)) == \
        "nnUNetTrainer_onePass_5min__nnUNetResEncUNetMPlans__2d"
    assert by["resenc_m"].trainer(8) == "nnUNetTrainer_onePass_8epochs"
    assert by["no_phyaug"].trainer(Budget.minutes(5)) == "PhyJointTrainer_noPhyAug_5min"
    with pytest.raises(ValueError, match="--minutes-per-fold 7"):
        resolve_arms(["phyjoint"], Budget.minutes(7))
    assert "resenc_m" in known_arms()


def test_prepare_plans_resenc_m_with_nnunets_planner_and_preprocesses_it(monkeypatch, tmp_path):
    from nnunet_phyjoint.benchmark import runner, stages
    from nnunet_phyjoint.benchmark.arms import known_arms

    calls = []
    monkeypatch.setattr(runner, "ensure_phyjoint_plans", lambda *a, **k: calls.append(("phyjoint", a[1])))
    monkeypatch.setattr(runner, "ensure_preprocessed", lambda ds, plans, *a, **k: calls.append(("preprocess", plans)))
    monkeypatch.setattr(runner, "ensure_stock_plans",
                        lambda ds, log, plans="nnUNetPlans", planner="ExperimentPlanner": calls.append(
                            ("plan", plans, planner)))
    cfg = stages.BenchmarkConfig(dataset="1", out=tmp_path, minutes_per_fold=5)
    assert cfg.budget.kind == "minutes" and cfg.budget.value == 5
    stages.prepare(cfg, "Dataset001_X", [known_arms()["resenc_m"], known_arms()["phyjoint"]], tmp_path)
    assert ("plan", "nnUNetResEncUNetMPlans", "nnUNetPlannerResEncM") in calls
    assert ("preprocess", "nnUNetResEncUNetMPlans") in calls and ("preprocess", "PhyJointPlans") in calls
    assert not any(c[0] == "plan" and c[1] == "nnUNetPlans" for c in calls)


def test_ensure_stock_plans_passes_the_planner(monkeypatch, nnunet_env, tmp_path):
    from nnunet_phyjoint.benchmark import runner

    seen = []

    def fake_run(cmd, log_file, label, env=None):
        seen.append(cmd)
        target = nnunet_env["nnUNet_preprocessed"] / "Dataset001_X" / "nnUNetResEncUNetMPlans.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("{}")
        return 0.0

    monkeypatch.setattr(runner, "run_logged", fake_run)
    runner.ensure_stock_plans("Dataset001_X", tmp_path, "nnUNetResEncUNetMPlans", "nnUNetPlannerResEncM")
    assert seen[0][1:] == ["-d", "001", "-pl", "nnUNetPlannerResEncM"]
    runner.ensure_stock_plans("Dataset001_X", tmp_path, "nnUNetResEncUNetMPlans", "nnUNetPlannerResEncM")
    assert len(seen) == 1  # exists: not planned again


def test_benchmark_cli_budget_options(tmp_path, nnunet_env, capsys):
    from nnunet_phyjoint.cli import main

    assert main(["benchmark", "-d", "1", "--minutes-per-fold", "7", "-o", str(tmp_path / "b")]) == 1
    assert "--minutes-per-fold 7" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["benchmark", "-d", "1", "--epochs", "5", "--minutes-per-fold", "5", "-o", str(tmp_path / "b")])
    assert e.value.code == 2


# ------------------------------------------------------------------ learning curves
STOCK_LOG = """\
2026-12-01 10:00:00.000001: one pass per epoch: 19 training and 7 validation iterations (batch size 16) 
2026-12-01 10:00:01.000000:  
2026-12-01 10:00:01.000001: Epoch 0 
2026-12-01 10:00:01.000002: Current learning rate: 0.01 
2026-12-01 10:01:00.000000: train_loss -0.1 
2026-12-01 10:01:00.000001: val_loss -0.2 
2026-12-01 10:01:00.000002: Pseudo dice [np.float32(0.5)] 
2026-12-01 10:01:00.000003: Epoch time: 60.0 s 
2026-12-01 10:01:00.000004: Yayy! New best EMA pseudo Dice: 0.5 
2026-12-01 10:01:01.000000:  
2026-12-01 10:01:01.000001: Epoch 1 
2026-12-01 10:02:00.000002: Pseudo dice [np.float32(0.7)] 
2026-12-01 10:02:00.000003: Epoch time: 30.0 s 
2026-12-01 10:02:01.000001: Epoch 2 
2026-12-01 10:02:30.000002: Pseudo dice [0.8]
"""

PHYJOINT_LOG_1 = """\
2026-12-01 21:13:22.642952: Epoch 0 
2026-12-01 21:13:41.453337: val (100 cases): Dice [0.1951], diagnosis accuracy 0.8800, macro F1 0.8332, macro AUC 0.9755 
2026-12-01 21:13:41.536554: Pseudo dice [np.float64(0.1951)] 
2026-12-01 21:13:41.536638: Epoch time: 18.9 s 
2026-12-01 21:13:42.109823: Epoch 1 
2026-12-01 21:14:01.793430: val (100 cases): Dice [0.2768], diagnosis accuracy 0.9200, macro F1 0.9215, macro AUC 0.9900 
2026-12-01 21:14:01.871112: Pseudo dice [np.float64(0.2768)] 
2026-12-01 21:14:01.871188: Epoch time: 20.0 s 
2026-12-01 21:14:02.109823: Epoch 2 
"""

PHYJOINT_LOG_2 = """\
2026-12-01 21:20:00.000000: wall-clock budget 1 min: first epoch 18.9 s -> 3 epochs (recomputed from the checkpoint's log on resume)
2026-12-01 21:20:00.642952: Epoch 1 
2026-12-01 21:20:20.453337: val (100 cases): Dice [0.3], diagnosis accuracy 0.9, macro F1 0.9, macro AUC 0.99 
2026-12-01 21:20:20.536638: Epoch time: 21.1 s 
2026-12-01 21:20:21.109823: Epoch 2 
2026-12-01 21:20:40.453337: val (100 cases): Dice [np.float64(0.4), nan], diagnosis accuracy 0.95, macro F1 0.95, macro AUC nan 
2026-12-01 21:20:40.536638: Epoch time: 19.0 s 
"""


def test_learning_curve_parser_on_stock_and_phyjoint_logs(tmp_path):
    from nnunet_phyjoint.benchmark.curves import arm_curves, fold_curve, parse_float_list, parse_training_log

    assert parse_float_list("[np.float64(0.25), np.float32(0.75)]") == [0.25, 0.75]
    stock = parse_training_log(STOCK_LOG)
    assert sorted(stock) == [0, 1]  # epoch 2 never finished
    assert stock[0]["dice"] == pytest.approx(0.5) and stock[0]["dice_source"] == "pseudo Dice"
    assert stock[1]["epoch_seconds"] == 30.0 and "macro_f1" not in stock[1]
    pj = parse_training_log(PHYJOINT_LOG_1)
    assert pj[1]["dice"] == pytest.approx(0.2768) and pj[1]["dice_source"] == "full validation pass"
    assert pj[0]["macro_f1"] == pytest.approx(0.8332) and pj[0]["val_cases"] == 100

    # a resumed fold: two logs (names not zero-padded), the later one's epoch 1 replaces the first's
    fd = tmp_path / "model" / "fold_0"
    fd.mkdir(parents=True)
    (fd / "training_log_2026_12_1_9_13_20.txt").write_text(PHYJOINT_LOG_1)
    (fd / "training_log_2026_12_1_21_20_0.txt").write_text(PHYJOINT_LOG_2)
    (fd / "training_log_2026_12_1_21_59_30.txt").write_text("validation only, no epochs\n")
    rows = fold_curve(fd)
    assert [r["epoch"] for r in rows] == [0, 1, 2]
    assert [r["dice"] for r in rows] == pytest.approx([0.1951, 0.3, 0.4])  # nan class ignored
    assert rows[-1]["minutes"] == pytest.approx((18.9 + 21.1 + 19.0) / 60)
    assert rows[2]["macro_f1"] == pytest.approx(0.95) and np.isnan(rows[2]["macro_auc"])

    sd = tmp_path / "model" / "fold_1"
    sd.mkdir()
    (sd / "training_log_2026_12_1_10_0_0.txt").write_text(PHYJOINT_LOG_1)  # 2 epochs: the mean stops there
    curve = arm_curves(tmp_path / "model", [0, 1])
    assert curve["epoch"] == [0, 1] and curve["epochs_per_fold"] == {0: 3, 1: 2}
    assert curve["dice"] == pytest.approx([0.1951, (0.3 + 0.2768) / 2])
    assert curve["dice_source"] == "full validation pass"
    assert arm_curves(tmp_path / "nothing", [0])["epoch"] == []


def test_learning_curve_figure_is_written(tmp_path):
    from nnunet_phyjoint.benchmark.curves import LEARNING_CURVE_CAPTION, mean_curve, parse_training_log
    from nnunet_phyjoint.benchmark.figures import plot_learning_curves
    from nnunet_phyjoint.benchmark.table import render_report

    def curve(text):
        rows = parse_training_log(text)
        total, out = 0.0, []
        for e in sorted(rows):
            total += rows[e]["epoch_seconds"]
            out.append({**rows[e], "minutes": total / 60})
        return mean_curve([out])

    curves = {"nnunet": curve(STOCK_LOG), "phyjoint": curve(PHYJOINT_LOG_1), "empty": mean_curve([])}
    png = plot_learning_curves(curves, tmp_path / "fig_learning_curves.png", "t", LEARNING_CURVE_CAPTION,
                               stock_arms=["nnunet"])
    with Image.open(png) as im:
        assert im.size[0] > 600 and im.size[1] > 400
    assert [p.name for p in tmp_path.iterdir()] == ["fig_learning_curves.png"]  # written atomically
    report = render_report("T", "|a|", ["c"], [], ["fig3_arms.png", (png.name, LEARNING_CURVE_CAPTION)])
    assert "![fig3_arms](fig3_arms.png)" in report and "![fig_learning_curves](fig_learning_curves.png)" in report
    assert "pseudo Dice" in report and "full pass" in report


# ------------------------------------------------------------------ end to end
def _run(cmd: list[str], env: dict) -> subprocess.CompletedProcess:
    exe = BIN / cmd[0]
    proc = subprocess.run([str(exe) if exe.exists() else cmd[0], *cmd[1:]], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def _simulated_dataset(tmp_path: Path, dataset_id: str, name: str, n: int, scanners: int, seed: int,
                       style_fit_steps: int) -> dict:
    """nnU-Net folders under ``tmp_path``, a converted simulated dataset, and the environment to run on it."""
    env = dict(os.environ)
    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        (tmp_path / var).mkdir()
        env[var] = str(tmp_path / var)
    # the style decoder's quality is not what these tests check: a short fit per fold keeps them fast
    env.update(nnUNet_extTrainer=str(REPO / "trainers"), nnUNet_n_proc_DA="0", nnUNet_compile="f",
               OMP_NUM_THREADS="1", nnUNet_def_n_proc="1", PHYJOINT_STYLE_FIT_STEPS=str(style_fit_steps))
    _run(["phyjoint", "simulate", str(tmp_path / "src"), "--n", str(n), "--scanners", str(scanners), "--size", "64",
          "64", "--seed", str(seed)], env)
    _run(["phyjoint", "convert", "precise", str(tmp_path / "src"), "-d", dataset_id, "--name", name], env)
    return env


@pytest.mark.slow
def test_benchmark_end_to_end_two_arms(tmp_path):
    env = _simulated_dataset(tmp_path, "991", "Bench", n=32, scanners=2, seed=3, style_fit_steps=20)
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
        # total time per fold: preprocessing (from the benchmark's preprocess log), trainer run, final validation
        t = c["time"]
        # nnUNetv2_preprocess (stock plans) leaves its progress bar in the log, phyjoint preprocess a closing line
        expected_source = "progress bar" if row["arm"] == "nnunet" else "phyjoint preprocess's closing line"
        assert expected_source in t["preprocessing"]["source"] and t["preprocessing"]["seconds"] > 0
        for fold in t["folds"].values():
            assert fold["trainer_seconds"] >= fold["train_seconds"] > 0 and fold["final_validation_seconds"] > 0
            assert fold["total_seconds"] > fold["trainer_seconds"] + fold["final_validation_seconds"]
        assert t["mean_total_seconds"] > c["train_seconds"] / 4
    assert {f["style_fit"]["status"] for f in nnunet["costs"]["time"]["folds"].values()} == {"not used"}
    # each fold's decoder was fitted in its training run (the log names it, record.json holds the seconds)
    for f in phyjoint["costs"]["time"]["folds"].values():
        assert f["style_fit"]["status"] == "fitted in this run" and f["style_fit"]["seconds"] > 0
    assert phyjoint["costs"]["time"]["preprocessing"]["data_identifier"] == "PhyJointPlans_2d"
    assert "benign" in phyjoint["metrics"]["classification"]["support"]
    assert "sensitivity" in phyjoint["metrics"]["classification"]
    assert nnunet["metrics"]["classification"] is None
    f1 = phyjoint["metrics"]["classification"]["f1_macro"]
    assert 0.0 <= f1["value"] <= 1.0
    table = (out / "table1.md").read_text()
    assert "| `nnunet` |" in table and "segmentation only" in table
    # two simulated scanners: each arm also scored per scanner
    assert all(len(r["metrics"]["by_scanner"]) == 2 for r in result["rows"]) and "Per scanner (" in table
    # and per fold, each fold with its own cases, beside the arm's mean of folds
    assert all(list(r["metrics"]["by_fold"]) == ["0", "1", "2", "3"] for r in result["rows"])
    assert sum(e["n_cases"] for e in result["rows"][0]["metrics"]["by_fold"].values()) == 32
    assert "Per fold (" in table and "| mean of 4 | 32 |" in table
    assert "Total min/fold" in table and "`phyjoint`, min per fold: preprocessing" in table
    with Image.open(out / "fig3_arms.png") as im:
        assert im.size[0] > 300
    assert len(list((out / "cv" / "phyjoint").glob("*.png"))) == 32
    assert (out / "cv" / "phyjoint" / "classification.csv").is_file()

    # a second run trains nothing (every fold is done) and scores an independent test set with each
    # arm's four fold models ensembled
    _run(["phyjoint", "simulate", str(tmp_path / "src_test"), "--n", "8", "--scanners", "2", "--size", "64", "64",
          "--seed", "4"], env)
    _run(["phyjoint", "convert", "precise", str(tmp_path / "src_test"), "-d", "992", "--name", "BenchTest"], env)
    again = _run([*cmd, "--test-dataset", "992"], env)
    assert again.stdout.count("already trained") == 8 and "$ nnUNetv2_train" not in again.stdout
    assert "nnUNetv2_predict -i" in again.stdout and "phyjoint predict -i" in again.stdout
    assert "-f 0 1 2 3" in again.stdout
    result = json.loads((out / "table1.json").read_text())
    assert result["test_dataset"] == "Dataset992_BenchTest"
    nnunet, phyjoint = result["rows"]
    for row in result["rows"]:
        assert row["test"]["n_cases"] == 8 and row["test"]["folds"] == [0, 1, 2, 3]
        assert 0.0 <= row["test"]["metrics"]["segmentation"]["dsc"]["all_image"]["value"] <= 1.0
        assert "postprocessed" in row["test"]
    assert nnunet["test"]["metrics"]["classification"] is None
    assert phyjoint["test"]["metrics"]["classification"]["f1_macro"]["value"] is not None
    assert (out / "test" / "phyjoint" / "classification.csv").is_file()
    assert len(list((out / "test" / "nnunet").glob("*.png"))) == 8
    assert len(list((out / "gt_test" / "labelsTr").glob("*.png"))) == 8
    table = (out / "table1.md").read_text()
    assert "Independent test set `Dataset992_BenchTest` (8 cases" in table and "fig3_test.png" in table
    with Image.open(out / "fig3_test.png") as im:
        assert im.size[0] > 300
    # unchanged checkpoints: the test predictions are reused, not predicted again
    third = _run([*cmd, "--test-dataset", "992"], env)
    assert third.stdout.count("test predictions up to date") == 2 and "predict -i" not in third.stdout
    # the training dataset is no test set
    proc = subprocess.run([str(BIN / "phyjoint"), *cmd[1:], "--test-dataset", "991"], capture_output=True, text=True,
                          env=env)
    assert proc.returncode == 1 and "is the training dataset" in proc.stderr


def test_inference_timing_cache_is_reused_only_for_the_same_checkpoint_device_and_count(tmp_path):
    from nnunet_phyjoint.benchmark.costs import _cached_timing
    from nnunet_phyjoint.evaluation.io import write_json

    cache = tmp_path / "timing" / "arm.json"
    key = {"checkpoint": "/x/fold_0/checkpoint_final.pth", "checkpoint_mtime_ns": 1, "device": "cpu", "n_images": 4}
    assert _cached_timing(cache, key) is None and _cached_timing(None, key) is None
    write_json(cache, {"key": key, "timing": {"ms_per_image": 12.5}})
    assert _cached_timing(cache, key) == {"ms_per_image": 12.5}
    for change in ({"checkpoint_mtime_ns": 2}, {"device": "cuda"}, {"n_images": 8}):
        assert _cached_timing(cache, {**key, **change}) is None  # retrained or measured differently: time again
    cache.write_text("{not json")
    assert _cached_timing(cache, key) is None


def test_stock_one_pass_trainers_checkpoint_every_epoch_so_a_resume_loses_at_most_one(monkeypatch):
    """nnU-Net's default ``save_every`` of 50 would make ``--c`` restart a 5-epoch stock arm from nothing."""
    import torch
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    from nnunet_phyjoint.training import stock_variants as sv

    def fake_init(self, plans, configuration, fold, dataset_json, device=torch.device("cpu")):
        self.device, self.save_every, self.num_epochs = device, 50, 1000

    monkeypatch.setattr(nnUNetTrainer, "__init__", fake_init)
    for cls in (sv.nnUNetTrainer_onePass_5epochs, sv.nnUNetTrainer_onePass_30min):
        trainer = cls({}, "2d", 0, {}, torch.device("cpu"))
        assert trainer.save_every == 1, cls.__name__
    assert sv.nnUNetTrainer_onePass_5epochs({}, "2d", 0, {}, torch.device("cpu")).num_epochs == 5


@pytest.mark.slow
def test_benchmark_leave_one_scanner_out_end_to_end(tmp_path):
    """The LOSO protocol through nnU-Net's commands on a tiny simulated dataset: folds, tables, figures."""
    env = _simulated_dataset(tmp_path, "994", "Loso", n=24, scanners=3, seed=5, style_fit_steps=5)
    out = tmp_path / "bench"
    printed = _run(["phyjoint", "benchmark", "-d", "994", "--arms", "phyjoint", "nnunet", "--epochs", "1",
                    "--leave-one-scanner-out", "--device", "cpu", "-o", str(out), "--encoder", "mobilenetv3_small_050",
                    "--size", "64", "--batch-size", "4", "--bootstrap", "50"], env).stdout
    assert "early stopping off" in printed
    result = json.loads((out / "loso" / "table_loso.json").read_text())
    assert result["protocol"] == "leave-one-scanner-out" and len(result["scanners"]) == 3
    assert [r["arm"] for r in result["rows"]] == ["phyjoint", "nnunet"]
    for row in result["rows"]:
        assert set(row["per_scanner"]) == set(result["scanners"])
        assert all(0.0 <= m["dsc_lesion_only"] <= 1.0 for m in row["per_scanner"].values())
    table = (out / "loso" / "table_loso.md").read_text()
    assert "held out" in table and "Each held-out scanner with its 95% bootstrap CIs" in table
    assert table.count("| `phyjoint` | ") == 1 + 3  # the summary line and one detail line per held-out scanner
    for name in ("fig_loso.png", "fig_learning_curves.png"):
        with Image.open(out / "loso" / name) as im:
            assert im.size[0] > 300


class _StopAfterTraining(Exception):
    """Raised by a fake train_all: what run_loso does after training is not under test."""


def _loso_without_data(monkeypatch, tmp_path, scanners, train_all) -> None:
    """run_loso on a fake LOSO copy with these held-out scanners, nothing planned, ``train_all`` as given."""
    from nnunet_phyjoint import splits as splits_module
    from nnunet_phyjoint.benchmark import loso

    (tmp_path / "raw" / "Dataset801_XLOSO").mkdir(parents=True)
    monkeypatch.setattr(loso, "loso_dataset", lambda source, target: "Dataset801_XLOSO")
    monkeypatch.setattr(loso, "raw_dir", lambda: tmp_path / "raw")
    monkeypatch.setattr(loso, "_with_source_plan_settings", lambda cfg, source: cfg)
    monkeypatch.setattr(loso, "prepare", lambda *a, **k: None)
    monkeypatch.setattr(loso, "train_all", train_all)
    monkeypatch.setattr(splits_module, "write_splits", lambda *a, **k: None)
    monkeypatch.setattr(splits_module, "leave_one_scanner_out_splits",
                        lambda *a, **k: [{"held_out_scanner": s, "train": [], "val": []} for s in scanners])


def test_benchmark_trains_without_early_stopping_in_both_protocols(monkeypatch, tmp_path):
    """LOSO's validation fold is the held-out scanner and CV's is the fold scored; stock never stops early."""
    from nnunet_phyjoint.benchmark import loso, runner, stages
    from nnunet_phyjoint.benchmark.arms import known_arms
    from nnunet_phyjoint.training.early_stopping import PATIENCE_ENV

    seen = []

    def fake_train_fold(dataset, trainer, plans, fold, device, log_dir, label, env_overrides=None):
        seen.append(dict(env_overrides or {}))
        return {"status": "trained", "seconds": 1.0}

    def train_all_then_stop(*args, **kwargs):
        stages.train_all(*args, **kwargs)
        raise _StopAfterTraining

    _loso_without_data(monkeypatch, tmp_path, ["A", "B"], train_all_then_stop)
    monkeypatch.setattr(runner, "train_fold", fake_train_fold)
    cfg = stages.BenchmarkConfig(dataset="901", out=tmp_path / "out", epochs=5)
    with pytest.raises(_StopAfterTraining):
        loso.run_loso(cfg, "Dataset901_X", [known_arms()["phyjoint"]], [])
    assert len(seen) == 2 and all(env[PATIENCE_ENV] == "0" for env in seen)
    # the 4-fold benchmark too
    seen.clear()
    stages.train_all(cfg, "Dataset901_X", [known_arms()["phyjoint"]], [0], tmp_path, tmp_path / "runs.json")
    assert len(seen) == 1 and seen[0][PATIENCE_ENV] == "0"


def test_held_out_selects_loso_folds_by_a_part_of_the_scanner_name():
    from nnunet_phyjoint.benchmark.loso import select_held_out

    splits = [{"held_out_scanner": s} for s in ("GE Logiq 5 @10-12MHz", "GE Logiq 7 @10-14MHz", "Toshiba Aplio 300")]
    assert select_held_out(splits, None) == [0, 1, 2]
    assert select_held_out(splits, ["toshiba"]) == [2]
    assert select_held_out(splits, ["Logiq 7", "logiq 5", "LOGIQ 7"]) == [0, 1]
    for ambiguous_or_absent in (["Logiq"], ["Philips"]):
        with pytest.raises(ValueError, match="matches (2|0) of the held-out scanners"):
            select_held_out(splits, ambiguous_or_absent)


def test_held_out_without_leave_one_scanner_out_is_an_error_before_anything_runs(tmp_path):
    from nnunet_phyjoint.benchmark.pipeline import run_benchmark
    from nnunet_phyjoint.benchmark.stages import BenchmarkConfig

    with pytest.raises(ValueError, match="--held-out chooses held-out scanners of --leave-one-scanner-out"):
        run_benchmark(BenchmarkConfig(dataset="999", out=tmp_path / "out", epochs=5, loso_held_out=["Toshiba"]))
    assert not (tmp_path / "out").exists()


def test_loso_trains_only_the_chosen_held_out_scanner(monkeypatch, tmp_path):
    from nnunet_phyjoint.benchmark import loso
    from nnunet_phyjoint.benchmark.arms import known_arms
    from nnunet_phyjoint.benchmark.stages import BenchmarkConfig

    trained = []

    def fake_train_all(cfg, name, arms, folds, log_dir, runs_file):
        trained.extend(folds)
        raise _StopAfterTraining

    _loso_without_data(monkeypatch, tmp_path, ["A1", "B2", "C3"], fake_train_all)
    cfg = BenchmarkConfig(dataset="901", out=tmp_path / "out", epochs=5, leave_one_scanner_out=True,
                          loso_held_out=["c3"])
    with pytest.raises(_StopAfterTraining):
        loso.run_loso(cfg, "Dataset901_X", [known_arms()["phyjoint"]], [])
    assert trained == [2]


def test_by_fold_table_adds_each_arms_unweighted_mean_of_folds():
    from nnunet_phyjoint.benchmark.table import DASH, by_group_table

    def e(v):
        return {"value": v, "ci_low": v - 0.05, "ci_high": v + 0.05}

    rows = [{"arm": "phyjoint", "metrics": {"by_fold": {
                "0": {"n_cases": 469, "dsc_lesion_only": e(0.8), "auc_malignant": e(0.9)},
                "1": {"n_cases": 468, "dsc_lesion_only": e(0.9), "auc_malignant": e(0.7)}}}},
            {"arm": "nnunet", "metrics": {"by_fold": {
                "0": {"n_cases": 469, "dsc_lesion_only": e(0.5)}, "1": {"n_cases": 468, "dsc_lesion_only": e(0.6)}}}}]
    lines = by_group_table(rows, "by_fold", "Fold", mean_row=True).splitlines()
    assert lines[0].startswith("| Arm | Fold | Cases | DSC lesion-only |")
    assert lines[2].startswith("| `phyjoint` | 0 | 469 | 0.800 [0.750, 0.850] |")
    assert lines[4] == f"| `phyjoint` | mean of 2 | 937 | 0.850 | {DASH} | 0.800 | {DASH} | {DASH} |"
    assert lines[7] == f"| `nnunet` | mean of 2 | 937 | 0.550 | {DASH} | {DASH} | {DASH} | {DASH} |"
    assert len(lines) == 8


def test_by_scanner_table_one_line_per_arm_and_scanner():
    from nnunet_phyjoint.benchmark.table import DASH, by_group_table

    def e(v, lo, hi):
        return {"value": v, "ci_low": lo, "ci_high": hi}

    rows = [{"arm": "phyjoint", "metrics": {"by_scanner": {
                "GE Logiq 5": {"n_cases": 389, "dsc_lesion_only": e(0.892, 0.883, 0.9), "hd95_px": e(19.54, 17.5, 21.9),
                               "auc_malignant": e(0.848, 0.807, 0.888), "sensitivity": e(0.879, 0.8, 0.93),
                               "specificity": e(0.585, 0.5, 0.64)},
                "Toshiba": {"n_cases": 75, "dsc_lesion_only": e(0.709, 0.647, 0.771)}}}},
            {"arm": "nnunet", "metrics": {"by_scanner": None}}]
    lines = by_group_table(rows, "by_scanner", "Scanner").splitlines()
    assert len(lines) == 4  # header, rule, two scanners of the one arm with a breakdown
    assert lines[2] == ("| `phyjoint` | GE Logiq 5 | 389 | 0.892 [0.883, 0.900] | 19.5 [17.5, 21.9] | "
                        "0.848 [0.807, 0.888] | 0.879 [0.800, 0.930] | 0.585 [0.500, 0.640] |")
    assert lines[3].startswith("| `phyjoint` | Toshiba | 75 | 0.709 [0.647, 0.771] | " + DASH)
