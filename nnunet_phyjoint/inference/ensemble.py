"""Average diagnosis probabilities of several prediction folders (beside nnUNetv2_ensemble)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from nnunet_phyjoint.inference.predictor import CLASSIFICATION_FILE


def ensemble_classifications(input_folders: list[str | Path], output_folder: str | Path) -> Path:
    """Mean class probabilities over folders that each hold ``classification.csv`` for the same cases."""
    from nnunet_phyjoint.evaluation.io import read_classification_csv, write_classification_csv

    tables = []
    for folder in input_folders:
        path = Path(folder) / CLASSIFICATION_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: predict with `phyjoint predict` to get class probabilities")
        tables.append((path, read_classification_csv(path)))
    reference_path, reference = tables[0]
    for path, table in tables[1:]:
        if set(table) != set(reference):
            diff = sorted(set(table) ^ set(reference))
            raise ValueError(f"{path} and {reference_path} hold different cases (e.g. {diff[:5]})")
    merged = {case: np.mean([t[case] for _, t in tables], axis=0) for case in sorted(reference)}
    out = Path(output_folder) / CLASSIFICATION_FILE
    write_classification_csv(out, merged)
    return out
