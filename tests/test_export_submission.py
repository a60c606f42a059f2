"""`phyjoint export-submission`: PRECISE challenge layout, values, and refusals."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nnunet_phyjoint.cli import main
from nnunet_phyjoint.evaluation import export_submission, write_classification_csv
from nnunet_phyjoint.evaluation.submission import read_cases_json

# case id: (original file relative to the source folder, (H, W), class probabilities)
CASES = {
    "PJ_0000": ("normal/PACE_00001_000_BUSI.png", (20, 24), [0.7, 0.2, 0.1]),
    "PJ_0001": ("benign/PACE_00002_001_BUSBRA.png", (30, 18), [0.1, 0.6, 0.3]),
    "PJ_0002": ("malignant/PACE_00003_002_BUSBRA.png", (16, 16), [0.1, 0.3, 0.6]),
}


def _mask(shape, seed):
    m = np.zeros(shape, np.uint8)
    m[2 + seed:8 + seed, 3:9] = 1
    return m


@pytest.fixture
def prediction(tmp_path: Path) -> dict[str, Path]:
    pred, source = tmp_path / "pred", tmp_path / "source"
    pred.mkdir()
    for i, (cid, (orig, shape, _)) in enumerate(CASES.items()):
        Image.fromarray(_mask(shape, i)).save(pred / f"{cid}.png")
        (source / orig).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((*shape, 3), 90, np.uint8)).save(source / orig)  # RGB original
    write_classification_csv(pred / "classification.csv", {cid: np.array(c[2]) for cid, c in CASES.items()})
    cases_json = tmp_path / "cases.json"
    cases_json.write_text(json.dumps({cid: orig for cid, (orig, *_) in CASES.items()}))
    return {"pred": pred, "source": source, "cases": cases_json, "out": tmp_path / "submission"}


def test_layout_and_values_with_cases_json(prediction, capsys):
    rc = main(["export-submission", str(prediction["pred"]), "-o", str(prediction["out"]),
               "--cases-json", str(prediction["cases"]), "--source-dir", str(prediction["source"])])
    assert rc == 0, capsys.readouterr().err
    out = prediction["out"]
    assert sorted(p.name for p in out.iterdir()) == ["classification.csv", "segmentation"]
    assert (out / "classification.csv").read_text().splitlines() == [
        "image_id,label",
        "PACE_00001_000_BUSI,Normal",
        "PACE_00002_001_BUSBRA,Benign",
        "PACE_00003_002_BUSBRA,Malignant",
    ]
    for i, (cid, (orig, shape, _)) in enumerate(CASES.items()):
        with Image.open(out / "segmentation" / f"{Path(orig).stem}_mask.png") as im:
            assert im.mode == "L"
            arr = np.asarray(im)
        assert arr.shape == shape and arr.dtype == np.uint8
        np.testing.assert_array_equal(arr, _mask(shape, i) * 255)
    assert not [p for p in out.parent.iterdir() if ".tmp" in p.name]


def test_case_ids_without_cases_json(prediction):
    out = export_submission(prediction["pred"], prediction["out"], progress=False)
    names = sorted(p.name for p in (out / "segmentation").iterdir())
    assert names == [f"{cid}_mask.png" for cid in sorted(CASES)]
    assert (out / "classification.csv").read_text().splitlines()[1] == "PJ_0000,Normal"


def test_size_mismatch_with_original_is_refused(prediction):
    orig = prediction["source"] / CASES["PJ_0001"][0]
    Image.fromarray(np.zeros((31, 18), np.uint8)).save(orig)
    with pytest.raises(ValueError, match=r"PJ_0001.*18x30.*18x31"):
        export_submission(prediction["pred"], prediction["out"], cases_json=prediction["cases"],
                          source_dir=prediction["source"], progress=False)
    assert not prediction["out"].exists()
    assert not [p for p in prediction["out"].parent.iterdir() if ".tmp" in p.name]
    # The check can be skipped explicitly.
    export_submission(prediction["pred"], prediction["out"], cases_json=prediction["cases"],
                      source_dir=prediction["source"], check_size=False, progress=False)
    assert (prediction["out"] / "segmentation" / "PACE_00002_001_BUSBRA_mask.png").is_file()


def test_source_folder_from_the_conversion_report(prediction):
    # `phyjoint convert images` writes cases.json (paths relative to SOURCE) and a report naming SOURCE.
    report = prediction["cases"].parent / "conversion_report.json"
    report.write_text(json.dumps({"source_folder": str(prediction["source"]), "num_cases": 3}))
    out = export_submission(prediction["pred"], prediction["out"], cases_json=prediction["cases"], progress=False)
    assert (out / "segmentation" / "PACE_00003_002_BUSBRA_mask.png").is_file()


def test_original_not_found_names_the_case(prediction):
    with pytest.raises(FileNotFoundError, match="PJ_0000.*--source-dir"):
        export_submission(prediction["pred"], prediction["out"], cases_json=prediction["cases"], progress=False)


def test_mismatched_cases_are_refused(prediction):
    (prediction["pred"] / "PJ_0002.png").unlink()
    with pytest.raises(ValueError, match="PJ_0002"):
        export_submission(prediction["pred"], prediction["out"], progress=False)


def test_existing_output_needs_overwrite(prediction, capsys):
    prediction["out"].mkdir()
    (prediction["out"] / "old.txt").write_text("old")
    rc = main(["export-submission", str(prediction["pred"]), "-o", str(prediction["out"])])
    assert rc == 1 and "--overwrite" in capsys.readouterr().err
    rc = main(["export-submission", str(prediction["pred"]), "-o", str(prediction["out"]), "--overwrite"])
    assert rc == 0
    assert not (prediction["out"] / "old.txt").exists()
    assert (prediction["out"] / "classification.csv").is_file()


def test_cases_json_shapes(tmp_path):
    nested = tmp_path / "nested.json"
    nested.write_text(json.dumps({"source_dir": "/data", "cases": {"a": {"original_file": "x/a1.png"},
                                                                   "b": {"source_files": ["b1.png"]}}}))
    assert read_cases_json(nested) == ({"a": "x/a1.png", "b": "b1.png"}, "/data")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"a": 3}))
    with pytest.raises(ValueError, match="case a"):
        read_cases_json(bad)
