"""Per-epoch diagnosis metrics (accuracy, macro F1, one-vs-rest macro AUC) with scikit-learn."""
from __future__ import annotations

import math

import numpy as np


def diagnosis_metrics(y_true: np.ndarray, probabilities: np.ndarray, num_classes: int = 3) -> dict[str, float]:
    """Accuracy, macro F1 over all classes, and one-vs-rest macro AUC over the classes present.

    AUC is NaN when fewer than two classes occur in ``y_true`` (it is undefined there).
    """
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    y_true = np.asarray(y_true, dtype=int)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if y_true.size == 0:
        return {"accuracy": math.nan, "macro_f1": math.nan, "macro_auc": math.nan}
    y_pred = probabilities.argmax(1)
    out = {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=list(range(num_classes)), average="macro",
                                   zero_division=0)),
    }
    present = np.unique(y_true)
    if present.size < 2:
        out["macro_auc"] = math.nan
    else:
        aucs = [roc_auc_score(y_true == c, probabilities[:, c]) for c in present]
        out["macro_auc"] = float(np.mean(aucs))
    return out
