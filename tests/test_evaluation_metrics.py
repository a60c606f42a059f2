"""Metric functions against hand-computed values; bootstrap determinism; the classification CSV."""
from __future__ import annotations

import math

import numpy as np
import pytest

from nnunet_phyjoint.evaluation import classification_metrics as clsm
from nnunet_phyjoint.evaluation import segmentation_metrics as segm
from nnunet_phyjoint.evaluation.bootstrap import bootstrap_ci, resample_counts
from nnunet_phyjoint.evaluation.io import (
    read_classification_csv, read_predicted_classes, write_classification_csv,
)


def square(top: int, left: int, size: int = 10, shape: tuple[int, int] = (40, 40)) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[top:top + size, left:left + size] = True
    return m


# --- segmentation -----------------------------------------------------------------------------

def test_dice_jaccard_shifted_square():
    # 10x10 squares overlapping in 10x7 pixels: DSC = 140/200, Jaccard = 70/130.
    dsc, jac = segm.dice_jaccard(square(10, 10), square(10, 13))
    assert dsc == pytest.approx(0.7)
    assert jac == pytest.approx(70 / 130)


def test_empty_mask_conventions():
    empty = np.zeros((16, 16), bool)
    both = segm.case_metrics(empty, empty)
    assert (both.dsc, both.jaccard) == (1.0, 1.0)
    assert math.isnan(both.hd95_px)
    one = segm.case_metrics(square(2, 2, 5, (16, 16)), empty)
    assert (one.dsc, one.jaccard) == (0.0, 0.0)
    assert math.isnan(one.hd95_px) and math.isnan(segm.hd95(empty, square(2, 2, 5, (16, 16))))


def test_hd95_shifted_square_by_hand():
    # Boundary of each 10x10 square: 36 pixels. Distances from A's boundary to B's (B shifted
    # 3 columns right): 14 zeros (shared top/bottom pixels), {1,2,3} twice (top/bottom overhang),
    # 3 for the 8 inner left-column pixels, and min(row distance to B's top/bottom, 3) on the
    # right column -> 14x0, 4x1, 4x2, 14x3; the 95th percentile (index 33.25 of 36) is 3.
    a, b = square(10, 10), square(10, 13)
    d = np.sort(segm.directed_surface_distances(a, b))
    expected = np.array([0] * 14 + [1] * 4 + [2] * 4 + [3] * 14, dtype=float)
    np.testing.assert_allclose(d, expected)
    assert segm.hd95(a, b) == pytest.approx(3.0)
    assert segm.hd95(b, a) == pytest.approx(3.0)
    # Spacing is (row, column): a column shift scales with the column spacing only.
    assert segm.hd95(a, b, spacing=(2.0, 0.5)) == pytest.approx(1.5)
    # With columns 2 mm wide, the right-column pixels are closer (0.5 mm rows) to B's top row,
    # but the 10 largest distances are all 3 columns = 6 mm, so HD95 stays 6 mm.
    assert segm.hd95(a, b, spacing=(0.5, 2.0)) == pytest.approx(6.0)


def test_hd95_ignores_a_far_outlier_pixel_that_hausdorff_sees():
    a = square(10, 10)
    b = a.copy()
    b[15, 39] = True  # one stray pixel 20 columns from A's right edge
    assert segm.directed_surface_distances(b, a).max() == pytest.approx(20.0)
    # 37 distances from B (36 zeros + 20): the 95th percentile is 0; from A all are 0.
    assert segm.hd95(a, b) == pytest.approx(0.0)


def test_hd95_same_mask_is_zero_and_shape_mismatch_is_refused():
    a = square(3, 3, 6, (20, 20))
    assert segm.hd95(a, a) == 0.0
    with pytest.raises(ValueError, match="shape"):
        segm.case_metrics(a, np.zeros((20, 21), bool))


def test_aggregate_lesion_only_vs_all_image():
    empty = np.zeros((40, 40), bool)
    cases = [
        segm.case_metrics(square(10, 10), square(10, 10)),   # lesion, perfect
        segm.case_metrics(square(10, 10), square(10, 13)),   # lesion, DSC 0.7, HD95 3
        segm.case_metrics(empty, empty),                     # normal, predicted empty
        segm.case_metrics(empty, square(0, 0, 2)),           # normal, false positive
    ]
    columns = {k: np.array([getattr(c, k) for c in cases], dtype=float)
               for k in ("dsc", "jaccard", "hd95_px", "hd95_mm", "gt_pixels", "pred_pixels")}
    agg = {k: v[0] for k, v in segm.aggregate(columns).items()}
    assert agg["dsc_lesion_only"] == pytest.approx((1.0 + 0.7) / 2)
    assert agg["dsc_all_image"] == pytest.approx((1.0 + 0.7 + 1.0 + 0.0) / 4)
    assert agg["jaccard_lesion_only"] == pytest.approx((1.0 + 70 / 130) / 2)
    assert agg["hd95_px"] == pytest.approx((0.0 + 3.0) / 2)
    assert math.isnan(agg["hd95_mm"])
    # A resample drawing case 1 twice and case 2 once, and one without any lesion case.
    rows = segm.aggregate(columns, np.array([[0, 2, 1, 0], [0, 0, 1, 1]]))
    assert rows["dsc_all_image"][0] == pytest.approx((0.7 + 0.7 + 1.0) / 3)
    assert rows["dsc_lesion_only"][0] == pytest.approx(0.7)
    assert math.isnan(rows["dsc_lesion_only"][1]) and math.isnan(rows["hd95_px"][1])
    assert rows["dsc_all_image"][1] == pytest.approx(0.5)


# --- classification ---------------------------------------------------------------------------

Y_TRUE = np.array([0, 0, 1, 1, 2, 2])
PROBS = np.array([
    [0.7, 0.2, 0.1],
    [0.3, 0.6, 0.1],
    [0.1, 0.8, 0.1],
    [0.2, 0.5, 0.3],
    [0.1, 0.2, 0.7],
    [0.5, 0.1, 0.4],
])


def test_classification_metrics_by_hand():
    m = clsm.classification_metrics(Y_TRUE, PROBS)
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert m["accuracy"] == pytest.approx(4 / 6)
    # F1 = 2TP / (2TP + FP + FN): normal 2/4, benign 4/5, malignant 2/3.
    assert m["f1_per_class"] == pytest.approx({"normal": 0.5, "benign": 0.8, "malignant": 2 / 3})
    assert m["f1_macro"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    # AUC by counting positive/negative pairs: normal 7/8, benign 7/8, malignant 8/8.
    assert m["auc_per_class"] == pytest.approx({"normal": 0.875, "benign": 0.875, "malignant": 1.0})
    assert m["auc_macro"] == pytest.approx((0.875 + 0.875 + 1.0) / 3)
    assert m["classes_absent_from_gt"] == [] and m["notes"] == []


def test_class_absent_from_ground_truth():
    m = clsm.classification_metrics(Y_TRUE[2:], PROBS[2:])  # no normal case; one predicted normal
    assert m["classes_absent_from_gt"] == ["normal"]
    assert math.isnan(m["auc_per_class"]["normal"])
    assert m["auc_per_class"]["benign"] == pytest.approx(1.0)
    assert m["auc_macro"] == pytest.approx(1.0)  # mean over benign and malignant only
    assert m["f1_per_class"]["normal"] == 0.0    # predicted once, never true: a false positive
    assert m["f1_macro"] == pytest.approx((0.0 + 1.0 + 2 / 3) / 3)
    assert any("absent" in n for n in m["notes"])


def test_benign_vs_malignant_metrics_by_hand():
    m = clsm.classification_metrics(Y_TRUE, PROBS)
    # Benign/malignant cases 2..5; scores p_m / (p_b + p_m): benign 1/9, 3/8; malignant 7/9, 4/5.
    # Every malignant score is above every benign one: AUC 1. Case 5 (malignant) is predicted
    # normal: sensitivity 1/2. No benign case is predicted malignant: specificity 1.
    assert m["auc_malignant"] == pytest.approx(1.0)
    assert m["sensitivity"] == pytest.approx(0.5)
    assert m["specificity"] == pytest.approx(1.0)
    # The normal cases take no part: changing their probabilities changes nothing.
    probs = PROBS.copy()
    probs[:2] = [[0.0, 0.1, 0.9], [0.0, 0.9, 0.1]]
    assert clsm.benign_malignant_metrics(Y_TRUE, probs, PROBS.argmax(1)) == pytest.approx(
        {"auc_malignant": 1.0, "sensitivity": 0.5, "specificity": 1.0})
    # A benign case called malignant lowers the specificity. Scores: benign 0.1 and 0.9, malignant 7/9 and
    # 3/4; each malignant case is above one benign case and below the other: 2 of 4 pairs -> AUC 0.5.
    y = np.array([1, 1, 2, 2])
    p = np.array([[0.0, 0.9, 0.1], [0.0, 0.1, 0.9], [0.0, 0.2, 0.7], [0.2, 0.2, 0.6]])
    bm = clsm.benign_malignant_metrics(y, p, p.argmax(1))
    assert bm["auc_malignant"] == pytest.approx(0.5)
    assert bm["sensitivity"] == pytest.approx(1.0) and bm["specificity"] == pytest.approx(0.5)


def test_benign_vs_malignant_undefined_without_either_class():
    only_benign = clsm.benign_malignant_metrics(np.array([0, 1, 1]), PROBS[:3], PROBS[:3].argmax(1))
    assert math.isnan(only_benign["auc_malignant"]) and math.isnan(only_benign["sensitivity"])
    assert only_benign["specificity"] == pytest.approx(1.0)
    only_malignant = clsm.benign_malignant_metrics(np.array([2, 2]), PROBS[4:], PROBS[4:].argmax(1))
    assert math.isnan(only_malignant["auc_malignant"]) and math.isnan(only_malignant["specificity"])
    assert only_malignant["sensitivity"] == pytest.approx(0.5)
    # p_benign = p_malignant = 0 scores 0.5 (a tie), not NaN
    np.testing.assert_allclose(clsm.malignancy_score(np.array([[1.0, 0.0, 0.0], [0.0, 0.25, 0.75]])), [0.5, 0.75])


def test_f1_undefined_class_left_out_of_macro():
    y = np.array([1, 2, 1, 2])
    probs = np.array([[0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.1, 0.1, 0.8], [0.1, 0.1, 0.8]])
    m = clsm.classification_metrics(y, probs)
    assert math.isnan(m["f1_per_class"]["normal"])
    # benign: TP 1, FN 1 -> 2/3; malignant: TP 2, FP 1 -> 4/5.
    assert m["f1_macro"] == pytest.approx((2 / 3 + 0.8) / 2)


# --- bootstrap --------------------------------------------------------------------------------

def test_resampled_classification_metrics_match_scikit_learn():
    rng = np.random.default_rng(1)
    n = 30
    y = rng.integers(0, 3, n)
    probs = rng.dirichlet([1, 1, 1], n).round(1)  # rounding makes ties, which AUC counts as 1/2
    y_pred = probs.argmax(axis=1)
    counts = resample_counts(n, 25, seed=5)
    counts[0] = 1  # the identity resample
    counts[1] = (y != 0) * counts[1]  # a resample without normal cases
    counts[2] = (y != 2) * counts[2]  # without malignant cases: AUC malignant and sensitivity undefined
    counts[3] = (y != 1) * counts[3]  # without benign cases
    fast = clsm.weighted_scalar_metrics(y, probs, y_pred, counts)
    for b in range(len(counts)):
        idx = np.repeat(np.arange(n), counts[b].astype(int))
        slow = {**clsm.scalar_metrics(y[idx], probs[idx], y_pred[idx]),
                **clsm.benign_malignant_metrics(y[idx], probs[idx], y_pred[idx])}
        assert set(slow) == set(fast)
        for key in slow:
            assert fast[key][b] == pytest.approx(slow[key], nan_ok=True), (b, key)
    assert clsm.classification_metrics(y, probs)["auc_macro"] == pytest.approx(fast["auc_macro"][0])


def test_resample_counts_are_draws_with_replacement():
    counts = resample_counts(7, 50, seed=0)
    assert counts.shape == (50, 7)
    assert np.all(counts.sum(axis=1) == 7)
    np.testing.assert_array_equal(counts, resample_counts(7, 50, seed=0))
    assert not np.array_equal(counts, resample_counts(7, 50, seed=1))


def test_bootstrap_deterministic_and_contains_point_estimate():
    values = np.random.default_rng(3).normal(0.7, 0.1, size=40)

    def stat(weights):
        everything = np.ones(len(values), bool)
        return {"mean": segm.weighted_mean(values, weights, everything),
                "never": np.full(len(weights), np.nan)}

    a = bootstrap_ci(len(values), stat, n_bootstrap=300, seed=7)
    b = bootstrap_ci(len(values), stat, n_bootstrap=300, seed=7)
    c = bootstrap_ci(len(values), stat, n_bootstrap=300, seed=8)
    assert a["mean"] == b["mean"]
    assert a["mean"] != c["mean"]
    lo, hi = a["mean"]
    assert lo < values.mean() < hi
    # The percentile interval is about +-1.96 standard errors of the mean.
    se = values.std(ddof=1) / np.sqrt(len(values))
    assert hi - lo == pytest.approx(2 * 1.96 * se, rel=0.25)
    assert all(math.isnan(v) for v in a["never"])


def test_bootstrap_rejects_bad_arguments():
    with pytest.raises(ValueError):
        bootstrap_ci(0, lambda w: {}, n_bootstrap=10)
    with pytest.raises(ValueError):
        bootstrap_ci(5, lambda w: {}, n_bootstrap=0)
    with pytest.raises(ValueError, match="resamples"):
        bootstrap_ci(5, lambda w: {"x": np.zeros(3)}, n_bootstrap=10)


# --- classification CSV -----------------------------------------------------------------------

def test_classification_csv_round_trip(tmp_path):
    rows = {"case_b": np.array([0.1, 0.2, 0.7]), "case_a": np.array([1 / 3, 0.5, 1 / 6])}
    path = tmp_path / "classification.csv"
    write_classification_csv(path, rows)
    lines = path.read_text().splitlines()
    assert lines[0] == "case_id,predicted_class,prob_normal,prob_benign,prob_malignant"
    assert lines[1].startswith("case_a,benign,") and lines[2].startswith("case_b,malignant,")
    back = read_classification_csv(path)
    assert set(back) == set(rows)
    for k in rows:
        np.testing.assert_array_equal(back[k], rows[k])  # exact: floats written with repr
    assert read_predicted_classes(path) == {"case_a": 1, "case_b": 2}
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary file left behind


@pytest.mark.parametrize("text, message", [
    ("case,pred,a,b,c\nx,normal,1,0,0\n", "header"),
    ("case_id,predicted_class,prob_normal,prob_benign,prob_malignant\nx,cancer,0,0,1\n", "cancer"),
    ("case_id,predicted_class,prob_normal,prob_benign,prob_malignant\nx,normal,1,0\n", "columns"),
    ("case_id,predicted_class,prob_normal,prob_benign,prob_malignant\nx,normal,a,0,0\n", "not numbers"),
    ("case_id,predicted_class,prob_normal,prob_benign,prob_malignant\nx,normal,1,0,0\nx,normal,1,0,0\n", "twice"),
])
def test_classification_csv_bad_input(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_classification_csv(path)


def test_write_classification_csv_refuses_wrong_length(tmp_path):
    with pytest.raises(ValueError, match="case x"):
        write_classification_csv(tmp_path / "c.csv", {"x": np.array([0.5, 0.5])})
    assert not (tmp_path / "c.csv").exists()


def test_hd95_matches_brute_force_on_random_blobs():
    from scipy.ndimage import gaussian_filter
    from scipy.spatial.distance import cdist

    rng = np.random.default_rng(2)
    for _ in range(5):
        a = gaussian_filter(rng.normal(size=(48, 40)), 3) > 0.05
        b = gaussian_filter(rng.normal(size=(48, 40)), 3) > 0.05
        spacing = (0.7, 1.3)
        pa = np.argwhere(segm.boundary(a)) * spacing
        pb = np.argwhere(segm.boundary(b)) * spacing
        pairwise = cdist(pa, pb)
        expected = max(np.percentile(pairwise.min(axis=1), 95), np.percentile(pairwise.min(axis=0), 95))
        assert segm.hd95(a, b, spacing) == pytest.approx(expected)
