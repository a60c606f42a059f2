"""Input checks of `phyjoint predict`, `phyjoint ensemble` and `phyjoint convert images` (no network needed).

The prediction itself is replaced by a stand-in that records the folder nnU-Net would read; the real
run on a trained model is in tests/test_end_to_end.py (slow) and in .ci/wheel_smoke.sh.
"""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dataset_conversion.imaging import read_grey_image
from nnunet_phyjoint.commands import predict as predict_cmd
from nnunet_phyjoint.inference.input_check import (
    CONVERT, EXIT_SKIPPED, OK, SKIP, check_ensemble_folders, check_image, check_prediction_folder, summary,
)
from nnunet_phyjoint.inference.input_staging import write_prediction_inputs
from test_convert_common import save, texture, truncated

DATASET_JSON = {"file_ending": ".png", "channel_names": {"0": "zscore"}, "labels": {"background": 0, "lesion": 1}}


def colour(seed: int) -> np.ndarray:
    """A real colour image (channels differ), as BUSI's RGB files with coloured calipers are."""
    g = texture(seed)
    return np.stack([g, np.roll(g, 3, axis=1), 255 - g], axis=-1)


def prediction_folder(root: Path) -> Path:
    """Two good grey images, one RGB PNG and one truncated PNG, named as nnUNetv2_predict expects."""
    d = root / "imagesTs"
    save(texture(1), d / "good1_0000.png")
    save(texture(2), d / "good2_0000.png")
    save(colour(3), d / "colour_0000.png", "RGB")
    truncated(d / "broken_0000.png", seed=4)
    return d


# ---------------------------------------------------------------- single files
def test_check_image_kinds(tmp_path):
    assert check_image(save(texture(0), tmp_path / "grey.png")).status == OK
    sixteen = tmp_path / "sixteen.png"
    Image.fromarray((texture(0).astype(np.uint16) * 257)).save(sixteen)
    assert check_image(sixteen).status == OK  # nnU-Net reads 16-bit grey as it is
    tiny = save(texture(0, 8, 8), tmp_path / "tiny.png")
    assert check_image(tiny).status == OK
    for mode in ("RGB", "RGBA", "LA", "P"):
        c = check_image(save(colour(0) if mode != "LA" else texture(0), tmp_path / f"{mode}.png", mode))
        assert c.status == CONVERT and mode in c.reason, (mode, c)
    broken = check_image(truncated(tmp_path / "broken.png"))
    assert broken.status == SKIP and "truncated" in broken.reason
    (tmp_path / "text.png").write_text("not an image")
    assert check_image(tmp_path / "text.png").status == SKIP
    assert "not found" in check_image(tmp_path / "missing.png").reason
    frames = [Image.fromarray(texture(i)) for i in range(3)]
    frames[0].save(tmp_path / "stack.tif", save_all=True, append_images=frames[1:])
    stack = check_image(tmp_path / "stack.tif")
    assert stack.status == SKIP and "not a 2-D image: 3 frames" in stack.reason


# ---------------------------------------------------------------- prediction folders
def test_prediction_folder_rgb_truncated_and_two_good(tmp_path):
    report = check_prediction_folder(prediction_folder(tmp_path))
    assert sorted(c.case_id for c in report.usable) == ["colour", "good1", "good2"]
    assert [f.path.name for f in report.converted] == ["colour_0000.png"]
    assert [(p.file, p.reason.split(" (")[0]) for p in report.skipped] == \
        [("broken_0000.png", "unreadable or truncated image")]
    text = summary(report)
    assert "3 cases predicted, 1 converted to grey, 1 skipped" in text
    assert "skipped:   broken_0000.png: unreadable or truncated image" in text


def test_prediction_folder_names_and_channels(tmp_path):
    d = tmp_path / "in"
    save(texture(1), d / "a_0000.png")
    save(texture(2), d / "a_0001.png")
    save(texture(3), d / "b_0000.png")
    save(texture(4, 20, 20), d / "c_0000.png")
    save(texture(5), d / "c_0001.png")
    save(texture(6), d / "noname.png")
    (d / "notes.txt").write_text("ignored: another file ending")
    one = check_prediction_folder(d, ".png", 1)
    reasons = {p.file: p.reason for p in one.skipped}
    assert [c.case_id for c in one.usable] == ["b"]
    assert "unexpected channel file(s) a_0001.png" in reasons["a"]
    assert "not named CASE_XXXX.png" in reasons["noname.png"]
    two = check_prediction_folder(d, ".png", 2)
    reasons = {p.file: p.reason for p in two.skipped}
    assert [c.case_id for c in two.usable] == ["a"]
    assert "missing channel file(s) b_0001.png" in reasons["b"]
    assert "channel images differ in size" in reasons["c"]
    with pytest.raises(NotADirectoryError):
        check_prediction_folder(tmp_path / "nowhere")


def test_staged_inputs_convert_exactly_as_the_converters(tmp_path):
    src = prediction_folder(tmp_path)
    report = check_prediction_folder(src)
    staged = tmp_path / "staged"
    staged.mkdir()
    write_prediction_inputs(report, staged)
    assert sorted(p.name for p in staged.iterdir()) == ["colour_0000.png", "good1_0000.png", "good2_0000.png"]
    converted = Image.open(staged / "colour_0000.png")
    assert converted.mode == "L"
    np.testing.assert_array_equal(np.asarray(converted), read_grey_image(src / "colour_0000.png")[0])
    assert (staged / "good1_0000.png").read_bytes() == (src / "good1_0000.png").read_bytes()


# ---------------------------------------------------------------- `phyjoint predict` around nnU-Net
@pytest.fixture
def fake_predict(tmp_path, monkeypatch):
    """nnU-Net's prediction replaced: writes a mask + classification row per case of the folder it is given."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "dataset.json").write_text(json.dumps(DATASET_JSON))
    calls = []

    def run(argv):
        folder, out = Path(predict_cmd.option_value(argv, "-i")), Path(predict_cmd.option_value(argv, "-o"))
        seen = {p.name: np.asarray(Image.open(p)) for p in sorted(folder.iterdir())}  # read as nnU-Net would
        calls.append({"argv": argv, "folder": folder, "images": seen})
        out.mkdir(parents=True, exist_ok=True)
        for name, arr in seen.items():
            assert arr.ndim == 2, name  # nnU-Net gets one channel per file
            save(np.zeros_like(arr, dtype=bool), out / name.replace("_0000", ""))
        (out / "predict_from_raw_data_args.json").write_text(json.dumps({"list_of_lists_or_source_folder": str(folder)}))

    monkeypatch.setattr(predict_cmd, "run_nnunet_predict", run)
    return model, calls


def test_predict_skips_truncated_converts_rgb_and_exits_3(tmp_path, fake_predict, capsys):
    from nnunet_phyjoint.cli import main

    model, calls = fake_predict
    src, out = prediction_folder(tmp_path), tmp_path / "pred"
    assert main(["predict", "-i", str(src), "-o", str(out), "-m", str(model), "-f", "0"]) == EXIT_SKIPPED
    (call,) = calls
    assert sorted(call["images"]) == ["colour_0000.png", "good1_0000.png", "good2_0000.png"]
    assert call["folder"] != src and not call["folder"].exists()  # a staged folder, removed afterwards
    assert sorted(p.name for p in out.glob("*.png")) == ["colour.png", "good1.png", "good2.png"]
    recorded = json.loads((out / "predict_from_raw_data_args.json").read_text())
    assert recorded["list_of_lists_or_source_folder"] == str(src)  # the user's folder, not the staged one
    text = capsys.readouterr().out
    assert "[input check] colour_0000.png: RGB image converted to grey" in text
    assert "[input check] skipping broken_0000.png: unreadable or truncated image" in text
    last = text.rstrip().splitlines()[-3:]  # the summary closes the run
    assert "3 cases predicted, 1 converted to grey, 1 skipped" in last[0]
    assert last[1:] == ["  converted: colour_0000.png", last[2]] and last[2].startswith("  skipped:   broken_0000.png")
    assert sorted(p.name for p in src.iterdir()) == ["broken_0000.png", "colour_0000.png", "good1_0000.png",
                                                     "good2_0000.png"]  # the input is never touched


def test_predict_strict_stops_before_any_work(tmp_path, fake_predict, capsys):
    from nnunet_phyjoint.cli import main

    model, calls = fake_predict
    src, out = prediction_folder(tmp_path), tmp_path / "pred"
    assert main(["predict", "--strict", "-i", str(src), "-o", str(out), "-m", str(model)]) == 1
    assert calls == [] and not out.exists()
    err = capsys.readouterr().err
    assert "--strict: stopping before any work" in err and "broken_0000.png" in err


def test_predict_reads_good_folder_directly(tmp_path, fake_predict):
    from nnunet_phyjoint.cli import main

    model, calls = fake_predict
    src = tmp_path / "good"
    save(texture(1), src / "x_0000.png")
    assert main(["predict", "-i", str(src), "-o", str(tmp_path / "p"), "-m", str(model), "--strict"]) == 0
    assert calls[0]["folder"] == src and "--strict" not in calls[0]["argv"]


def test_predict_arguments_helpers():
    argv = ["-i", "a", "-o", "b", "-f", "0", "1", "-i", "c"]
    assert predict_cmd.option_value(argv, "-i") == "c"
    assert predict_cmd.option_value(argv, "-m") is None
    assert predict_cmd.option_value(argv, "-tr", "nnUNetTrainer") == "nnUNetTrainer"
    assert predict_cmd.with_option(argv, "-i", "z") == ["-i", "z", "-o", "b", "-f", "0", "1", "-i", "z"]


def test_predictor_keeps_written_cases_when_a_later_case_fails(tmp_path, monkeypatch):
    """A failure in the middle of nnU-Net's loop: classification.csv still holds every case whose mask exists."""
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    from nnunet_phyjoint.evaluation.io import read_classification_csv
    from nnunet_phyjoint.inference.predictor import PhyJointPredictor

    def failing_loop(self, iterator, *args):
        for i, item in enumerate(iterator):
            self.class_probabilities[self._current_output] = np.array([0.2, 0.5, 0.3])
            if i == 0:
                save(np.zeros((4, 4), dtype=bool), Path(item["ofile"] + ".png"))  # exported
            else:
                raise RuntimeError("case 2 failed")  # its mask never written

    monkeypatch.setattr(nnUNetPredictor, "predict_from_data_iterator", failing_loop)
    predictor = PhyJointPredictor(device=torch.device("cpu"), allow_tqdm=False)
    predictor.dataset_json = DATASET_JSON
    items = [{"ofile": str(tmp_path / c), "data": None, "data_properties": {}} for c in ("first", "second")]
    with pytest.raises(RuntimeError, match="case 2 failed"):
        predictor.predict_from_data_iterator(iter(items))
    assert list(read_classification_csv(tmp_path / "classification.csv")) == ["first"]
    assert (tmp_path / "first.png").is_file()


# ---------------------------------------------------------------- `phyjoint ensemble`
def _prediction(folder: Path, cases: dict[str, np.ndarray]) -> Path:
    from nnunet_phyjoint.evaluation.io import write_classification_csv

    folder.mkdir(parents=True)
    for name in ("dataset.json", "plans.json"):
        (folder / name).write_text(json.dumps(DATASET_JSON))
    for case, probs in cases.items():
        np.savez_compressed(folder / f"{case}.npz", probabilities=probs)
        (folder / f"{case}.pkl").write_bytes(pickle.dumps({"case": case}))
    write_classification_csv(folder / "classification.csv", {c: np.array([0.1, 0.6, 0.3]) for c in cases})
    return folder


def test_ensemble_skips_broken_cases(tmp_path, monkeypatch, capsys):
    import nnunetv2.ensembling.ensemble as nnunet_ensemble

    from nnunet_phyjoint.cli import main
    from nnunet_phyjoint.evaluation.io import read_classification_csv

    p = np.full((2, 1, 4, 4), 0.5, dtype=np.float32)
    a = _prediction(tmp_path / "a", {"x": p, "y": p, "z": p})
    b = _prediction(tmp_path / "b", {"x": p, "y": p, "z": p[:, :, :2]})
    (b / "y.npz").write_bytes((b / "y.npz").read_bytes()[:40])  # truncated download
    seen = []

    def fake_ensemble(folders, out, *args):
        seen.append(sorted(q.name for q in Path(folders[1]).glob("*.npz")))
        Path(out).mkdir(exist_ok=True)
        for q in Path(folders[0]).glob("*.npz"):
            save(np.zeros((4, 4), dtype=bool), Path(out) / f"{q.stem}.png")

    monkeypatch.setattr(nnunet_ensemble, "ensemble_folders", fake_ensemble)
    report = check_ensemble_folders([a, b])
    reasons = {p.file.split("/")[-1]: p.reason for p in report.skipped}
    assert [c.case_id for c in report.usable] == ["x"]
    assert "unreadable probabilities" in reasons["y.npz"] and "shapes differ" in reasons["z"]
    out = tmp_path / "ens"
    assert main(["ensemble", "-i", str(a), str(b), "-o", str(out), "-np", "1"]) == EXIT_SKIPPED
    assert seen == [["x.npz"]]
    assert list(read_classification_csv(out / "classification.csv")) == ["x"]
    assert "1 case ensembled, 0 converted to grey, 2 skipped" in capsys.readouterr().out
    assert main(["ensemble", "--strict", "-i", str(a), str(b), "-o", str(tmp_path / "e2")]) == 1
    assert not (tmp_path / "e2").exists()


# ---------------------------------------------------------------- `phyjoint convert images`
def test_convert_images_checks_first(tmp_path, capsys):
    from nnunet_phyjoint.cli import main

    src = prediction_folder(tmp_path)
    assert main(["convert", "images", str(src), "-o", str(tmp_path / "strict"), "--strict"]) == 1
    assert not (tmp_path / "strict").exists()
    assert "broken_0000.png" in capsys.readouterr().err
    assert main(["convert", "images", str(src), "-o", str(tmp_path / "out")]) == EXIT_SKIPPED
    written = sorted(p.name for p in (tmp_path / "out").glob("*.png"))
    assert written == ["colour_0000_0000.png", "good1_0000_0000.png", "good2_0000_0000.png"]
    text = capsys.readouterr().out
    assert "[input check] colour_0000.png: RGB image converted to grey" in text
    assert "[input check] skipping broken_0000.png" in text
