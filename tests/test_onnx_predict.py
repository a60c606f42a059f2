"""The ONNX predictor reproduces the PyTorch predictor: same masks and diagnoses, same files.

Tolerance: on these random two-fold models the FP32 export gives the PyTorch path's masks in at least
99 % of the pixels (measured: all of them) and its class probabilities within 1e-5; the INT8 graph is
only checked to run (random weights quantize badly; ``phyjoint bench-speed`` measures trained ones).
"""
from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nnunet_phyjoint.cli import main as phyjoint
from onnx_tiny_model import TEST_SIZES, tiny_model

pytest.importorskip("onnxruntime", reason="needs the onnx extra (pip install -e '.[onnx]')")

PIXEL_AGREEMENT = 0.99
PROBABILITY_ATOL = 1e-5
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The tiny model and the PyTorch predictor's masks and probabilities of every test image (folds 0 and 1)."""
    import torch
    from nnunetv2.imageio.natural_image_reader_writer import NaturalImage2DIO

    from nnunet_phyjoint.inference.predictor import PhyJointPredictor

    tiny = tiny_model(tmp_path_factory)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("nnUNet_extTrainer", str(REPO / "trainers"))
        predictor = PhyJointPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=True,
                                      perform_everything_on_device=False, device=torch.device("cpu"), verbose=False,
                                      verbose_preprocessing=False, allow_tqdm=False)
        predictor.initialize_from_trained_model_folder(str(tiny["model"]), (0, 1))
    masks, probabilities = {}, {}
    for image in sorted(tiny["test_images"].iterdir()):
        case = image.name[:-len("_0000.png")]
        data, properties = NaturalImage2DIO().read_images([str(image)])
        masks[case] = predictor.predict_single_npy_array(data, properties, None, None, False)[0]
        probabilities[case] = predictor.last_class_probabilities
    return {**tiny, "predictor": predictor, "masks": masks, "probabilities": probabilities}


def test_fp32_export_reproduces_the_pytorch_predictor(reference):
    from nnunet_phyjoint.onnx_predict.predictor import ExportPredictor, onnx_runners
    from nnunet_phyjoint.onnx_predict.preprocessing import read_case

    assert {m.shape for m in reference["masks"].values()} >= {(h, w) for h, w in TEST_SIZES.values()}
    manifest, runners, _ = onnx_runners(reference["export"], precision="fp32", threads=1)
    predictor = ExportPredictor(manifest, runners)
    for case, expected in reference["masks"].items():
        got = predictor.predict(read_case([reference["test_images"] / f"{case}_0000.png"]))
        assert got.segmentation.shape == expected.shape and got.segmentation.dtype == np.uint8
        assert 0.02 < expected.mean() < 0.98, "a constant mask would make the comparison empty"
        assert np.mean(got.segmentation == expected) >= PIXEL_AGREEMENT, case
        np.testing.assert_allclose(got.probabilities, reference["probabilities"][case], atol=PROBABILITY_ATOL)


def test_phyjoint_predict_with_an_onnx_export_writes_what_the_pytorch_path_writes(reference, tmp_path, capsys):
    from nnunet_phyjoint.evaluation.io import CLASSIFICATION_HEADER, read_classification_csv

    out = tmp_path / "onnx_pred"
    status = phyjoint(["predict", "-i", str(reference["test_images"]), "-o", str(out), "-m", str(reference["export"]),
                       "-f", "0", "1", "--precision", "fp32", "-device", "cpu", "-npp", "1", "-nps", "1"])
    assert status == 0
    printed = capsys.readouterr().out
    assert "diagnosis-gated masks" in printed and "input summary" in printed
    for case, expected in reference["masks"].items():
        written = np.asarray(Image.open(out / f"{case}.png"))
        assert written.shape == expected.shape and np.mean(written == expected) >= PIXEL_AGREEMENT

    # the CSV is the one PhyJointPredictor writes for the same cases: same header, same rows
    torch_out = tmp_path / "torch_pred"
    torch_out.mkdir()
    predictor = reference["predictor"]
    predictor.class_probabilities = {str(torch_out / c): p for c, p in reference["probabilities"].items()}
    predictor.write_classification_files()
    with open(out / "classification.csv") as f, open(torch_out / "classification.csv") as g:
        onnx_rows, torch_rows = list(csv.reader(f)), list(csv.reader(g))
    assert tuple(onnx_rows[0]) == tuple(torch_rows[0]) == CLASSIFICATION_HEADER
    assert [r[:2] for r in onnx_rows] == [r[:2] for r in torch_rows]  # case ids and predicted classes
    onnx_probs, torch_probs = read_classification_csv(out / "classification.csv"), \
        read_classification_csv(torch_out / "classification.csv")
    for case in torch_probs:
        np.testing.assert_allclose(onnx_probs[case], torch_probs[case], atol=PROBABILITY_ATOL)


def test_int8_default_runs_and_reports_skips(reference, tmp_path, capsys):
    """The default (INT8) graph through the module entry: a truncated input is named and skipped (exit 3)."""
    from nnunet_phyjoint.onnx_predict.__main__ import main

    source = tmp_path / "inputs"
    source.mkdir()
    good = reference["test_images"] / "test_small_0000.png"
    (source / good.name).write_bytes(good.read_bytes())
    (source / "broken_0000.png").write_bytes(good.read_bytes()[:60])
    assert main(["-i", str(source), "-o", str(tmp_path / "strict"), "-m", str(reference["export"]), "--strict"]) == 1
    assert "broken_0000.png" in capsys.readouterr().err and not (tmp_path / "strict" / "test_small.png").exists()

    assert main(["-i", str(source), "-o", str(tmp_path / "out"), "-m", str(reference["export"]), "--threads", "1",
                 "--disable_tta"]) == 3
    assert "skipping broken_0000.png" in capsys.readouterr().out
    mask = np.asarray(Image.open(tmp_path / "out" / "test_small.png"))
    assert mask.shape == TEST_SIZES["test_small"] and set(np.unique(mask)) <= {0, 1}
    assert main(["-i", str(source), "-o", str(tmp_path / "x"), "-m", str(tmp_path)]) == 2
    assert "phyjoint_onnx.json not found" in capsys.readouterr().err


def test_cases_diagnosed_normal_get_an_empty_mask(reference, tmp_path, monkeypatch, capsys):
    """Diagnosis gating as phyjoint predict does it, with a stand-in network that calls everything normal."""
    from nnunet_phyjoint.onnx_predict import folder as onnx_folder
    from nnunet_phyjoint.onnx_predict.manifest import read_manifest

    def normal_lesion_everywhere(batch):
        seg = np.zeros((len(batch), 2, *batch.shape[2:]), np.float32)
        seg[:, 1] = 1.0
        return seg, np.tile(np.float32([[3.0, 0.0, 0.0]]), (len(batch), 1))

    manifest = read_manifest(reference["export"])
    monkeypatch.setattr(onnx_folder, "onnx_runners", lambda *a, **k: (manifest, [normal_lesion_everywhere],
                                                                      [reference["export"] / "stand-in.onnx"]))
    out = tmp_path / "gated"
    assert onnx_folder.predict_folder(reference["export"], reference["test_images"], out) == 0
    assert "cases diagnosed normal, 4 of them had lesion pixels" in capsys.readouterr().out
    for case in reference["masks"]:
        assert not np.asarray(Image.open(out / f"{case}.png")).any()
        assert np.asarray(Image.open(out / "ungated_masks" / f"{case}.png")).any()  # zero outside the crop


@pytest.mark.slow
def test_console_scripts_pytorch_and_onnx_give_the_same_files(reference, tmp_path):
    """`phyjoint predict -m MODEL` (nnU-Net, PyTorch) and `phyjoint predict -m EXPORT` as separate processes."""
    bin_dir = Path(sys.executable).parent
    common = ["-i", str(reference["test_images"]), "-f", "0", "1", "-device", "cpu", "-npp", "1", "-nps", "1"]
    env = {"nnUNet_extTrainer": str(REPO / "trainers"), "OMP_NUM_THREADS": "1", "PATH": str(bin_dir)}
    runs = (("torch", reference["model"], []), ("onnx", reference["export"], ["--precision", "fp32"]))
    for name, model, extra in runs:
        proc = subprocess.run([str(bin_dir / "phyjoint"), "predict", *common, "-o", str(tmp_path / name), "-m",
                               str(model), *extra], capture_output=True, text=True, env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]
    for case in reference["masks"]:
        a = np.asarray(Image.open(tmp_path / "torch" / f"{case}.png"))
        b = np.asarray(Image.open(tmp_path / "onnx" / f"{case}.png"))
        assert a.shape == b.shape and np.mean(a == b) >= PIXEL_AGREEMENT
    with open(tmp_path / "torch" / "classification.csv") as f, open(tmp_path / "onnx" / "classification.csv") as g:
        assert f.readline() == g.readline()
