"""Shared pieces of the converters (image reading, ids, duplicates, target folder, tables) and `convert images`.

The helpers at the top build tiny images; the other test_convert_* files import them.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dataset_conversion.duplicates import duplicate_groups, perceptual_hash
from dataset_conversion.imaging import read_binary_mask, read_grey_image
from dataset_conversion.naming import CaseIdAllocator, dataset_folder_name
from dataset_conversion.problems import CaseProblem, ConversionError
from dataset_conversion.tables import read_table
from dataset_conversion.unlabeled import convert_images

H, W = 40, 48


# ---------------------------------------------------------------- helpers used by every converter test
def texture(seed: int, h: int = H, w: int = W) -> np.ndarray:
    """A distinct grey image per seed (blocky noise: perceptual hashes of different seeds differ a lot)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(h // 4 + 1, w // 4 + 1), dtype=np.uint8)
    return np.kron(small, np.ones((4, 4), dtype=np.uint8))[:h, :w]


def lesion(top: int, left: int, size: int = 10, h: int = H, w: int = W) -> np.ndarray:
    m = np.zeros((h, w), dtype=bool)
    m[top:top + size, left:left + size] = True
    return m


def save(arr: np.ndarray, path: Path, mode: str | None = None) -> Path:
    """Write ``arr`` as PNG (``mode`` '1', 'L', 'RGB', 'RGBA'...); creates folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if arr.dtype == bool and mode != "1":
        arr = arr.astype(np.uint8) * 255
    im = Image.fromarray(arr)
    if mode and im.mode != mode:
        im = im.convert(mode)
    im.save(path)
    return path


def rgb(grey: np.ndarray) -> np.ndarray:
    return np.stack([grey] * 3, axis=-1)


def truncated(path: Path, seed: int = 0) -> Path:
    save(texture(seed), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def tree_digest(root: Path) -> str:
    """Names and contents of every file below ``root``: proves a source was not modified."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(str(p.relative_to(root)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def load_png(path: Path) -> np.ndarray:
    im = Image.open(path)
    assert im.mode == "L", f"{path} is {im.mode}, expected single-channel L"
    return np.asarray(im)


def skipped(report: dict) -> dict[str, str]:
    return {p["file"]: p["reason"] for p in report["skipped"]}


def read_dataset(folder: Path) -> tuple[dict, dict]:
    """(dataset.json, conversion_report.json) of a converted dataset."""
    return (json.loads((folder / "dataset.json").read_text()),
            json.loads((folder / "conversion_report.json").read_text()))


def no_leftovers(raw: Path) -> bool:
    """No temporary folder of an interrupted conversion left in nnUNet_raw."""
    return not [p for p in raw.iterdir() if p.name.startswith(".")]


# ---------------------------------------------------------------- image reading
def test_rgb_with_equal_channels_becomes_the_same_grey(tmp_path):
    g = texture(1)
    grey, doppler = read_grey_image(save(rgb(g), tmp_path / "a.png"))
    assert grey.dtype == np.uint8 and grey.shape == g.shape and (grey == g).all() and not doppler


def test_colour_doppler_image_is_flagged_and_converted_to_grey(tmp_path):
    img = rgb(texture(2))
    img[5:25, 5:25] = (200, 30, 40)  # a colour-flow box
    grey, doppler = read_grey_image(save(img, tmp_path / "d.png"))
    assert doppler and grey.ndim == 2
    caliper = rgb(texture(3))
    caliper[10, 10] = (255, 255, 0)  # one coloured caliper pixel is not Doppler
    assert not read_grey_image(save(caliper, tmp_path / "c.png"))[1]


def test_rgba_and_16bit_images(tmp_path):
    g = texture(4)
    rgba = np.dstack([rgb(g), np.full(g.shape, 255, np.uint8)])
    assert (read_grey_image(save(rgba, tmp_path / "a.png"))[0] == g).all()
    Image.fromarray(g.astype(np.uint16) * 256).save(tmp_path / "b.png")
    assert (read_grey_image(tmp_path / "b.png")[0] == g).all()


@pytest.mark.parametrize("values,mode", [((0, 255), "L"), ((0, 1), "L"), ((0, 255), "1"), ((0, 255), "RGB")])
def test_binary_masks_in_every_encoding(tmp_path, values, mode):
    m = lesion(5, 6)
    arr = np.where(m, values[1], values[0]).astype(np.uint8)
    if mode == "1":
        arr = m
    elif mode == "RGB":
        arr = rgb(arr)
    got = read_binary_mask(save(arr, tmp_path / "m.png", mode))
    assert got.dtype == bool and (got == m).all()


def test_mask_held_in_alpha_channel(tmp_path):
    m = lesion(3, 3)
    rgba = np.zeros((H, W, 4), np.uint8)
    rgba[..., 3] = m * 255
    assert (read_binary_mask(save(rgba, tmp_path / "m.png")) == m).all()


def test_non_binary_mask_is_refused_naming_the_file(tmp_path):
    arr = np.zeros((H, W), np.uint8)
    arr[:5], arr[5:10] = 128, 255
    path = save(arr, tmp_path / "odd_mask.png")
    with pytest.raises(CaseProblem, match="not binary: non-black values 128, 255") as e:
        read_binary_mask(path)
    assert "odd_mask.png" in str(e.value)


def test_truncated_file_is_refused_naming_the_file(tmp_path):
    path = truncated(tmp_path / "cut.png")
    with pytest.raises(CaseProblem, match="unreadable or truncated") as e:
        read_grey_image(path)
    assert "cut.png" in str(e.value)


# ---------------------------------------------------------------- names
def test_case_ids_are_sanitized_prefixed_unique_and_deterministic():
    for _ in range(2):
        new = CaseIdAllocator("BUSI")
        assert [new("benign (3)"), new("benign_3"), new("Benign 3"), new("###")] == \
            ["BUSI_benign_3", "BUSI_benign_3_2", "BUSI_Benign_3_3", "BUSI"]
    assert CaseIdAllocator()("") == "case"


def test_dataset_folder_name_checks():
    assert dataset_folder_name(7, "BUSI") == "Dataset007_BUSI"
    with pytest.raises(ValueError, match="between 1 and 999"):
        dataset_folder_name(1000, "X")
    with pytest.raises(ValueError, match="letters, digits"):
        dataset_folder_name(5, "a/b")


# ---------------------------------------------------------------- duplicates
def test_near_duplicates_grouped_distinct_images_not():
    base = texture(10, 120, 160)
    marked = base.copy()
    marked[50:53, 60:75] = 255  # burnt-in caliper
    hashes = {"c": perceptual_hash(marked), "a": perceptual_hash(base)}
    hashes.update({f"x{i}": perceptual_hash(texture(100 + i, 120, 160)) for i in range(20)})
    assert duplicate_groups(hashes) == {"dup0001": ["a", "c"]}
    assert duplicate_groups(hashes, threshold=-1) == {}


# ---------------------------------------------------------------- tables
def test_tables_bom_csv_semicolon_and_xlsx(tmp_path):
    import openpyxl

    (tmp_path / "a.csv").write_bytes("\ufeffID, Case, Pathology\nbus_1, 3, benign\n".encode("utf-8"))
    t = read_table(tmp_path / "a.csv", ["id", "case", "pathology"])
    assert t.rows == [(2, {"id": "bus_1", "case": "3", "pathology": "benign"})]
    (tmp_path / "b.csv").write_text("Image;Label\nA_000.png;Normal\n\n")
    assert read_table(tmp_path / "b.csv", ["image"]).rows == [(2, {"image": "A_000.png", "label": "Normal"})]
    wb = openpyxl.Workbook()
    wb.active.append(["title row"])
    wb.active.append(["CaseID", "Image_filename"])
    wb.active.append([12.0, "case012.png"])
    wb.save(tmp_path / "c.xlsx")
    assert read_table(tmp_path / "c.xlsx", ["image_filename"]).rows == [(3, {"caseid": "12", "image_filename": "case012.png"})]
    with pytest.raises(ConversionError, match="missing: label"):
        read_table(tmp_path / "a.csv", ["id", "label"])


# ---------------------------------------------------------------- unlabeled images (`convert images`)
def _unlabeled(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    save(rgb(texture(1)), src / "benign (3).png")
    save(texture(2), src / "benign_3.png")
    save(texture(3), src / "sub" / "scan 1.png")
    save(lesion(1, 1), src / "benign (3)_mask.png")
    (src / "notes.txt").write_text("x")
    return src


def test_convert_images_writes_grey_cases_and_mapping(tmp_path):
    src = _unlabeled(tmp_path)
    before = tree_digest(src)
    out = convert_images(src, tmp_path / "out", quiet=True)
    mapping = json.loads((out / "cases.json").read_text())
    assert mapping == {"benign_3": "benign (3).png", "benign_3_2": "benign_3.png", "scan_1": "sub/scan 1.png"}
    assert sorted(p.name for p in out.glob("*.png")) == ["benign_3_0000.png", "benign_3_2_0000.png", "scan_1_0000.png"]
    assert (load_png(out / "benign_3_0000.png") == texture(1)).all()
    report = json.loads((out / "conversion_report.json").read_text())
    assert {p["file"] for p in report["ignored"]} == {"benign (3)_mask.png", "notes.txt"}
    assert tree_digest(src) == before


def test_convert_images_refuses_existing_or_nested_output_and_bad_files(tmp_path):
    src = _unlabeled(tmp_path)
    (tmp_path / "out").mkdir()
    with pytest.raises(ConversionError, match="already exists"):
        convert_images(src, tmp_path / "out", quiet=True)
    with pytest.raises(ConversionError, match="inside the source"):
        convert_images(src, src / "out", quiet=True)
    truncated(src / "zz.png")
    out = convert_images(src, tmp_path / "out", overwrite=True, quiet=True)
    report = json.loads((out / "conversion_report.json").read_text())
    assert [p["file"] for p in report["skipped"]] == ["zz.png"] and "zz" not in json.loads((out / "cases.json").read_text())
    with pytest.raises(ConversionError, match=r"zz.png: unreadable or truncated .*strict"):
        convert_images(src, tmp_path / "out2", strict=True, quiet=True)
    assert not (tmp_path / "out2").exists() and not list(tmp_path.glob(".out2*"))


def test_cli_convert_images(tmp_path, capsys):
    from nnunet_phyjoint.cli import main

    src = _unlabeled(tmp_path)
    assert main(["convert", "images", str(src), "-o", str(tmp_path / "o")]) == 0
    assert "3 images written" in capsys.readouterr().out
    assert main(["convert", "images", str(src), "-o", str(tmp_path / "o")]) == 1
    assert "already exists" in capsys.readouterr().err
