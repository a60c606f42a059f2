"""`phyjoint evaluate` end to end on a tiny synthetic nnU-Net folder (six 32x32 cases)."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nnunet_phyjoint.cli import main
from nnunet_phyjoint.evaluation import evaluate_folders, format_summary_table, write_classification_csv
from nnunet_phyjoint.metadata import CaseMeta, metadata_block

SHAPE = (32, 32)


def _square(top, left, size):
    m = np.zeros(SHAPE, np.uint8)
    m[top:top + size, left:left + size] = 1
    return m


EMPTY = np.zeros(SHAPE, np.uint8)
# case id: (class, ground truth, prediction, class probabilities)
CASES = {
    "c1": ("benign", _square(8, 8, 10), _square(8, 8, 10), [0.1, 0.8, 0.1]),      # DSC 1, HD95 0
    "c2": ("malignant", _square(8, 8, 10), _square(8, 11, 10), [0.1, 0.5, 0.4]),  # DSC 0.7, HD95 3; wrong class
    "c3": ("normal", EMPTY, EMPTY, [0.8, 0.1, 0.1]),                              # both empty
    "c4": ("normal", EMPTY, _square(0, 0, 2), [0.6, 0.3, 0.1]),                   # false positive
    "c5": ("benign", _square(5, 5, 8), EMPTY, [0.2, 0.7, 0.1]),                   # missed lesion
    "c6": ("malignant", _square(10, 10, 8), _square(10, 10, 8), [0.1, 0.2, 0.7]),  # DSC 1, HD95 0
}
DSC_LESION = (1 + 0.7 + 0 + 1) / 4
DSC_ALL = (1 + 0.7 + 1 + 0 + 0 + 1) / 6


def _png(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


@pytest.fixture
def folders(tmp_path: Path) -> dict[str, Path]:
    ds = tmp_path / "Dataset900_Tiny"
    pred = tmp_path / "pred"
    rng = np.random.default_rng(0)
    for cid, (_, gt, pr, _) in CASES.items():
        _png(ds / "labelsTr" / f"{cid}.png", gt)
        _png(ds / "imagesTr" / f"{cid}_0000.png", rng.integers(0, 255, SHAPE, dtype=np.uint8))
        _png(pred / f"{cid}.png", pr)
    _png(pred / "extra.png", EMPTY)
    metas = [CaseMeta(cid, label, patient=cid, scanner="S1") for cid, (label, *_) in CASES.items()]
    dataset_json = {"channel_names": {"0": "US"}, "labels": {"background": 0, "lesion": 1},
                    "numTraining": len(CASES), "file_ending": ".png", "phyjoint": metadata_block(metas, "test")}
    (ds / "dataset.json").write_text(json.dumps(dataset_json))
    write_classification_csv(pred / "classification.csv", {cid: np.array(c[3]) for cid, c in CASES.items()})
    return {"gt": ds / "labelsTr", "pred": pred, "out": tmp_path / "eval", "dataset": ds}


def test_cli_end_to_end(folders, capsys):
    rc = main(["evaluate", str(folders["gt"]), str(folders["pred"]), "-o", str(folders["out"]),
               "--bootstrap", "200", "--spacing-mm", "0.5", "0.5"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "| DSC (lesion-only) | 0.675 |" in printed
    assert "| Accuracy | 0.833 |" in printed

    out = folders["out"]
    metrics = json.loads((out / "metrics.json").read_text())  # strict JSON: NaN would fail here
    seg = metrics["segmentation"]
    assert seg["dsc"]["lesion_only"]["value"] == pytest.approx(DSC_LESION)
    assert seg["dsc"]["lesion_only"]["n"] == 4
    assert seg["dsc"]["all_image"]["value"] == pytest.approx(DSC_ALL)
    assert seg["jaccard"]["lesion_only"]["value"] == pytest.approx((1 + 70 / 130 + 0 + 1) / 4)
    assert seg["hd95_px"]["value"] == pytest.approx(1.0)  # mean of 0, 3, 0
    assert (seg["hd95_px"]["n"], seg["hd95_px"]["n_undefined"]) == (3, 3)
    assert seg["hd95_mm"]["value"] == pytest.approx(0.5)
    assert seg["counts"] == {"cases": 6, "lesion_cases": 4, "empty_gt_cases": 2, "both_empty": 1,
                             "false_positive_on_empty_gt": 1, "missed_lesions": 1}
    # predicted / true area on the 4 lesion cases: 1, 1, 0 (missed), 1
    assert seg["area_ratio_lesion"] == pytest.approx({"median": 1.0, "q25": 0.75, "q75": 1.0, "n": 4})
    for entry in (seg["dsc"]["lesion_only"], seg["dsc"]["all_image"], seg["hd95_px"]):
        assert entry["ci_low"] <= entry["value"] <= entry["ci_high"]
    cls = metrics["classification"]
    assert cls["accuracy"]["value"] == pytest.approx(5 / 6)
    assert cls["confusion_matrix"] == [[2, 0, 0], [0, 2, 0], [0, 1, 1]]
    assert cls["f1_per_class"] == pytest.approx({"normal": 1.0, "benign": 0.8, "malignant": 2 / 3})
    assert cls["auc_per_class"]["normal"] == pytest.approx(1.0)
    # benign vs malignant (c1, c5 vs c2, c6): scores 1/9, 1/8 vs 4/9, 7/9 -> AUC 1; c2 called benign -> sensitivity
    # 1/2; no benign case called malignant -> specificity 1; n = the cases each one counts
    assert (cls["auc_malignant"]["value"], cls["auc_malignant"]["n"]) == (pytest.approx(1.0), 4)
    assert (cls["sensitivity"]["value"], cls["sensitivity"]["n"]) == (pytest.approx(0.5), 2)
    assert (cls["specificity"]["value"], cls["specificity"]["n"]) == (pytest.approx(1.0), 2)
    for key in ("sensitivity", "specificity", "auc_malignant"):
        assert 0.0 <= cls[key]["ci_low"] <= cls[key]["value"] <= cls[key]["ci_high"] <= 1.0
    assert "| Sensitivity (malignant) | 0.500 |" in printed and "| AUC malignant vs benign | 1.000 |" in printed
    assert metrics["extra_predictions"] == ["extra"]

    with open(out / "per_case.csv") as f:
        rows = {r["case_id"]: r for r in csv.DictReader(f)}
    assert set(rows) == set(CASES)
    assert float(rows["c2"]["dsc"]) == pytest.approx(0.7) and float(rows["c2"]["hd95_px"]) == 3.0
    assert float(rows["c2"]["hd95_mm"]) == 1.5
    assert rows["c5"]["hd95_px"] == "" and rows["c5"]["gt_class"] == "benign"
    assert rows["c2"]["predicted_class"] == "benign"

    md = (out / "metrics.md").read_text()
    assert "Lesion-only (n=4)" in md and "All-image (n=6)" in md and "figures/roc_curves.png" in md
    assert "| Specificity (benign) | 1.000 |" in md and "p_malignant / (p_benign + p_malignant)" in md
    for name in ("roc_curves.png", "confusion_matrix.png", "overlays_best_median_worst.png"):
        with Image.open(out / "figures" / name) as im:
            assert im.format == "PNG" and im.size[0] > 100
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]


def test_evaluation_is_deterministic_for_a_seed(folders):
    kwargs = dict(n_bootstrap=100, figures=False, progress=False)
    a = evaluate_folders(folders["gt"], folders["pred"], seed=3, **kwargs)
    b = evaluate_folders(folders["gt"], folders["pred"], seed=3, **kwargs)
    c = evaluate_folders(folders["gt"], folders["pred"], seed=4, **kwargs)
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    assert a["segmentation"]["dsc"]["all_image"]["ci_low"] != c["segmentation"]["dsc"]["all_image"]["ci_low"] \
        or a["classification"]["auc_macro"]["ci_low"] != c["classification"]["auc_macro"]["ci_low"]
    assert "Accuracy" in format_summary_table(a)


def test_missing_prediction_is_an_error_naming_the_case(folders, capsys):
    (folders["pred"] / "c3.png").unlink()
    with pytest.raises(FileNotFoundError, match="c3"):
        evaluate_folders(folders["gt"], folders["pred"], n_bootstrap=10, progress=False)
    rc = main(["evaluate", str(folders["gt"]), str(folders["pred"]), "-o", str(folders["out"])])
    assert rc == 1
    assert "c3" in capsys.readouterr().err
    assert not folders["out"].exists()


def test_missing_classification_row_is_an_error(folders):
    lines = (folders["pred"] / "classification.csv").read_text().splitlines()
    (folders["pred"] / "classification.csv").write_text("\n".join(l for l in lines if not l.startswith("c5,")))
    with pytest.raises(KeyError, match="c5"):
        evaluate_folders(folders["gt"], folders["pred"], n_bootstrap=10, progress=False)


def test_segmentation_only_without_classification_csv(folders):
    (folders["pred"] / "classification.csv").unlink()
    m = evaluate_folders(folders["gt"], folders["pred"], out_dir=folders["out"], n_bootstrap=20, progress=False)
    assert m["classification"] is None and m["segmentation"]["hd95_mm"] is None
    assert m["segmentation"]["dsc"]["all_image"]["value"] == pytest.approx(DSC_ALL)
    assert "No classification predictions" in (folders["out"] / "metrics.md").read_text()
    assert (folders["out"] / "figures" / "overlays_best_median_worst.png").is_file()
    assert not (folders["out"] / "figures" / "roc_curves.png").exists()


def test_classification_needs_dataset_json(folders):
    (folders["dataset"] / "dataset.json").unlink()
    with pytest.raises(FileNotFoundError, match="--dataset-json"):
        evaluate_folders(folders["gt"], folders["pred"], n_bootstrap=10, progress=False)


def test_spacing_from_case_metadata(folders):
    dj = json.loads((folders["dataset"] / "dataset.json").read_text())
    dj["phyjoint"]["cases"]["c2"]["spacing_mm"] = [0.1, 0.2]  # columns 0.2 mm: a 3-column shift = 0.6 mm
    (folders["dataset"] / "dataset.json").write_text(json.dumps(dj))
    m = evaluate_folders(folders["gt"], folders["pred"], n_bootstrap=10, figures=False, progress=False)
    assert m["segmentation"]["hd95_mm"]["value"] == pytest.approx(0.6)
    assert m["segmentation"]["hd95_mm"]["n"] == 1
    assert "1 of 6" in m["inputs"]["spacing_source"]


def test_non_binary_label_is_refused(folders):
    _png(folders["pred"] / "c1.png", _square(8, 8, 10) * 255)
    with pytest.raises(ValueError, match=r"c1\.png.*not in \{0, 1\}"):
        evaluate_folders(folders["gt"], folders["pred"], n_bootstrap=10, progress=False)


def test_nan_free_json_for_undefined_values(folders):
    for cid in CASES:  # every prediction empty: HD95 undefined everywhere
        _png(folders["pred"] / f"{cid}.png", EMPTY)
    m = evaluate_folders(folders["gt"], folders["pred"], out_dir=folders["out"], n_bootstrap=10,
                         figures=False, progress=False)
    assert math.isnan(m["segmentation"]["hd95_px"]["value"])
    on_disk = json.loads((folders["out"] / "metrics.json").read_text())
    assert on_disk["segmentation"]["hd95_px"]["value"] is None


def test_metrics_per_scanner_each_bootstrapped_on_its_own_cases(folders):
    dj_path = folders["dataset"] / "dataset.json"
    one_scanner = evaluate_folders(folders["gt"], folders["pred"], n_bootstrap=50, figures=False, progress=False)
    assert one_scanner["by_scanner"] is None  # every fixture case comes from scanner S1: nothing to break down

    dj = json.loads(dj_path.read_text())
    for cid, meta in dj["phyjoint"]["cases"].items():
        meta["scanner"] = "A" if cid in ("c1", "c2", "c3") else "B"
    dj_path.write_text(json.dumps(dj))
    metrics = evaluate_folders(folders["gt"], folders["pred"], out_dir=folders["out"], n_bootstrap=200,
                               progress=False)
    a, b = metrics["by_scanner"]["A"], metrics["by_scanner"]["B"]
    assert (a["n_cases"], b["n_cases"]) == (3, 3)
    # A: c1 (benign, DSC 1, HD95 0), c2 (malignant, DSC 0.7, HD95 3, called benign), c3 (normal, both empty)
    assert a["dsc_lesion_only"]["value"] == pytest.approx(0.85) and a["hd95_px"]["value"] == pytest.approx(1.5)
    assert (a["auc_malignant"]["value"], a["sensitivity"]["value"], a["specificity"]["value"]) == (1.0, 0.0, 1.0)
    # B: c4 (normal, false positive), c5 (benign, missed lesion), c6 (malignant, DSC 1)
    assert b["dsc_lesion_only"]["value"] == pytest.approx(0.5) and b["hd95_px"]["value"] == 0.0
    assert (b["sensitivity"]["value"], b["specificity"]["value"]) == (1.0, 1.0)
    for entry in (a, b):
        assert entry["dsc_lesion_only"]["ci_low"] <= entry["dsc_lesion_only"]["value"] <= entry["dsc_lesion_only"]["ci_high"]
    # the pooled numbers are unchanged by the breakdown
    assert metrics["segmentation"]["dsc"]["lesion_only"]["value"] == pytest.approx(DSC_LESION)
    with open(folders["out"] / "per_case.csv") as f:
        assert {r["case_id"]: r["scanner"] for r in csv.DictReader(f)}["c5"] == "B"
    md = (folders["out"] / "metrics.md").read_text()
    assert "## By scanner" in md and "| A | 3 | 0.850 [" in md and "| B | 3 | 0.500 [" in md
    assert "figures/by_scanner.png" in md
    with Image.open(folders["out"] / "figures" / "by_scanner.png") as im:
        assert im.format == "PNG" and im.size[0] > 300
