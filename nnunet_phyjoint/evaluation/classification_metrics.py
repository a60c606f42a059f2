"""Diagnosis metrics (normal / benign / malignant) from scikit-learn.

Conventions:

- Benign vs malignant (:func:`benign_malignant_metrics`; BUS-BRA and other datasets without
  normal images): ``auc_malignant`` is the AUC of malignant against benign over the cases whose
  true class is benign or malignant, scored by ``p_malignant / (p_benign + p_malignant)`` (0.5 when
  both are 0), NaN when either class is absent; ``sensitivity`` is the fraction of the true
  malignant cases predicted malignant and ``specificity`` the fraction of the true benign cases
  *not* predicted malignant (a benign case called normal counts as a true negative), both at the
  predicted class (by default the argmax of the probabilities), NaN without such cases.

- F1 per class is 2TP / (2TP + FP + FN); it is NaN for a class that appears neither in the
  ground truth nor in the predictions, and the macro mean is over the defined classes.
- AUC is one-vs-rest per class from the class probability; it is NaN for a class absent
  from the ground truth (or present in every case), and the macro mean is over the
  classes where it is defined (the result lists which classes were left out).
"""
from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, roc_auc_score

from nnunet_phyjoint.metadata import CLASS_NAMES

N_CLASSES = len(CLASS_NAMES)


def one_vs_rest_auc(y_true: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """AUC of each class against the rest; NaN where the class is absent (or the only class) in ``y_true``."""
    y_true, probs = np.asarray(y_true), np.asarray(probs, dtype=np.float64)
    aucs = np.full(N_CLASSES, np.nan)
    for k in range(N_CLASSES):
        positives = y_true == k
        if positives.any() and not positives.all():
            aucs[k] = roc_auc_score(positives, probs[:, k])
    return aucs


def per_class_f1(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """F1 of each class in CLASS_NAMES order; NaN for a class neither true nor predicted anywhere."""
    return np.asarray(
        f1_score(y_true, y_pred, labels=list(range(N_CLASSES)), average=None, zero_division=np.nan),
        dtype=np.float64,
    )


def scalar_metrics(y_true: np.ndarray, probs: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Accuracy, macro F1 and macro one-vs-rest AUC (the numbers that get confidence intervals)."""
    f1 = per_class_f1(y_true, y_pred)
    auc = one_vs_rest_auc(y_true, probs)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "f1_macro": _nanmean(f1),
        "auc_macro": _nanmean(auc),
    }


BENIGN, MALIGNANT = CLASS_NAMES.index("benign"), CLASS_NAMES.index("malignant")


def malignancy_score(probs: np.ndarray) -> np.ndarray:
    """``p_malignant / (p_benign + p_malignant)`` per case (0.5 where both are 0): malignant vs benign."""
    probs = np.asarray(probs, dtype=np.float64)
    pair = probs[:, BENIGN] + probs[:, MALIGNANT]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pair > 0, probs[:, MALIGNANT] / np.where(pair > 0, pair, 1.0), 0.5)


def benign_malignant_metrics(y_true: np.ndarray, probs: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """``auc_malignant``, ``sensitivity`` and ``specificity`` (malignant = positive; see the module's conventions).

    Cases whose true class is normal take no part. Separate from :func:`scalar_metrics`, which the
    trainer's per-epoch validation logs, so that its numbers and log lines stay what they were.
    """
    y_true, y_pred = np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)
    malignant, benign = y_true == MALIGNANT, y_true == BENIGN
    auc = float("nan")
    if malignant.any() and benign.any():
        both = malignant | benign
        auc = float(roc_auc_score(malignant[both], malignancy_score(probs)[both]))
    return {
        "auc_malignant": auc,
        "sensitivity": float(np.mean(y_pred[malignant] == MALIGNANT)) if malignant.any() else float("nan"),
        "specificity": float(np.mean(y_pred[benign] != MALIGNANT)) if benign.any() else float("nan"),
    }


def classification_metrics(y_true: np.ndarray, probs: np.ndarray, y_pred: np.ndarray | None = None) -> dict:
    """Point estimates: scalars (also benign vs malignant), per-class F1 and AUC, confusion matrix
    (rows = truth), notes.

    ``y_pred`` defaults to the argmax of ``probs``.
    """
    y_true = np.asarray(y_true, dtype=int)
    probs = np.asarray(probs, dtype=np.float64)
    if probs.shape != (len(y_true), N_CLASSES):
        raise ValueError(f"expected probabilities of shape ({len(y_true)}, {N_CLASSES}), got {probs.shape}")
    y_pred = probs.argmax(axis=1) if y_pred is None else np.asarray(y_pred, dtype=int)
    f1 = per_class_f1(y_true, y_pred)
    auc = one_vs_rest_auc(y_true, probs)
    absent = [CLASS_NAMES[k] for k in range(N_CLASSES) if not np.any(y_true == k)]
    notes = []
    if absent:
        notes.append(
            f"class(es) {', '.join(absent)} absent from the ground truth: their AUC is undefined (NaN) "
            "and the macro AUC is the mean over the classes present"
        )
    undefined_f1 = [CLASS_NAMES[k] for k in range(N_CLASSES) if np.isnan(f1[k])]
    if undefined_f1:
        notes.append(f"F1 undefined for {', '.join(undefined_f1)} (neither true nor predicted): left out of macro F1")
    return {
        "n_cases": int(len(y_true)),
        **scalar_metrics(y_true, probs, y_pred),
        **benign_malignant_metrics(y_true, probs, y_pred),
        "f1_per_class": dict(zip(CLASS_NAMES, f1.tolist())),
        "auc_per_class": dict(zip(CLASS_NAMES, auc.tolist())),
        "support": {c: int(np.sum(y_true == k)) for k, c in enumerate(CLASS_NAMES)},
        "classes_absent_from_gt": absent,
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=list(range(N_CLASSES))).tolist(),
        "notes": notes,
    }


def weighted_scalar_metrics(
    y_true: np.ndarray, probs: np.ndarray, y_pred: np.ndarray, weights: np.ndarray
) -> dict[str, np.ndarray]:
    """Accuracy, macro F1, macro OvR AUC and the benign-vs-malignant ``auc_malignant``, ``sensitivity``
    and ``specificity`` for every row of per-case ``weights`` (B, n) at once.

    With integer weights (bootstrap counts) each row equals :func:`scalar_metrics` and
    :func:`benign_malignant_metrics` on the cases repeated that many times, with the same NaN
    conventions; the tests check this
    against scikit-learn. It exists because calling scikit-learn once per bootstrap resample
    is the bottleneck of an evaluation.
    """
    y_true, y_pred = np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)
    probs = np.asarray(probs, dtype=np.float64)
    weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    # Weighted confusion matrices: each case adds its weight to cell (true, predicted).
    cell = np.zeros((len(y_true), N_CLASSES * N_CLASSES))
    cell[np.arange(len(y_true)), y_true * N_CLASSES + y_pred] = 1.0
    cm = (weights @ cell).reshape(-1, N_CLASSES, N_CLASSES)
    tp = np.diagonal(cm, axis1=1, axis2=2)
    fp, fn = cm.sum(axis=1) - tp, cm.sum(axis=2) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = tp.sum(axis=1) / cm.sum(axis=(1, 2))
        f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan)
    auc = np.stack([_weighted_auc(y_true == k, probs[:, k], weights) for k in range(N_CLASSES)], axis=1)
    # Benign vs malignant: the AUC over the benign and malignant cases only (normal cases weigh 0);
    # sensitivity and specificity from the confusion matrix (specificity: benign not called malignant).
    both = (y_true == BENIGN) | (y_true == MALIGNANT)
    auc_malignant = _weighted_auc(y_true == MALIGNANT, malignancy_score(probs), weights * both)
    malignant_cases, benign_cases = cm[:, MALIGNANT, :].sum(axis=1), cm[:, BENIGN, :].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        sensitivity = np.where(malignant_cases > 0, cm[:, MALIGNANT, MALIGNANT] / malignant_cases, np.nan)
        specificity = np.where(benign_cases > 0, (benign_cases - cm[:, BENIGN, MALIGNANT]) / benign_cases, np.nan)
    return {"accuracy": accuracy, "f1_macro": _row_nanmean(f1), "auc_macro": _row_nanmean(auc),
            "auc_malignant": auc_malignant, "sensitivity": sensitivity, "specificity": specificity}


def _weighted_auc(positive: np.ndarray, score: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Mann-Whitney AUC per weight row: P(score_pos > score_neg) + 0.5 P(tie); NaN without both kinds."""
    levels, level_of = np.unique(score, return_inverse=True)
    onehot = np.zeros((len(score), len(levels)))
    onehot[np.arange(len(score)), level_of] = 1.0
    pos = (weights * positive) @ onehot       # (B, levels): positive weight at each score level
    neg = (weights * ~positive) @ onehot
    neg_below = np.cumsum(neg, axis=1) - neg  # negative weight strictly below each level
    pairs = pos.sum(axis=1) * neg.sum(axis=1)
    wins = (pos * (neg_below + 0.5 * neg)).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pairs > 0, wins / np.where(pairs > 0, pairs, 1.0), np.nan)


def _row_nanmean(values: np.ndarray) -> np.ndarray:
    defined = np.isfinite(values)
    counts = defined.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, np.where(defined, values, 0.0).sum(axis=1) / np.maximum(counts, 1), np.nan)


def _nanmean(values: np.ndarray) -> float:
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else float("nan")

