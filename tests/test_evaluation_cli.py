"""`phyjoint evaluate` end to end on a tiny synthetic nnU-Net folder (six 32x32 cases)."""
from __future__ import annotations

import csv
import json
import math
import re
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


def test_metrics_per_fold_equal_each_fold_evaluated_alone(folders, tmp_path):
    import shutil

    # fold 0 holds four lesions of different DSC, so its intervals depend on which resamples are drawn
    case_folds = {cid: 0 if cid in ("c1", "c2", "c5", "c6") else 1 for cid in CASES}
    dj = folders["dataset"] / "dataset.json"
    metrics = evaluate_folders(folders["gt"], folders["pred"], dataset_json=dj, out_dir=folders["out"],
                               n_bootstrap=20, progress=False, case_folds=case_folds)
    assert list(metrics["by_fold"]) == ["0", "1"]
    for fold in (0, 1):
        sub = tmp_path / f"fold{fold}"
        for kind in ("gt", "pred"):
            (sub / kind).mkdir(parents=True)
            for cid in (c for c, f in case_folds.items() if f == fold):
                shutil.copy(folders[kind] / f"{cid}.png", sub / kind)
        shutil.copy(folders["pred"] / "classification.csv", sub / "pred")  # its other fold's rows are ignored
        alone = evaluate_folders(sub / "gt", sub / "pred", dataset_json=dj, n_bootstrap=20, figures=False,
                                 progress=False)
        entry = metrics["by_fold"][str(fold)]
        assert entry["n_cases"] == alone["n_cases"] == (4, 2)[fold]
        for key, pooled in (("dsc_lesion_only", alone["segmentation"]["dsc"]["lesion_only"]),
                            ("hd95_px", alone["segmentation"]["hd95_px"]),
                            ("specificity", alone["classification"]["specificity"]),
                            ("sensitivity", alone["classification"]["sensitivity"])):
            for part in ("value", "ci_low", "ci_high"):  # same statistic, same resamples of the same cases
                assert entry[key][part] == pytest.approx(pooled[part], nan_ok=True), (fold, key, part)
    with open(folders["out"] / "per_case.csv") as f:
        assert {r["case_id"]: r["fold"] for r in csv.DictReader(f)} == {c: str(k) for c, k in case_folds.items()}
    md = (folders["out"] / "metrics.md").read_text()
    assert "## By fold" in md and "figures/by_fold.png" in md
    assert (folders["out"] / "figures" / "by_fold.png").is_file()
    one_fold = evaluate_folders(folders["gt"], folders["pred"], dataset_json=dj, n_bootstrap=20, figures=False,
                                progress=False, case_folds=dict.fromkeys(CASES, 2))
    assert one_fold["by_fold"] is None  # one fold: nothing to break down
    with pytest.raises(ValueError, match="no fold for 1 evaluated case"):
        evaluate_folders(folders["gt"], folders["pred"], dataset_json=dj, n_bootstrap=20, figures=False,
                         progress=False, case_folds={c: 0 for c in CASES if c != "c6"})


def test_cli_scores_each_fold_of_an_nnunet_splits_file(folders, tmp_path, capsys):
    splits = tmp_path / "splits_final.json"
    splits.write_text(json.dumps([{"train": ["c4", "c5", "c6"], "val": ["c1", "c2", "c3"]},
                                  {"train": ["c1", "c2", "c3"], "val": ["c4", "c5", "c6"]}]))
    assert main(["evaluate", str(folders["gt"]), str(folders["pred"]), "-o", str(folders["out"]),
                 "--bootstrap", "20", "--no-figures", "--splits", str(splits)]) == 0
    by_fold = json.loads((folders["out"] / "metrics.json").read_text())["by_fold"]
    assert {k: v["n_cases"] for k, v in by_fold.items()} == {"0": 3, "1": 3}

    for content, message in (
            ([{"train": [], "val": ["c1", "c2", "c3"]}, {"train": [], "val": ["c3", "c4", "c5", "c6"]}],
             "case 'c3' is in the validation set of folds 0 and 1"),
            ([{"train": [], "val": ["c1", "c2", "c3"]}, {"train": [], "val": ["c4", "c5"]}],
             r"1 case\(s\) of .* are in no validation fold: \['c6'\]"),
            ({"val": ["c1"]}, "not nnU-Net's splits_final.json")):
        splits.write_text(json.dumps(content))
        assert main(["evaluate", str(folders["gt"]), str(folders["pred"]), "-o", str(tmp_path / "x"),
                     "--bootstrap", "20", "--no-figures", "--splits", str(splits)]) == 1
        err = capsys.readouterr().err
        assert str(splits) in err and re.search(message, err), err
