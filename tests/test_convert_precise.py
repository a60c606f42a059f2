"""PRECISE converter (also the simulator's way into nnU-Net) on a replica with every trap, and on the real sample."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from dataset_conversion import ConversionError, convert_precise
from test_convert_common import (H, W, lesion, load_png, no_leftovers, read_dataset, rgb, save, skipped, texture,
                                 tree_digest, truncated)


def make_precise(root):
    """Class folders nested under images/Train and images/Val, as a release may ship them."""
    tr, va = root / "images" / "Train", root / "images" / "Val"
    save(texture(1), tr / "benign" / "PACE_00002_001_BUSBRA.png")
    save(lesion(5, 5), tr / "benign" / "PACE_00002_001_BUSBRA_mask.png", "1")  # 1-bit mask
    save(texture(2), tr / "benign" / "PACE_00007_100_SIMA.png")  # follow-up benign
    save(lesion(10, 10).astype(np.uint8), tr / "benign" / "PACE_00007_100_SIMA_mask.png")  # 0/1 mask
    save(texture(3), tr / "malignant" / "PACE_00007_101_SIMB.png")  # same subject, follow-up malignant
    save(rgb(lesion(2, 20).astype(np.uint8) * 255), tr / "malignant" / "PACE_00007_101_SIMB_mask.png")  # RGB mask
    save(rgb(texture(4)), va / "normal" / "PACE_01876_000_BUSI.png")  # RGB image
    save(rgb(np.zeros((H, W), np.uint8)), va / "normal" / "PACE_01876_000_BUSI_mask.png")
    save(texture(5), va / "malignant" / "PACE_00010_002_BUSBRA.png")
    save(lesion(0, 0), va / "malignant" / "PACE_00010_002_BUSBRA_mask.png")
    # traps
    save(lesion(0, 0), va / "normal" / "PACE_01882_000_BUSI_mask.png")  # mask without image
    save(texture(6), tr / "benign" / "PACE_00011_001_BUSBRA.png")  # image without mask
    save(texture(7), tr / "other" / "PACE_00012_001_BUSBRA.png")  # unknown class folder
    save(lesion(0, 0), tr / "other" / "PACE_00012_001_BUSBRA_mask.png")
    save(texture(8), tr / "benign" / "PACE_00013_003_BUSBRA.png")  # unknown class code
    save(lesion(0, 0), tr / "benign" / "PACE_00013_003_BUSBRA_mask.png")
    save(texture(9), tr / "benign" / "PACE_00014_002_BUSBRA.png")  # code says malignant, folder benign
    save(lesion(0, 0), tr / "benign" / "PACE_00014_002_BUSBRA_mask.png")
    save(texture(10), tr / "benign" / "scan15.png")  # not a PACE name
    save(lesion(0, 0), tr / "benign" / "scan15_mask.png")
    save(texture(11), tr / "benign" / "PACE_00016_001_BUSBRA.png")  # size mismatch
    save(lesion(0, 0, h=H + 2), tr / "benign" / "PACE_00016_001_BUSBRA_mask.png")
    truncated(tr / "benign" / "PACE_00017_001_BUSBRA.png", 12)  # truncated image
    save(lesion(0, 0), tr / "benign" / "PACE_00017_001_BUSBRA_mask.png")
    save(texture(13), tr / "benign" / "PACE_00018_001_BUSBRA.png")  # non-binary mask
    save(np.arange(H * W, dtype=np.uint8).reshape(H, W) % 3 * 100, tr / "benign" / "PACE_00018_001_BUSBRA_mask.png")
    save(texture(14), va / "benign" / "PACE_00002_001_BUSBRA.png")  # same case id again (in Val)
    save(lesion(0, 0), va / "benign" / "PACE_00002_001_BUSBRA_mask.png")
    (root / "README.txt").write_text("not an image")
    save(texture(15), root / "preview.png")
    return root


EXPECTED_SKIPPED = {
    "images/Val/normal/PACE_01882_000_BUSI_mask.png": "mask without an image (PACE_01882_000_BUSI.png is missing)",
    "images/Train/benign/PACE_00011_001_BUSBRA.png": "no mask beside the image (expected PACE_00011_001_BUSBRA_mask.png)",
    "images/Train/other/PACE_00012_001_BUSBRA.png": "unknown class folder 'other' (expected benign, malignant or normal)",
    "images/Train/other/PACE_00012_001_BUSBRA_mask.png": "unknown class folder 'other' (expected benign, malignant or normal)",
    "images/Train/benign/PACE_00013_003_BUSBRA.png": "unknown class code 003 (known: 000, 001, 002, 100, 101)",
    "images/Train/benign/PACE_00014_002_BUSBRA.png": "class code 002 (malignant) disagrees with its folder benign/",
    "images/Train/benign/scan15.png": "file name does not follow PACE_<5-digit subject>_<3-digit code>_<source tag>.png",
    "images/Train/benign/PACE_00016_001_BUSBRA_mask.png":
        "mask size 48x42 differs from image size 48x40 (images/Train/benign/PACE_00016_001_BUSBRA.png)",
    "images/Val/benign/PACE_00002_001_BUSBRA.png": "case PACE_00002_001_BUSBRA already taken from images/Train/benign/PACE_00002_001_BUSBRA.png",
}


def test_precise_replica_classes_patients_masks_and_report(tmp_path, nnunet_env):
    src = make_precise(tmp_path / "src")
    before = tree_digest(src)
    out = convert_precise(src, 11, quiet=True)
    assert out == nnunet_env["nnUNet_raw"] / "Dataset011_PRECISE"
    dj, report = read_dataset(out)
    cases = dj["phyjoint"]["cases"]
    assert {c: (m["class"], m["patient"], m["scanner"]) for c, m in cases.items()} == {
        "PACE_00002_001_BUSBRA": ("benign", "00002", "BUSBRA"),
        "PACE_00007_100_SIMA": ("benign", "00007", "SIMA"),
        "PACE_00007_101_SIMB": ("malignant", "00007", "SIMB"),
        "PACE_01876_000_BUSI": ("normal", "01876", "BUSI"),
        "PACE_00010_002_BUSBRA": ("malignant", "00010", "BUSBRA"),
    }
    assert cases["PACE_00002_001_BUSBRA"]["source_files"] == [
        "images/Train/benign/PACE_00002_001_BUSBRA.png", "images/Train/benign/PACE_00002_001_BUSBRA_mask.png"]
    assert dj["numTraining"] == 5 and dj["file_ending"] == ".png" and dj["labels"] == {"background": 0, "lesion": 1}
    assert dj["channel_names"] == {"0": "zscore"}
    for cid, mask in [("PACE_00002_001_BUSBRA", lesion(5, 5)), ("PACE_00007_100_SIMA", lesion(10, 10)),
                      ("PACE_00007_101_SIMB", lesion(2, 20)), ("PACE_01876_000_BUSI", lesion(0, 0, 0))]:
        got = load_png(out / "labelsTr" / f"{cid}.png")
        assert set(np.unique(got)) <= {0, 1} and (got == mask).all(), cid
    assert (load_png(out / "imagesTr" / "PACE_01876_000_BUSI_0000.png") == texture(4)).all()
    assert sorted(p.name for p in (out / "imagesTr").iterdir()) == sorted(f"{c}_0000.png" for c in cases)
    sk = skipped(report)
    # truncated and non-binary: checked by message, the decoder's wording of the error may vary
    assert sk.pop("images/Train/benign/PACE_00017_001_BUSBRA.png").startswith("unreadable or truncated image")
    assert sk.pop("images/Train/benign/PACE_00018_001_BUSBRA_mask.png").startswith("mask is not binary: non-black values 100, 200")
    assert sk == EXPECTED_SKIPPED
    assert report["classes"] == {"normal": 1, "benign": 2, "malignant": 2}
    assert report["scanners"] == {"BUSBRA": 2, "BUSI": 1, "SIMA": 1, "SIMB": 1}
    assert report["images_per_patient"] == {"00002": 1, "00007": 2, "00010": 1, "01876": 1}
    assert report["ignored"] == [{"file": "README.txt", "reason": "not an image file"},
                                 {"file": "preview.png", "reason": "outside the class folders (benign/, malignant/, normal/)"}]
    assert report["duplicates"]["num_groups"] == 0
    assert tree_digest(src) == before and no_leftovers(nnunet_env["nnUNet_raw"])


def test_precise_strict_stops_at_first_problem_and_writes_nothing(tmp_path, nnunet_env):
    src = make_precise(tmp_path / "src")
    with pytest.raises(ConversionError, match=r"PACE_\d+.*strict mode"):
        convert_precise(src, 12, strict=True, quiet=True)
    assert list(nnunet_env["nnUNet_raw"].iterdir()) == []


def test_precise_empty_source_and_missing_source(tmp_path, nnunet_env):
    (tmp_path / "empty" / "benign").mkdir(parents=True)
    with pytest.raises(ConversionError, match="no cases found in .*empty"):
        convert_precise(tmp_path / "empty", 13, quiet=True)
    with pytest.raises(ConversionError, match="does not exist"):
        convert_precise(tmp_path / "nope", 13, quiet=True)
    assert list(nnunet_env["nnUNet_raw"].iterdir()) == []


def test_existing_dataset_untouched_unless_overwrite_and_ids_not_shared(tmp_path, nnunet_env):
    src = make_precise(tmp_path / "src")
    out = convert_precise(src, 14, quiet=True)
    marker = out / "imagesTr" / "PACE_00002_001_BUSBRA_0000.png"
    stamp = marker.read_bytes()
    with pytest.raises(ConversionError, match="already exists; pass --overwrite"):
        convert_precise(src, 14, quiet=True)
    with pytest.raises(ConversionError, match="dataset id 14 is already used by .*Dataset014_PRECISE"):
        convert_precise(src, 14, name="Other", overwrite=True, quiet=True)
    (nnunet_env["nnUNet_preprocessed"] / "Dataset015_Else").mkdir()
    with pytest.raises(ConversionError, match="dataset id 15 is already used by .*Dataset015_Else"):
        convert_precise(src, 15, quiet=True)
    assert marker.read_bytes() == stamp
    (out / "stale.txt").write_text("old")
    again = convert_precise(src, 14, overwrite=True, quiet=True)
    assert again == out and not (out / "stale.txt").exists() and no_leftovers(nnunet_env["nnUNet_raw"])


def test_cli_convert_precise_with_name(tmp_path, nnunet_env, capsys):
    from nnunet_phyjoint.cli import main

    src = make_precise(tmp_path / "src")
    assert main(["convert", "precise", str(src), "-d", "16", "--name", "Sim"]) == 0
    text = capsys.readouterr().out
    assert "Dataset016_Sim: 5 cases converted" in text and "skipped: 11" in text and "PACE_01882_000_BUSI_mask.png" in text
    assert main(["convert", "precise", str(src), "-d", "17", "--strict"]) == 1
    assert "strict mode" in capsys.readouterr().err


def test_replica_accepted_by_nnunet_checks_in_process(tmp_path, nnunet_env):
    """nnU-Net's own per-case checks (the ones --verify_dataset_integrity runs in a process pool)."""
    from nnunetv2.experiment_planning.verify_dataset_integrity import check_cases, verify_labels
    from nnunetv2.imageio.reader_writer_registry import determine_reader_writer_from_dataset_json
    from nnunetv2.utilities.utils import get_filenames_of_train_images_and_targets

    out = convert_precise(make_precise(tmp_path / "src"), 21, quiet=True)
    dj = json.loads((out / "dataset.json").read_text())
    dataset = get_filenames_of_train_images_and_targets(str(out), dj)
    assert len(dataset) == dj["numTraining"] == 5
    rw = determine_reader_writer_from_dataset_json(dj, dataset["PACE_00002_001_BUSBRA"]["images"][0])
    assert rw.__name__ == "NaturalImage2DIO"
    for case in dataset.values():
        assert verify_labels(case["label"], rw, [0, 1])
        assert check_cases(case["images"], case["label"], len(dj["channel_names"]), rw)
        img, _ = rw().read_images(case["images"])
        assert img.shape[0] == 1  # one channel, as channel_names says


@pytest.mark.slow
def test_replica_passes_nnunet_integrity_check(tmp_path, nnunet_env):
    src = make_precise(tmp_path / "src")
    convert_precise(src, 18, quiet=True)
    env = {**os.environ, "nnUNet_raw": str(nnunet_env["nnUNet_raw"]),
           "nnUNet_preprocessed": str(nnunet_env["nnUNet_preprocessed"]),
           "nnUNet_results": str(nnunet_env["nnUNet_results"])}
    bindir = os.path.dirname(sys.executable)
    r = subprocess.run([os.path.join(bindir, "nnUNetv2_extract_fingerprint"), "-d", "18", "-np", "1",
                        "--verify_dataset_integrity"], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    fp = json.loads((nnunet_env["nnUNet_preprocessed"] / "Dataset018_PRECISE" / "dataset_fingerprint.json").read_text())
    assert len(fp["shapes_after_crop"]) == 5


def test_real_precise_sample(shared_data, nnunet_env):
    out = convert_precise(shared_data / "precise_sample", 19, quiet=True)
    dj, report = read_dataset(out)
    # The sample holds 64 images, each with its mask, plus one mask whose image is missing.
    assert dj["numTraining"] == report["num_cases"] == 64
    assert report["classes"] == {"normal": 4, "benign": 18, "malignant": 42}
    assert report["scanners"] == {"BUSBRA": 60, "BUSI": 4}
    assert skipped(report) == {"normal/PACE_01882_000_BUSI_mask.png": "mask without an image (PACE_01882_000_BUSI.png is missing)"}
    # the same lesion twice with calipers moved: one duplicate group across two subject numbers
    assert report["duplicates"]["groups"]["dup0001"]["cases"] == ["PACE_01280_002_BUSBRA", "PACE_01281_002_BUSBRA"]
    assert sum(1 for m in dj["phyjoint"]["cases"].values() if m["duplicate_group"]) == 2


@pytest.mark.slow
def test_real_sample_passes_plan_and_preprocess(shared_data, nnunet_env):
    convert_precise(shared_data / "precise_sample", 20, quiet=True)
    bindir = os.path.dirname(sys.executable)
    r = subprocess.run([os.path.join(bindir, "nnUNetv2_plan_and_preprocess"), "-d", "20", "-c", "2d", "-np", "1",
                        "-npfp", "1", "--verify_dataset_integrity"],
                       # conftest's nnUNet_n_proc_DA=0 makes the 2.8.1 planner call torch.set_num_threads(0)
                       env={**os.environ, "nnUNet_n_proc_DA": "1"}, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    plans = json.loads((nnunet_env["nnUNet_preprocessed"] / "Dataset020_PRECISE" / "nnUNetPlans.json").read_text())
    assert plans["configurations"]["2d"]["normalization_schemes"] == ["ZScoreNormalization"]
