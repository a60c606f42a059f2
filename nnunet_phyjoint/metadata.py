"""Per-case metadata (diagnosis class, patient, scanner) carried inside nnU-Net's dataset.json.

nnU-Net copies ``dataset.json`` verbatim into the preprocessed and results folders, so extra
keys there reach every stage (trainer, predictor, evaluation) without side files. Everything
of ours lives under the single key ``"phyjoint"``::

    "phyjoint": {
        "format_version": 1,
        "class_names": ["normal", "benign", "malignant"],
        "source": "precise",
        "cases": {
            "PACE_00002_001_BUSBRA": {
                "class": "benign", "patient": "00002", "scanner": "BUSBRA",
                "source_files": ["benign/PACE_00002_001_BUSBRA.png", "..._mask.png"],
                "doppler": false, "duplicate_group": null
            }
        }
    }
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

CLASS_NAMES: tuple[str, ...] = ("normal", "benign", "malignant")
METADATA_KEY = "phyjoint"
FORMAT_VERSION = 1


@dataclass
class CaseMeta:
    """What we know about one case beyond its pixels."""

    case_id: str
    label: str  # one of CLASS_NAMES, or "unknown" for unlabeled test images
    patient: str
    scanner: str
    source_files: list[str] = field(default_factory=list)
    doppler: bool = False
    duplicate_group: str | None = None

    @property
    def class_index(self) -> int:
        """Index of the label in CLASS_NAMES (raises for unknown labels)."""
        return class_index(self.label)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("case_id")
        d["class"] = d.pop("label")
        return d


def class_index(label: str) -> int:
    """Index of ``label`` in :data:`CLASS_NAMES`; a clear error for anything else."""
    try:
        return CLASS_NAMES.index(label)
    except ValueError:
        raise ValueError(f"unknown diagnosis class {label!r}; expected one of {CLASS_NAMES}") from None


def metadata_block(cases: Mapping[str, CaseMeta] | list[CaseMeta], source: str) -> dict[str, Any]:
    """The ``"phyjoint"`` entry of dataset.json for these cases."""
    items = cases.values() if isinstance(cases, Mapping) else cases
    return {
        "format_version": FORMAT_VERSION,
        "class_names": list(CLASS_NAMES),
        "source": source,
        "cases": {c.case_id: c.to_json() for c in sorted(items, key=lambda c: c.case_id)},
    }


def _as_dict(dataset_json: Mapping[str, Any] | str | Path) -> Mapping[str, Any]:
    if isinstance(dataset_json, (str, Path)):
        with open(dataset_json) as f:
            return json.load(f)
    return dataset_json


def load_case_metadata(dataset_json: Mapping[str, Any] | str | Path) -> dict[str, CaseMeta]:
    """Case id -> :class:`CaseMeta` from a dataset.json (dict or path).

    Raises ``KeyError`` with an explanation when the dataset was not written by our converters.
    """
    dj = _as_dict(dataset_json)
    if METADATA_KEY not in dj:
        where = f" ({dataset_json})" if isinstance(dataset_json, (str, Path)) else ""
        raise KeyError(
            f"dataset.json{where} has no '{METADATA_KEY}' entry: convert the dataset with "
            "`phyjoint convert` so that every case carries its class, patient and scanner"
        )
    block = dj[METADATA_KEY]
    if tuple(block.get("class_names", CLASS_NAMES)) != CLASS_NAMES:
        raise ValueError(f"dataset.json class_names {block.get('class_names')} differ from {CLASS_NAMES}")
    out = {}
    for cid, d in block["cases"].items():
        out[cid] = CaseMeta(
            case_id=cid,
            label=d["class"],
            patient=str(d["patient"]),
            scanner=str(d["scanner"]),
            source_files=list(d.get("source_files", [])),
            doppler=bool(d.get("doppler", False)),
            duplicate_group=d.get("duplicate_group"),
        )
    return out


def class_labels(dataset_json: Mapping[str, Any] | str | Path) -> dict[str, int]:
    """Case id -> class index, for the cases that have a known class."""
    return {cid: m.class_index for cid, m in load_case_metadata(dataset_json).items() if m.label in CLASS_NAMES}
