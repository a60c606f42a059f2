"""Evaluation: segmentation and diagnosis metrics with bootstrap CIs, reports, figures, challenge export.

Names are imported lazily so that light users (the predictor writing ``classification.csv``
through :mod:`.io`) do not pay for scikit-learn and scipy.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "evaluate_folders": "folder_evaluation",
    "format_summary_table": "report",
    "summary_rows": "report",
    "read_classification_csv": "io",
    "write_classification_csv": "io",
    "export_submission": "submission",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
