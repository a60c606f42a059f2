"""BUS-UCLM converter on replicas: red/green masks (red must survive), RGB images, INFO.csv, patients."""
from __future__ import annotations

import numpy as np
import pytest

from dataset_conversion import ConversionError, convert_bus_uclm
from test_convert_common import H, W, lesion, load_png, read_dataset, rgb, save, texture, tree_digest

GREEN, RED = (0, 255, 0), (255, 0, 0)


def colour_mask(*parts):
    """RGB mask: each part is (boolean lesion, colour)."""
    m = np.zeros((H, W, 3), np.uint8)
    for where, colour in parts:
        m[where] = colour
    return m


def make_uclm(root, info=True):
    d = root / "BUS-UCLM"
    save(texture(1), d / "images" / "ALWI_000.png")
    save(colour_mask((lesion(3, 3), GREEN)), d / "masks" / "ALWI_000.png")
    save(rgb(texture(2)), d / "images" / "ALWI_001.png")  # RGB image, red = malignant
    save(colour_mask((lesion(12, 20), RED)), d / "masks" / "ALWI_001.png")
    doppler = rgb(texture(3))
    doppler[5:30, 5:30] = (30, 60, 220)
    save(doppler, d / "images" / "BOSA_000.png")
    save(colour_mask(), d / "masks" / "BOSA_000.png")  # normal: all black
    lines = ["Image;Resolution;Label;Doppler;Marks;Combined",
             "ALWI_000.png;48x40;Benign;No;No;No",
             "ALWI_001.png;48x40;Malignant;No;Yes;No",
             "BOSA_000.png;48x40;Normal;Yes;No;No"]
    if info:
        # traps that need INFO.csv
        save(texture(4), d / "images" / "CADI_000.png")  # INFO says Benign, mask is red
        save(colour_mask((lesion(0, 0), RED)), d / "masks" / "CADI_000.png")
        lines.append("CADI_000.png;48x40;Benign;No;No;No")
        save(texture(5), d / "images" / "CADI_001.png")  # no row
        save(colour_mask(), d / "masks" / "CADI_001.png")
        lines.append("GONE_000.png;48x40;Normal;No;No;No")  # row without file
        lines.append("CADI_002.png;48x40;Cyst;No;No;No")  # unknown label (reported once, for its row)
        save(texture(9), d / "images" / "CADI_002.png")
        save(colour_mask(), d / "masks" / "CADI_002.png")
        lines += ["DOMI_000.png;48x40;Benign;No;No;No", "FAVE_000.png;48x40;Benign;No;No;No"]
        (d / "INFO.csv").write_text("\n".join(lines) + "\n")
    save(texture(6), d / "images" / "DOMI_000.png")  # unexpected colour (blue)
    save(colour_mask((lesion(0, 0), (0, 0, 255))), d / "masks" / "DOMI_000.png")
    save(colour_mask((lesion(0, 0), GREEN)), d / "masks" / "EMPT_000.png")  # mask without image
    save(texture(7), d / "images" / "FAVE_000.png")  # image without mask
    save(texture(8), d / "images" / "scan.png")  # name gives no patient
    save(colour_mask(), d / "masks" / "scan.png")
    return root


def test_bus_uclm_red_and_green_lesions_info_and_report(tmp_path, nnunet_env):
    src = make_uclm(tmp_path / "u")
    before = tree_digest(src)
    out = convert_bus_uclm(src, 601, quiet=True)  # the folder above BUS-UCLM/ is fine too
    assert out.name == "Dataset601_BUSUCLM"
    dj, report = read_dataset(out)
    cases = dj["phyjoint"]["cases"]
    assert {c: (m["class"], m["patient"], m["scanner"], m["doppler"]) for c, m in cases.items()} == {
        "BUSUCLM_ALWI_000": ("benign", "ALWI", "BUSUCLM", False),
        "BUSUCLM_ALWI_001": ("malignant", "ALWI", "BUSUCLM", False),
        "BUSUCLM_BOSA_000": ("normal", "BOSA", "BUSUCLM", True),
    }
    assert (load_png(out / "labelsTr" / "BUSUCLM_ALWI_000.png") == lesion(3, 3)).all()
    red = load_png(out / "labelsTr" / "BUSUCLM_ALWI_001.png")
    assert red.sum() == 100 and (red == lesion(12, 20)).all()  # a grey threshold at 127 would give an empty mask
    assert load_png(out / "labelsTr" / "BUSUCLM_BOSA_000.png").max() == 0
    assert (load_png(out / "imagesTr" / "BUSUCLM_ALWI_001_0000.png") == texture(2)).all()
    assert sorted((p["file"], p["reason"]) for p in report["skipped"]) == sorted([
        ("INFO.csv", "row 7 (CADI_002.png): unknown label 'Cyst'"),
        ("INFO.csv", "row 6: no image images/GONE_000.png"),
        ("masks/CADI_000.png", "metadata says benign but the mask colours say malignant"),
        ("images/CADI_001.png", "no row in INFO.csv"),
        ("masks/DOMI_000.png", "unexpected mask colour(s) RGB(0, 0, 255): expected black, green (benign) or red (malignant)"),
        ("masks/EMPT_000.png", "mask without an image (images/EMPT_000.png is missing)"),
        ("images/FAVE_000.png", "no mask masks/FAVE_000.png"),
        ("images/scan.png", "name is not <4-letter patient code>_<index>.png, so the patient is unknown"),
    ])
    assert report["images_per_patient"] == {"ALWI": 2, "BOSA": 1}
    assert report["doppler"] == ["BUSUCLM_BOSA_000"]
    assert tree_digest(src) == before


def test_bus_uclm_without_info_takes_class_from_colour(tmp_path, nnunet_env):
    src = make_uclm(tmp_path / "u", info=False)
    out = convert_bus_uclm(src / "BUS-UCLM", 602, quiet=True)
    dj, report = read_dataset(out)
    assert {c: m["class"] for c, m in dj["phyjoint"]["cases"].items()} == {
        "BUSUCLM_ALWI_000": "benign", "BUSUCLM_ALWI_001": "malignant", "BUSUCLM_BOSA_000": "normal"}
    # without INFO.csv the colour image is still detected as Doppler
    assert report["doppler"] == ["BUSUCLM_BOSA_000"]


def test_bus_uclm_strict_and_wrong_layout(tmp_path, nnunet_env):
    src = make_uclm(tmp_path / "u")
    with pytest.raises(ConversionError, match="strict"):
        convert_bus_uclm(src, 603, strict=True, quiet=True)
    with pytest.raises(ConversionError, match=r"does not look like BUS-UCLM: expected images/, masks/"):
        convert_bus_uclm(src / "BUS-UCLM" / "images", 603, quiet=True)
    assert list(nnunet_env["nnUNet_raw"].iterdir()) == []
