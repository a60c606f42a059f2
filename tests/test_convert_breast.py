"""BrEaST converter on replicas: xlsx and CSV metadata, '&'-joined tumor masks, 'other' masks are not lesions."""
from __future__ import annotations

import csv

import pytest

from dataset_conversion import ConversionError, convert_breast
from test_convert_common import lesion, load_png, read_dataset, save, texture, tree_digest

COLUMNS = ["CaseID", "Image_filename", "Mask_tumor_filename", "Mask_other_filename", "Pixel_size", "Classification"]
ROWS = [
    [1, "case001.png", "case001_tumor.png", "", 0.0075, "benign"],
    [2, "case002.png", "case002_tumor1.png&case002_tumor2.png", "case002_other1.png", 0.0075, "malignant"],
    [3, "case003.png", "", "", 0.0075, "normal"],
    [4, "case004.png", "case004_tumor.png", "", 0.0075, "Malignant"],
    # traps
    [5, "case005.png", "case005_tumor.png", "", 0.0075, "benign"],  # image file missing
    [6, "case006.png", "case006_tumor.png", "", 0.0075, "unsure"],  # unknown class
    [7, "case007.png", "case007_tumor.png", "", 0.0075, "benign"],  # tumor mask file missing
]


def make_breast(root, metadata="xlsx"):
    d = root / "BrEaST-Lesions_USG-images_and_masks"
    save(texture(1), d / "case001.png")
    save(lesion(2, 2), d / "case001_tumor.png")
    save(texture(2), d / "case002.png")
    save(lesion(0, 0), d / "case002_tumor1.png")
    save(lesion(25, 30), d / "case002_tumor2.png")
    save(lesion(10, 10, size=15), d / "case002_other1.png")  # another finding: not a lesion
    save(texture(3), d / "case003.png")
    save(texture(4), d / "case004.png")
    save(lesion(5, 30), d / "case004_tumor.png", "1")
    save(texture(6), d / "case006.png")
    save(lesion(0, 0), d / "case006_tumor.png")
    save(texture(7), d / "case007.png")
    save(texture(8), d / "case008.png")  # file without a row
    save(lesion(0, 0), d / "case008_tumor.png")
    save(lesion(0, 0), d / "case009_other1.png")  # 'other' mask without a row: ignored, not a problem
    if metadata == "xlsx":
        import openpyxl

        wb = openpyxl.Workbook()
        wb.active.append(COLUMNS)
        for r in ROWS:
            wb.active.append(r)
        wb.save(root / "BrEaST-Lesions-USG-clinical-data.xlsx")
    else:
        with open(root / "export.csv", "w", newline="", encoding="utf-8-sig") as f:
            w = csv.writer(f, delimiter=";")
            w.writerow(COLUMNS)
            w.writerows(ROWS)
    return d


EXPECTED_CASES = {
    "BrEaST_case001": ("benign", "1", "BrEaST"),
    "BrEaST_case002": ("malignant", "2", "BrEaST"),
    "BrEaST_case003": ("normal", "3", "BrEaST"),
    "BrEaST_case004": ("malignant", "4", "BrEaST"),
}


def expected_skipped(meta):
    return sorted([
        (meta, f"row 6 of {meta}: image case005.png not found in {{src}}"),
        ("case006.png", f"row 7 of {meta}: unknown classification 'unsure'"),
        ("case007.png", f"row 8 of {meta}: tumor mask case007_tumor.png not found"),
        ("case008.png", f"file without a row in {meta}"),
        ("case008_tumor.png", f"file without a row in {meta}"),
    ])


def check(out, src, meta_name, meta_rel, prefix=""):
    """``src``: the image folder; ``prefix``: the image folder relative to the converted source (download layout)."""
    dj, report = read_dataset(out)
    cases = dj["phyjoint"]["cases"]
    assert {c: (m["class"], m["patient"], m["scanner"]) for c, m in cases.items()} == EXPECTED_CASES
    merged = load_png(out / "labelsTr" / "BrEaST_case002.png")
    assert (merged == (lesion(0, 0) | lesion(25, 30))).all()  # both tumors, and not the 'other' finding
    assert cases["BrEaST_case002"]["source_files"] == \
        [prefix + n for n in ("case002.png", "case002_tumor1.png", "case002_tumor2.png")]
    assert load_png(out / "labelsTr" / "BrEaST_case003.png").max() == 0
    assert (load_png(out / "labelsTr" / "BrEaST_case004.png") == lesion(5, 30)).all()
    got = sorted((p["file"], p["reason"]) for p in report["skipped"])
    want = sorted((meta_rel if f == meta_name else prefix + f, r.replace("{src}", str(src)))
                  for f, r in expected_skipped(meta_name))
    assert got == want
    ignored = {p["file"]: p["reason"] for p in report["ignored"]}
    assert ignored[prefix + "case002_other1.png"] == "'other' finding of case002.png (not a lesion)"
    assert ignored[prefix + "case009_other1.png"].startswith("'other' finding mask without a row")


def test_breast_with_xlsx_found_beside_the_folder(tmp_path, nnunet_env):
    src = make_breast(tmp_path / "s")
    before = tree_digest(tmp_path / "s")
    out = convert_breast(src, 801, quiet=True)
    assert out.name == "Dataset801_BrEaST"
    meta = tmp_path / "s" / "BrEaST-Lesions-USG-clinical-data.xlsx"
    check(out, src, meta.name, str(meta))
    assert tree_digest(tmp_path / "s") == before


def test_breast_with_csv_export_given_explicitly(tmp_path, nnunet_env, capsys):
    from nnunet_phyjoint.cli import main

    src = make_breast(tmp_path, metadata="csv")
    assert main(["convert", "breast", str(src), "-d", "802", "--name", "BrEaSTcsv",
                 "--metadata", str(tmp_path / "export.csv")]) == 0
    assert "Dataset802_BrEaSTcsv: 4 cases" in capsys.readouterr().out
    check(nnunet_env["nnUNet_raw"] / "Dataset802_BrEaSTcsv", src, "export.csv", str(tmp_path / "export.csv"))


def test_breast_metadata_problems(tmp_path, nnunet_env):
    src = make_breast(tmp_path)
    with pytest.raises(ConversionError, match="strict"):
        convert_breast(src, 803, strict=True, quiet=True)
    (tmp_path / "BrEaST-Lesions-USG-clinical-data.xlsx").unlink()
    with pytest.raises(ConversionError, match="cannot choose BrEaST's metadata .*--metadata"):
        convert_breast(src, 803, quiet=True)
    (tmp_path / "m.csv").write_text("Image_filename,Classification\ncase001.png,benign\n")
    with pytest.raises(ConversionError, match="m.csv: no header row .*missing: mask_tumor_filename"):
        convert_breast(src, 803, metadata=tmp_path / "m.csv", quiet=True)
    assert list(nnunet_env["nnUNet_raw"].iterdir()) == []


def test_breast_as_downloaded_folder_beside_the_xlsx(tmp_path, nnunet_env, capsys):
    """The public download: SOURCE holds the clinical-data xlsx and BrEaST-Lesions_USG-images_and_masks/."""
    from nnunet_phyjoint.cli import main

    src = make_breast(tmp_path / "download")
    before = tree_digest(tmp_path / "download")
    assert main(["convert", "breast", str(tmp_path / "download"), "-d", "804"]) == 0
    assert "Dataset804_BrEaST: 4 cases" in capsys.readouterr().out
    meta = "BrEaST-Lesions-USG-clinical-data.xlsx"  # inside the converted source: named relative to it
    check(nnunet_env["nnUNet_raw"] / "Dataset804_BrEaST", src, meta, meta, prefix=f"{src.name}/")
    assert tree_digest(tmp_path / "download") == before


def test_breast_image_folder_under_another_name(tmp_path, nnunet_env):
    src = make_breast(tmp_path / "s")
    renamed = src.rename(src.parent / "images")  # unpacked under another name: still the one folder of caseNNN.png
    out = convert_breast(tmp_path / "s", 805, quiet=True)
    check(out, renamed, "BrEaST-Lesions-USG-clinical-data.xlsx", "BrEaST-Lesions-USG-clinical-data.xlsx",
          prefix="images/")


def test_breast_unknown_layout_lists_what_was_tried_and_found(tmp_path, nnunet_env):
    src = tmp_path / "wrong"
    save(texture(1), src / "scan_01.png")
    (src / "notes.txt").write_text("x")
    (src / "masks").mkdir()
    with pytest.raises(ConversionError) as e:
        convert_breast(src, 806, quiet=True)
    text = str(e.value)
    assert f"{src} does not look like BrEaST; layouts tried:" in text
    assert "caseNNN.png (+ _tumor/_other masks) directly in" in text
    assert "BrEaST-Lesions_USG-images_and_masks/caseNNN.png with the xlsx" in text
    assert "found instead: 1 folder (masks/), 2 files (notes.txt, scan_01.png)" in text
    for name in ("a", "b"):
        save(texture(2), src / name / "case001.png")
    with pytest.raises(ConversionError, match=r"exactly one other folder below .* \(found 2: a/, b/\)"):
        convert_breast(src, 806, quiet=True)
    with pytest.raises(ConversionError, match="does not exist"):
        convert_breast(tmp_path / "nope", 806, quiet=True)
    assert list(nnunet_env["nnUNet_raw"].iterdir()) == []
