"""Input scaling: the letterbox spacing, and a real-data smoke run on 16 BUS-BRA cases.

The smoke run reads ``../shared/data/bus_bra`` (skipped with a message when absent): convert a
handful of cases (links to the originals, nothing copied), plan with ``--scaling letterbox``,
``phyjoint preprocess`` (every case's long side fills the input), the trainer's refusal of data made by
stock ``nnUNetv2_preprocess`` for letterbox plans, a 1-epoch training with its final validation (no
normal case in BUS-BRA: the diagnosis gating is off), ``phyjoint predict`` and ``nnUNetv2_predict`` (masks back at each
image's original size).
"""
from __future__ import annotations

import csv
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nnunet_phyjoint.input_scaling import LETTERBOX, SINGLE_SPACING, letterbox_spacing, scaling_of

BIN = Path(sys.executable).parent
BUS_BRA = Path(__file__).resolve().parents[2] / "shared" / "data" / "bus_bra" / "BUSBRA"


def new_shape(shape, spacing, target):
    """nnU-Net's compute_new_shape."""
    return [int(round(s * sp / t)) for s, sp, t in zip(shape, spacing, target)]


@pytest.mark.parametrize("shape", [(1, 315, 277), (1, 120, 579), (1, 256, 256), (1, 31, 30), (1, 1000, 17)])
def test_letterbox_spacing_fills_the_input_and_keeps_the_aspect_ratio(shape):
    target = [2.26, 2.26]
    spacing = letterbox_spacing([999.0, 1.0, 1.0], shape, target, 256)
    assert spacing[0] == 999.0  # the dummy axis of a 2-D image is left alone
    out = new_shape(shape[1:], spacing[1:], target)
    assert max(out) == 256
    assert out[0] / out[1] == pytest.approx(shape[1] / shape[2], rel=0.05 + 1 / min(out))


def test_letterbox_spacing_keeps_anisotropic_pixels_physically_right():
    # 100 x 200 pixels of 0.5 x 0.25 mm: 50 x 50 mm, a square once resampled
    spacing = letterbox_spacing([1.0, 0.5, 0.25], [1, 100, 200], [1.0, 1.0], 64)
    assert new_shape([100, 200], spacing[1:], [1.0, 1.0]) == [64, 64]


def test_letterbox_spacing_rejects_bad_input():
    with pytest.raises(ValueError, match="differ in length"):
        letterbox_spacing([999.0, 1.0], [1, 10, 10], [1.0, 1.0], 64)
    with pytest.raises(ValueError, match="positive"):
        letterbox_spacing([999.0, 0.0, 1.0], [1, 10, 10], [1.0, 1.0], 64)


def test_scaling_of_plans():
    assert scaling_of({}) == SINGLE_SPACING  # plans made before the option: one spacing for all
    assert scaling_of({"phyjoint_scaling": LETTERBOX}) == LETTERBOX
    with pytest.raises(ValueError, match="unknown input scaling"):
        scaling_of({"phyjoint_scaling": "stretch"})


def run(cmd: list[str], env: dict, ok: bool = True) -> subprocess.CompletedProcess:
    exe = BIN / cmd[0]
    proc = subprocess.run([str(exe) if exe.exists() else cmd[0], *cmd[1:]], capture_output=True, text=True, env=env)
    if ok and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def small_bus_bra(root: Path, n_per_class: int = 8) -> Path:
    """A BUS-BRA folder of ``2 * n_per_class`` cases of different patients: links to the originals."""
    with open(BUS_BRA / "bus_data.csv", encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    chosen, patients = [], set()
    for pathology in ("benign", "malignant"):
        picked = 0
        for row in rows:
            if row["Pathology"] == pathology and row["Case"] not in patients and picked < n_per_class:
                chosen.append(row)
                patients.add(row["Case"])
                picked += 1
    out = root / "BUSBRA"
    (out / "Images").mkdir(parents=True)
    (out / "Masks").mkdir()
    for row in chosen:
        bid = row["ID"]
        os.symlink(BUS_BRA / "Images" / f"{bid}.png", out / "Images" / f"{bid}.png")
        os.symlink(BUS_BRA / "Masks" / f"mask_{bid[4:]}.png", out / "Masks" / f"mask_{bid[4:]}.png")
    with open(out / "bus_data.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(chosen)
    return root


@pytest.fixture
def bus_bra_env(tmp_path: Path) -> dict:
    if not (BUS_BRA / "bus_data.csv").is_file():
        pytest.skip(f"BUS-BRA not found at {BUS_BRA} (expected ../shared/data/bus_bra beside the repo)")
    env = dict(os.environ)
    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        (tmp_path / var).mkdir()
        env[var] = str(tmp_path / var)
    env.update(nnUNet_extTrainer=str(Path(__file__).resolve().parents[1] / "trainers"), nnUNet_n_proc_DA="0",
               nnUNet_compile="f", OMP_NUM_THREADS="1", nnUNet_def_n_proc="1")
    return env


def test_bus_bra_letterbox_preprocess_train_and_predict(tmp_path, bus_bra_env):
    env, size = bus_bra_env, 64
    src = small_bus_bra(tmp_path / "src")
    run(["phyjoint", "convert", "bus-bra", str(src), "-d", "977"], env)
    raw = Path(env["nnUNet_raw"]) / "Dataset977_BUSBRA"
    run(["phyjoint", "plan", "-d", "977", "--encoder", "mobilenetv3_small_050", "--size", str(size),
         "--batch-size", "4", "--encoder-weights", "none", "--scaling", LETTERBOX, "-np", "1"], env)
    preprocess = ["phyjoint", "preprocess", "-d", "977", "-plans_name", "PhyJointPlans", "-np", "1"]
    run(preprocess, env)
    data = Path(env["nnUNet_preprocessed"]) / "Dataset977_BUSBRA" / "PhyJointPlans_2d"
    cases = sorted(p.stem for p in data.glob("*.pkl"))
    assert len(cases) == 16
    # nnU-Net's final validation scores against these copies (nnUNetv2_preprocess makes them too)
    assert sorted(p.stem for p in (data.parent / "gt_segmentations").glob("*.png")) == cases
    import blosc2

    for case in cases:
        properties = pickle.loads((data / f"{case}.pkl").read_bytes())
        assert properties["phyjoint_scaling"] == LETTERBOX
        shape = blosc2.open(str(data / f"{case}.b2nd")).shape
        assert max(shape[-2:]) == size, (case, shape)  # every image fills the input, whatever its size

    train = ["nnUNetv2_train", "977", "2d", "0", "-tr", "PhyJointTrainer_1epoch", "-p", "PhyJointPlans",
             "-device", "cpu"]
    # nnU-Net's own preprocessing cannot letterbox: the trainer refuses its data instead of training on it
    run(["nnUNetv2_preprocess", "-d", "977", "-plans_name", "PhyJointPlans", "-c", "2d", "-np", "1"], env)
    refused = run(train, env, ok=False)
    assert refused.returncode != 0 and "was not letterboxed" in refused.stdout + refused.stderr

    run(preprocess, env)
    trained = run(train, env)
    fold = Path(env["nnUNet_results"]) / "Dataset977_BUSBRA" / "PhyJointTrainer_1epoch__PhyJointPlans__2d" / "fold_0"
    log = "".join(p.read_text() for p in fold.glob("training_log_*.txt"))
    assert "diagnosis gating off: the model's training data has no normal case" in log, trained.stdout[-2000:]
    validation = sorted(fold.glob("validation/*.png"))
    assert validation and not (fold / "validation" / "ungated_masks").exists()
    for mask in validation:  # back at each image's original size
        original = Image.open(raw / "imagesTr" / f"{mask.stem}_0000.png")
        assert Image.open(mask).size == original.size

    # three validation cases of fold 0, predicted again from their PNGs: the same letterboxed input as the
    # final validation (which read the preprocessed data), so the same diagnosis
    inputs = tmp_path / "new_images"
    inputs.mkdir()
    for mask in validation[:3]:
        os.symlink(raw / "imagesTr" / f"{mask.stem}_0000.png", inputs / f"{mask.stem}_0000.png")
    model = ["-d", "977", "-c", "2d", "-tr", "PhyJointTrainer_1epoch", "-p", "PhyJointPlans", "-f", "0", "-device", "cpu",
             "-npp", "1", "-nps", "1", "--save_probabilities"]
    predicted = run(["phyjoint", "predict", "-i", str(inputs), "-o", str(tmp_path / "pred"), *model], env)
    assert "diagnosis gating off" in predicted.stdout
    for image in sorted(inputs.iterdir()):
        mask = tmp_path / "pred" / image.name.replace("_0000.png", ".png")
        assert Image.open(mask).size == Image.open(image).size
        assert set(np.unique(np.asarray(Image.open(mask)))) <= {0, 1}
    def probabilities(path: Path) -> dict[str, np.ndarray]:
        with open(path) as f:
            return {r["case_id"]: np.array([float(r[k]) for k in ("prob_normal", "prob_benign", "prob_malignant")])
                    for r in csv.DictReader(f)}

    again, validated = probabilities(tmp_path / "pred" / "classification.csv"), probabilities(
        fold / "validation" / "classification.csv")
    assert len(again) == 3
    for case, p in again.items():
        np.testing.assert_allclose(p, validated[case], atol=1e-4)

    # stock nnUNetv2_predict letterboxes the new images as well (the trainer hands nnU-Net's predictor our
    # preprocessor): the same segmentation probabilities as phyjoint predict, not those of a smaller input
    run(["nnUNetv2_predict", "-i", str(inputs), "-o", str(tmp_path / "stock_pred"), *model], env)
    for image in sorted(inputs.iterdir()):
        case = image.name.replace("_0000.png", "")
        ours, stock = (np.load(tmp_path / folder / f"{case}.npz")["probabilities"] for folder in ("pred", "stock_pred"))
        assert stock.shape == ours.shape and stock.shape[-2:] == Image.open(image).size[::-1]
        np.testing.assert_allclose(stock, ours, atol=1e-4)
        properties = pickle.loads((tmp_path / "stock_pred" / f"{case}.pkl").read_bytes())
        assert properties["phyjoint_scaling"] == LETTERBOX
