"""BUSI and Curated BUSI converters on replicas: merged extra masks, RGB/alpha masks, duplicates, keep-list."""
from __future__ import annotations

import numpy as np
import pytest

from dataset_conversion import ConversionError, convert_busi, convert_curated_busi
from test_convert_common import (H, W, lesion, load_png, read_dataset, rgb, save, skipped, texture, tree_digest,
                                 truncated)


def make_busi(root):
    g = root / "Dataset_BUSI_with_GT"
    save(rgb(texture(1)), g / "benign" / "benign (1).png")  # RGB-looking grey
    save(lesion(2, 2), g / "benign" / "benign (1)_mask.png")
    save(rgb(texture(2)), g / "benign" / "benign (2).png")  # three masks, overlapping: OR, never a sum
    save(lesion(0, 0), g / "benign" / "benign (2)_mask.png")
    save(lesion(5, 5), g / "benign" / "benign (2)_mask_1.png")
    save(rgb(lesion(20, 30).astype(np.uint8) * 255), g / "benign" / "benign (2)_mask_2.png")  # 3-channel mask
    save(texture(3), g / "malignant" / "malignant (1).png")
    rgba = np.zeros((H, W, 4), np.uint8)
    rgba[..., :3] = lesion(10, 10)[..., None] * 255
    rgba[..., 3] = 255
    save(rgba, g / "malignant" / "malignant (1)_mask.png")  # mask with alpha
    dup = rgb(texture(1))
    dup[20, 5:15] = 255  # the same frame as benign (1), with a caliper line, filed under malignant
    save(dup, g / "malignant" / "malignant (2).png")
    save(lesion(2, 2), g / "malignant" / "malignant (2)_mask.png")
    save(texture(4), g / "normal" / "normal (1).png")
    save(np.zeros((H, W), np.uint8), g / "normal" / "normal (1)_mask.png")
    save(texture(5), g / "normal" / "normal (2).png")
    save(np.zeros((H, W), np.uint8), g / "normal" / "normal (2)_mask.png")
    # traps
    save(texture(6), g / "benign" / "benign (3).png")  # no mask
    truncated(g / "benign" / "benign (4).png", 7)
    save(lesion(0, 0), g / "benign" / "benign (4)_mask.png")
    save(texture(8), g / "benign" / "benign (5).png")
    save(lesion(0, 0, h=H - 4), g / "benign" / "benign (5)_mask.png")  # size mismatch
    return root


def test_busi_merges_masks_and_reports(tmp_path, nnunet_env):
    src = make_busi(tmp_path / "busi")
    before = tree_digest(src)
    out = convert_busi(src, 501, quiet=True)
    assert out.name == "Dataset501_BUSI"
    dj, report = read_dataset(out)
    cases = dj["phyjoint"]["cases"]
    assert {c: (m["class"], m["patient"], m["scanner"]) for c, m in cases.items()} == {
        "BUSI_benign_1": ("benign", "BUSI_benign_1", "BUSI"),
        "BUSI_benign_2": ("benign", "BUSI_benign_2", "BUSI"),
        "BUSI_malignant_1": ("malignant", "BUSI_malignant_1", "BUSI"),
        "BUSI_malignant_2": ("malignant", "BUSI_malignant_2", "BUSI"),
        "BUSI_normal_1": ("normal", "BUSI_normal_1", "BUSI"),
        "BUSI_normal_2": ("normal", "BUSI_normal_2", "BUSI"),
    }
    merged = load_png(out / "labelsTr" / "BUSI_benign_2.png")
    assert (merged == (lesion(0, 0) | lesion(5, 5) | lesion(20, 30))).all() and merged.max() == 1
    assert (load_png(out / "labelsTr" / "BUSI_malignant_1.png") == lesion(10, 10)).all()
    assert (load_png(out / "imagesTr" / "BUSI_benign_1_0000.png") == texture(1)).all()
    assert cases["BUSI_benign_2"]["source_files"] == [
        f"Dataset_BUSI_with_GT/benign/benign (2){s}.png" for s in ("", "_mask", "_mask_1", "_mask_2")]
    assert report["duplicates"]["groups"] == {"dup0001": {
        "cases": ["BUSI_benign_1", "BUSI_malignant_2"], "classes": ["benign", "malignant"],
        "patients": ["BUSI_benign_1", "BUSI_malignant_2"]}}
    assert cases["BUSI_benign_1"]["duplicate_group"] == cases["BUSI_malignant_2"]["duplicate_group"] == "dup0001"
    assert cases["BUSI_normal_1"]["duplicate_group"] is None
    sk = skipped(report)
    assert sk.pop("Dataset_BUSI_with_GT/benign/benign (4).png").startswith("unreadable or truncated image")
    assert sk == {
        "Dataset_BUSI_with_GT/benign/benign (3).png": "no mask beside the image (expected benign (3)_mask.png)",
        "Dataset_BUSI_with_GT/benign/benign (5)_mask.png":
            "mask size 48x36 differs from image size 48x40 (Dataset_BUSI_with_GT/benign/benign (5).png)",
    }
    assert report["classes"] == {"normal": 2, "benign": 2, "malignant": 2}
    assert tree_digest(src) == before


def write_keep_list(path, rows, header=True):
    path.write_text(("class;id\n" if header else "") + "".join(f"{c};{n}\n" for c, n in rows))
    return path


def test_curated_busi_keeps_only_listed_images_and_reports_missing_rows(tmp_path, nnunet_env):
    src = make_busi(tmp_path / "busi")
    keep = write_keep_list(tmp_path / "keep.csv", [("benign", 2), ("malignant", 1), ("normal", 1), ("normal", 9)])
    out = convert_curated_busi(src, 502, keep_list=keep, strict=False, quiet=True)
    assert out.name == "Dataset502_CuratedBUSI"
    dj, report = read_dataset(out)
    assert sorted(dj["phyjoint"]["cases"]) == ["CBUSI_benign_2", "CBUSI_malignant_1", "CBUSI_normal_1"]
    assert dj["phyjoint"]["source"] == "curated-busi"
    # unlike the curators' preprocessing, _mask_2 is kept and masks are OR-ed
    assert (load_png(out / "labelsTr" / "CBUSI_benign_2.png") == (lesion(0, 0) | lesion(5, 5) | lesion(20, 30))).all()
    assert skipped(report) == {str(keep): "row 5 (normal;9): no usable image normal/normal (9).png in the source"}
    ignored = {p["file"]: p["reason"] for p in report["ignored"]}
    assert ignored["Dataset_BUSI_with_GT/benign/benign (1).png"] == "not in the keep-list"
    assert ignored["Dataset_BUSI_with_GT/benign/benign (3).png"].startswith("not in the keep-list (no mask")


def test_curated_strict_ignores_broken_files_outside_the_list(tmp_path, nnunet_env):
    src = make_busi(tmp_path / "busi")
    keep = write_keep_list(tmp_path / "keep.csv", [("benign", 1), ("normal", 2)], header=False)
    out = convert_curated_busi(src, 503, keep_list=keep, strict=True, quiet=True)
    assert sorted(read_dataset(out)[0]["phyjoint"]["cases"]) == ["CBUSI_benign_1", "CBUSI_normal_2"]
    bad = write_keep_list(tmp_path / "bad.csv", [("benign", 1), ("benign", 3)])
    with pytest.raises(ConversionError, match=r"benign \(3\).png: no mask beside the image.*strict"):
        convert_curated_busi(src, 504, keep_list=bad, strict=True, quiet=True)


@pytest.mark.parametrize("text,message", [
    ("class;id\nbenign;x\n", "row 2 'benign;x' is not"),
    ("class;id\ncyst;3\n", "row 2 'cyst;3' is not"),
    ("class;id\nbenign;1\nbenign;1\n", "row 3 repeats benign;1"),
    ("class;id\n", "has no rows"),
])
def test_curated_bad_keep_list_is_fatal_and_named(tmp_path, nnunet_env, text, message):
    src = make_busi(tmp_path / "busi")
    (tmp_path / "k.csv").write_text(text)
    with pytest.raises(ConversionError, match=message) as e:
        convert_curated_busi(src, 505, keep_list=tmp_path / "k.csv", quiet=True)
    assert "k.csv" in str(e.value)


def test_cli_curated_busi(tmp_path, nnunet_env, capsys):
    from nnunet_phyjoint.cli import main

    src = make_busi(tmp_path / "busi")
    keep = write_keep_list(tmp_path / "keep.csv", [("benign", 1), ("malignant", 2)])
    assert main(["convert", "curated-busi", str(src), "-d", "506", "--keep-list", str(keep)]) == 0
    out = capsys.readouterr().out
    assert "Dataset506_CuratedBUSI: 2 cases" in out and "dup0001: CBUSI_benign_1, CBUSI_malignant_2  <- classes differ" in out
