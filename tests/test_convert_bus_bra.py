"""BUS-BRA converter on replicas: BOM CSV with ', ' separators, 0/1 and 0/255 masks, patients and devices."""
from __future__ import annotations

import numpy as np
import pytest

from dataset_conversion import ConversionError, convert_bus_bra
from test_convert_common import lesion, load_png, read_dataset, save, texture, tree_digest

HEADER = "ID, Case, Histology, Pathology, BIRADS, Device, Width, Height, Side, HOB, K5B, K10B, HOP, K5P, K10P, BBOX"


def row(bid, case, pathology, device):
    return f"{bid}, {case}, Fibroadenoma, {pathology}, 3, {device}, 48, 40, left, 1, 1, 1, 1, 1, 1, [1 2 3 4]"


def make_bus_bra(root):
    d = root / "BUSBRA"
    save(texture(1), d / "Images" / "bus_0001-l.png")
    save(lesion(2, 2).astype(np.uint8), d / "Masks" / "mask_0001-l.png")  # 0/1 mask
    save(texture(2), d / "Images" / "bus_0001-r.png")  # same patient, other side
    save(lesion(8, 8), d / "Masks" / "mask_0001-r.png")  # 0/255 mask
    save(texture(3), d / "Images" / "bus_0002-l.png")
    save(lesion(20, 30), d / "Masks" / "mask_0002-l.png")
    # traps
    save(texture(4), d / "Images" / "bus_0003-l.png")  # no row
    save(lesion(0, 0), d / "Masks" / "mask_0003-l.png")
    save(texture(5), d / "Images" / "bus_0004-l.png")  # no mask
    save(texture(6), d / "Images" / "bus_0005-l.png")  # unknown pathology
    save(lesion(0, 0), d / "Masks" / "mask_0005-l.png")
    save(lesion(0, 0), d / "Masks" / "mask_0009-l.png")  # mask without image or row
    rows = [row("bus_0001-l", 1, "benign", "GE Logiq 5"), row("bus_0001-r", 1, "malignant", "Toshiba Aplio 300"),
            row("0002-l", 2, "Benign", "U-Systems"),  # id without the bus_ prefix, capitalised pathology
            row("bus_0004-l", 4, "benign", "GE Logiq 7"), row("bus_0005-l", 5, "normal", "GE Logiq 7"),
            row("bus_0006-l", 6, "benign", "GE Logiq 7")]  # row without image
    (d / "bus_data.csv").write_bytes(("\ufeff" + "\n".join([HEADER, *rows]) + "\n").encode("utf-8"))
    (d / "5-fold-cv.csv").write_text("ID,kFold\nbus_0001-l,1\n")
    return root


def test_bus_bra_patients_devices_masks_and_report(tmp_path, nnunet_env):
    src = make_bus_bra(tmp_path / "b")
    before = tree_digest(src)
    out = convert_bus_bra(src, 701, quiet=True)
    assert out.name == "Dataset701_BUSBRA"
    dj, report = read_dataset(out)
    assert {c: (m["class"], m["patient"], m["scanner"]) for c, m in dj["phyjoint"]["cases"].items()} == {
        "BUSBRA_0001_l": ("benign", "1", "GE Logiq 5"),
        "BUSBRA_0001_r": ("malignant", "1", "Toshiba Aplio 300"),
        "BUSBRA_0002_l": ("benign", "2", "U-Systems"),
    }
    assert (load_png(out / "labelsTr" / "BUSBRA_0001_l.png") == lesion(2, 2)).all()  # 0/1 source
    assert (load_png(out / "labelsTr" / "BUSBRA_0001_r.png") == lesion(8, 8)).all()  # 0/255 source
    assert dj["phyjoint"]["cases"]["BUSBRA_0001_l"]["source_files"] == ["Images/bus_0001-l.png", "Masks/mask_0001-l.png"]
    assert sorted((p["file"], p["reason"]) for p in report["skipped"]) == sorted([
        ("bus_data.csv", "row 7: no image Images/bus_0006-l.png"),
        ("Images/bus_0004-l.png", "no mask Masks/mask_0004-l.png"),
        ("Images/bus_0005-l.png", "row 6 of bus_data.csv: unknown pathology 'normal' (benign or malignant)"),
        ("Images/bus_0003-l.png", "no row in bus_data.csv"),
        ("Masks/mask_0009-l.png", "mask without an image (expected Images/bus_0009-l.png and a row in bus_data.csv)"),
    ])
    assert report["images_per_patient"] == {"1": 2, "2": 1}
    assert report["scanners"] == {"GE Logiq 5": 1, "Toshiba Aplio 300": 1, "U-Systems": 1}
    assert tree_digest(src) == before


def test_bus_bra_needs_its_csv_and_strict_stops(tmp_path, nnunet_env):
    src = make_bus_bra(tmp_path / "b")
    with pytest.raises(ConversionError, match="bus_0004-l.png: no mask.*strict|bus_data.csv: row 7.*strict"):
        convert_bus_bra(src, 702, strict=True, quiet=True)
    (src / "BUSBRA" / "bus_data.csv").unlink()
    with pytest.raises(ConversionError, match="bus_data.csv not found"):
        convert_bus_bra(src, 702, quiet=True)
    (src / "BUSBRA" / "bus_data.csv").write_text("ID,Case\nbus_0001-l,1\n")
    with pytest.raises(ConversionError, match=r"bus_data.csv: no header row .*missing: pathology"):
        convert_bus_bra(src, 702, quiet=True)
    assert list(nnunet_env["nnUNet_raw"].iterdir()) == []
