"""The evaluation's headline metrics per group of cases (a scanner, a cross-validation fold), each with a
bootstrap CI over that group's cases.

A multi-scanner dataset pooled into one number hides the scanner a model fails on, and cross-validation
folds pooled into one number hide a fold whose model failed (or whose classifier is calibrated unlike the
others, which lowers a pooled AUC). The statistics are the pooled evaluation's own (weighted means and AUCs
over resample counts); a group's cases are resampled on their own, so its interval reflects its own case
count, and a group scores exactly as its cases evaluated alone would.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np

from nnunet_phyjoint.evaluation.bootstrap import bootstrap_ci, ci_entry
from nnunet_phyjoint.metadata import METADATA_KEY

#: (key of the evaluation's statistic, label) reported per group
GROUP_METRICS = (("dsc_lesion_only", "DSC lesion-only"), ("jaccard_lesion_only", "Jaccard lesion-only"),
                 ("hd95_px", "HD95 px"), ("auc_malignant", "AUC malignant"),
                 ("sensitivity", "Sensitivity"), ("specificity", "Specificity"))

Statistic = Callable[[np.ndarray], Mapping[str, np.ndarray]]


def case_scanners(case_ids: Sequence[str], dataset_json: Mapping[str, Any] | None) -> list[str] | None:
    """Each case's scanner from the dataset.json metadata ("" where a case has none), or None when the
    metadata is absent or the cases come from fewer than two scanners (nothing to break down)."""
    if not dataset_json or METADATA_KEY not in dataset_json:
        return None
    cases = dataset_json[METADATA_KEY].get("cases", {})
    scanners = [str(cases.get(cid, {}).get("scanner", "")) for cid in case_ids]
    return scanners if len({s for s in scanners if s}) >= 2 else None


def _group_order(name: str) -> tuple[bool, int, str]:
    # fold names ("10" after "9") by value, scanner names alphabetically
    return (not name.isdigit(), int(name) if name.isdigit() else 0, name)


def scores_by_group(groups: Sequence[str], statistic_on: Callable[[np.ndarray], Statistic],
                    n_bootstrap: int = 1000, seed: int = 0) -> dict[str, dict[str, Any]]:
    """Per group (each case's group name, e.g. its scanner): its case count and every metric of
    :data:`GROUP_METRICS` as ``{"value", "ci_low", "ci_high"}`` (NaN where undefined, e.g. an AUC with one
    class only). Groups in sorted order, numbers (fold names) by value.

    ``statistic_on(indices)`` returns the evaluation's statistic restricted to those cases: a function
    of a ``(B, len(indices))`` count matrix. Cases without a group ("") are in none.
    """
    groups = np.asarray(groups, dtype=object)
    out: dict[str, dict[str, Any]] = {}
    for group in sorted({g for g in groups if g}, key=_group_order):
        idx = np.flatnonzero(groups == group)
        statistic = statistic_on(idx)
        point = statistic(np.ones((1, len(idx))))
        ci = bootstrap_ci(len(idx), statistic, n_bootstrap=n_bootstrap, seed=seed)
        entry: dict[str, Any] = {"n_cases": int(len(idx))}
        for key, _ in GROUP_METRICS:
            if key in point:
                entry[key] = ci_entry(float(np.asarray(point[key]).reshape(-1)[0]), ci, key)
        out[group] = entry
    return out
