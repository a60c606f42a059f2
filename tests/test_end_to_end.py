"""The real console scripts, end to end, on a tiny simulated dataset.

simulate -> convert -> plan -> nnUNetv2_preprocess -> nnUNetv2_train (4 folds; fold 0 killed
after its first checkpoint and resumed with --c) -> nnUNetv2_predict -> phyjoint predict ->
phyjoint ensemble / nnUNetv2_ensemble -> nnUNetv2_find_best_configuration -f 0 1 2 3.
"""
from __future__ import annotations

import csv
import json
import os
import pickle
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nnunet_phyjoint.input_scaling import LETTERBOX

BIN = Path(sys.executable).parent
TRAINER = "PhyJointTrainer_3epochs"
DS = "990"
ENCODER = "mobilenetv3_small_050"

pytestmark = pytest.mark.slow


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    exe = BIN / cmd[0]
    full = [str(exe) if exe.exists() else cmd[0], *cmd[1:]]
    proc = subprocess.run(full, capture_output=True, text=True, **kwargs)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(full)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def read_csv(path: Path) -> dict[str, dict[str, str]]:
    with open(path) as f:
        return {row["case_id"]: row for row in csv.DictReader(f)}


def probs(row: dict[str, str]) -> np.ndarray:
    return np.array([float(row[k]) for k in ("prob_normal", "prob_benign", "prob_malignant")])


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """Everything up to trained folds; shared by the tests of this module."""
    root = tmp_path_factory.mktemp("e2e")
    env = dict(os.environ)
    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        (root / var).mkdir()
        env[var] = str(root / var)
    env["nnUNet_extTrainer"] = str(Path(__file__).resolve().parents[1] / "trainers")
    env["nnUNet_n_proc_DA"] = "0"
    env["nnUNet_compile"] = "f"
    env["OMP_NUM_THREADS"] = "1"
    env["nnUNet_def_n_proc"] = "1"
    env["PHYJOINT_STYLE_FIT_STEPS"] = "5"
    env["PHYJOINT_ALLOW_RANDOM_VGG"] = "1"  # no ImageNet VGG-19 weights on CI machines

    run(["phyjoint", "simulate", str(root / "src"), "--n", "32", "--scanners", "2", "--size", "64", "64",
         "--seed", "3"], env=env)
    run(["phyjoint", "convert", "precise", str(root / "src"), "-d", DS, "--name", "E2E"], env=env)
    # the default input scaling (letterbox), preprocessed as the README says; nnUNetv2_predict must then
    # letterbox new images like phyjoint predict does (test_predict_ensemble_and_find_best)
    run(["phyjoint", "plan", "-d", DS, "--encoder", ENCODER, "--size", "64", "--batch-size", "4",
         "--encoder-weights", "none", "-np", "1"], env=env)
    run(["phyjoint", "preprocess", "-d", DS, "-plans_name", "PhyJointPlans", "-np", "1"], env=env)

    results = root / "nnUNet_results" / "Dataset990_E2E" / f"{TRAINER}__PhyJointPlans__2d"
    train = [str(BIN / "nnUNetv2_train"), DS, "2d", "0", "-tr", TRAINER, "-p", "PhyJointPlans", "-device", "cpu"]
    # fold 0: kill as soon as the first epoch's checkpoint exists, then resume with --c
    proc = subprocess.Popen(train, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    latest = results / "fold_0" / "checkpoint_latest.pth"
    deadline = time.time() + 600
    while not latest.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "training ended before it could be interrupted"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (results / "fold_0" / "checkpoint_final.pth").exists()
    resumed = run([*train[:1], *train[1:], "--c"], env=env)
    for fold in ("1", "2", "3"):
        run(["nnUNetv2_train", DS, "2d", fold, "-tr", TRAINER, "-p", "PhyJointPlans", "-device", "cpu"], env=env)
    return {"root": root, "env": env, "results": results, "resumed_log": resumed.stdout}


def test_training_outputs_and_resume(pipeline):
    import torch

    from nnunet_phyjoint.style_shift.defaults import CPU_LAYER

    results = pipeline["results"]
    for fold in range(4):
        fd = results / f"fold_{fold}"
        ckpt = torch.load(fd / "checkpoint_final.pth", map_location="cpu", weights_only=False)
        assert ckpt["trainer_name"] == TRAINER
        assert ckpt["current_epoch"] == 3
        log = ckpt["logging"]
        assert len(log["val_class_accuracy"]) == 3 and len(log["mean_fg_dice"]) == 3
        assert all(0.0 <= a <= 1.0 for a in log["val_class_accuracy"])
        assert (fd / "checkpoint_best.pth").is_file() and (fd / "progress.png").is_file()
        logs = "".join(p.read_text() for p in fd.glob("training_log_*.txt"))
        assert "physics style shift: p=0.3" in logs and "AdamW8bit" in logs
        style = pipeline["root"] / "nnUNet_preprocessed" / "Dataset990_E2E" / "phyjoint_style"
        # one decoder per fold and AdaIN layer; on the CPU the layer is the CPU default
        assert (style / f"PhyJointPlans__2d__fold{fold}__{CPU_LAYER}" / "record.json").is_file()
        assert (fd / "validation" / "summary.json").is_file()
        rows = read_csv(fd / "validation" / "classification.csv")
        splits = json.loads((pipeline["root"] / "nnUNet_preprocessed" / "Dataset990_E2E" / "splits_final.json").read_text())
        assert set(rows) == set(splits[fold]["val"])
        for row in rows.values():
            assert np.isclose(probs(row).sum(), 1.0, atol=1e-4)
    # the resumed run continued from the interrupted one instead of starting over
    epochs = [int(m) for m in re.findall(r": Epoch (\d+)\s*$", pipeline["resumed_log"], flags=re.M)]
    assert epochs and epochs[0] >= 1 and epochs[-1] == 2, epochs


def test_predict_ensemble_and_find_best(pipeline):
    root, env = pipeline["root"], pipeline["env"]
    images = root / "nnUNet_raw" / "Dataset990_E2E" / "imagesTr"
    subset = root / "test_images"
    subset.mkdir()
    chosen = sorted(images.iterdir())[:4]
    for f in chosen:
        (subset / f.name).write_bytes(f.read_bytes())
    # one image of another size and aspect: letterboxed, it fills the input; at the plans' single spacing
    # it would not, so a nnUNetv2_predict that skipped the letterbox would give other masks below
    with Image.open(chosen[0]) as im:
        im.resize((96, 72), Image.BILINEAR).save(subset / chosen[0].name)
    common = ["-d", DS, "-c", "2d", "-tr", TRAINER, "-p", "PhyJointPlans", "-device", "cpu", "-npp", "1", "-nps", "1"]

    four = ["-f", "0", "1", "2", "3", "--save_probabilities"]
    run(["nnUNetv2_predict", "-i", str(subset), "-o", str(root / "stock"), *four, *common], env=env)
    run(["phyjoint", "predict", "-i", str(subset), "-o", str(root / "ours"), *four, *common], env=env)
    cases = [f.name[:-len("_0000.png")] for f in chosen]
    for case in cases:  # the same letterboxed input, so the same probabilities
        stock, ours = (np.load(root / d / f"{case}.npz")["probabilities"] for d in ("stock", "ours"))
        np.testing.assert_allclose(stock, ours, atol=1e-4)
        assert pickle.loads((root / "stock" / f"{case}.pkl").read_bytes())["phyjoint_scaling"] == LETTERBOX
    table = read_csv(root / "ours" / "classification.csv")
    assert sorted(table) == sorted(cases)
    for case in cases:
        stock = np.array(Image.open(root / "stock" / f"{case}.png"))
        ours = np.array(Image.open(root / "ours" / f"{case}.png"))
        original = np.array(Image.open(subset / f"{case}_0000.png"))
        assert stock.shape == original.shape  # back at the original image size
        np.testing.assert_array_equal(stock, ours)
        p = probs(table[case])
        assert np.isclose(p.sum(), 1.0, atol=1e-4)
        assert table[case]["predicted_class"] == ("normal", "benign", "malignant")[int(p.argmax())]

    for fold in ("0", "1"):
        run(["phyjoint", "predict", "-i", str(subset), "-o", str(root / f"f{fold}"), "-f", fold,
             "--save_probabilities", *common], env=env)
    run(["nnUNetv2_ensemble", "-i", str(root / "f0"), str(root / "f1"), "-o", str(root / "ens_stock"), "-np", "1"],
        env=env)
    run(["phyjoint", "ensemble", "-i", str(root / "f0"), str(root / "f1"), "-o", str(root / "ens"), "-np", "1"],
        env=env)
    ens = read_csv(root / "ens" / "classification.csv")
    f0, f1 = read_csv(root / "f0" / "classification.csv"), read_csv(root / "f1" / "classification.csv")
    for case in cases:
        np.testing.assert_allclose(probs(ens[case]), (probs(f0[case]) + probs(f1[case])) / 2, atol=1e-5)
        np.testing.assert_array_equal(np.array(Image.open(root / "ens" / f"{case}.png")),
                                      np.array(Image.open(root / "ens_stock" / f"{case}.png")))

    run(["nnUNetv2_find_best_configuration", DS, "-c", "2d", "-tr", TRAINER, "-p", "PhyJointPlans",
         "-f", "0", "1", "2", "3", "-np", "1"], env=env)
    ds_results = root / "nnUNet_results" / "Dataset990_E2E"
    assert (ds_results / "inference_instructions.txt").is_file()
    assert (pipeline["results"] / "crossval_results_folds_0_1_2_3" / "summary.json").is_file()


def test_quantized_training_export_and_predict(pipeline):
    """INT4 quantization-aware training -> phyjoint export -> phyjoint predict -m reproduces the QAT model."""
    root, env = pipeline["root"], pipeline["env"]
    trainer = "PhyJointTrainer_INT4_1ep"
    run(["nnUNetv2_train", DS, "2d", "0", "-tr", trainer, "-p", "PhyJointPlans", "-device", "cpu"], env=env)
    model = root / "nnUNet_results" / "Dataset990_E2E" / f"{trainer}__PhyJointPlans__2d"
    out = run(["phyjoint", "export", str(model), "--bits", "4", "-o", str(root / "int4"), "-f", "0"], env=env)
    assert "%" in out.stdout
    images = root / "nnUNet_raw" / "Dataset990_E2E" / "imagesTr"
    subset = root / "q_images"
    subset.mkdir()
    for f in sorted(images.iterdir())[:3]:
        (subset / f.name).write_bytes(f.read_bytes())
    flags = ["-device", "cpu", "-npp", "1", "-nps", "1", "-f", "0"]
    run(["phyjoint", "predict", "-i", str(subset), "-o", str(root / "q_qat"), "-d", DS, "-c", "2d", "-tr", trainer,
         "-p", "PhyJointPlans", *flags], env=env)
    run(["phyjoint", "predict", "-i", str(subset), "-o", str(root / "q_packed"), "-m", str(root / "int4"), *flags],
        env=env)
    qat, packed = read_csv(root / "q_qat" / "classification.csv"), read_csv(root / "q_packed" / "classification.csv")
    assert sorted(qat) == sorted(packed) and len(qat) == 3
    for case in qat:
        np.testing.assert_allclose(probs(packed[case]), probs(qat[case]), atol=1e-5)
        np.testing.assert_array_equal(np.array(Image.open(root / "q_packed" / f"{case}.png")),
                                      np.array(Image.open(root / "q_qat" / f"{case}.png")))


def test_predict_checks_inputs_rgb_truncated_and_good(pipeline):
    """An RGB PNG, a truncated PNG and two good images: three predictions (the RGB one converted), one named skip."""
    root, env = pipeline["root"], pipeline["env"]
    images = sorted((root / "nnUNet_raw" / "Dataset990_E2E" / "imagesTr").iterdir())
    src = root / "mixed_inputs"
    src.mkdir()
    (src / "good1_0000.png").write_bytes(images[2].read_bytes())
    (src / "good2_0000.png").write_bytes(images[0].read_bytes())
    Image.open(images[2]).convert("RGB").save(src / "colour_0000.png")  # good1 as RGB (BUSI ships RGB PNGs)
    data = images[3].read_bytes()
    (src / "broken_0000.png").write_bytes(data[: len(data) // 2])
    common = ["-d", DS, "-c", "2d", "-tr", TRAINER, "-p", "PhyJointPlans", "-device", "cpu", "-npp", "1", "-nps", "1",
              "-f", "0"]

    strict = subprocess.run([str(BIN / "phyjoint"), "predict", "--strict", "-i", str(src), "-o", str(root / "strict"),
                             *common], capture_output=True, text=True, env=env)
    assert strict.returncode == 1 and "broken_0000.png" in strict.stderr and not (root / "strict").exists()

    proc = subprocess.run([str(BIN / "phyjoint"), "predict", "-i", str(src), "-o", str(root / "mixed"), *common],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 3, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = root / "mixed"
    assert sorted(p.name for p in out.glob("*.png")) == ["colour.png", "good1.png", "good2.png"]
    table = read_csv(out / "classification.csv")
    assert sorted(table) == ["colour", "good1", "good2"]
    # grey -> RGB -> grey the converters' way is the identity, so the RGB copy is predicted exactly like good1
    np.testing.assert_array_equal(np.array(Image.open(out / "colour.png")), np.array(Image.open(out / "good1.png")))
    np.testing.assert_allclose(probs(table["colour"]), probs(table["good1"]), atol=1e-6)
    assert "[input check] colour_0000.png: RGB image converted to grey" in proc.stdout
    assert "skipping broken_0000.png: unreadable or truncated image" in proc.stdout
    assert "3 cases predicted, 1 converted to grey, 1 skipped" in proc.stdout
