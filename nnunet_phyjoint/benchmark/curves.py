"""Learning curves of the benchmark arms from nnU-Net's text training logs (no checkpoint unpickling).

Every ``nnUNetv2_train`` run writes ``fold_X/training_log_<date>.txt``. Per epoch it contains
``Epoch N``, ``Pseudo dice [...]`` (nnU-Net's per-epoch validation Dice; for the stock trainer a
global Dice over randomly sampled validation patches), ``Epoch time: S s`` and, for PhyJoint
trainers, ``val (K cases): Dice [...], diagnosis accuracy A, macro F1 F, macro AUC U`` (a global
Dice and the diagnosis metrics over one full pass over the validation fold).

A fold may have several logs (a resumed run starts a new one; the final validation and helper
processes write logs without epochs): they are read in time order and a later log's entry for an
epoch replaces an earlier one. Minutes are the cumulative logged epoch durations, the quantity the
table's training minutes and the wall-clock budget count.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

_TIMESTAMP = re.compile(r"^\d{4}-\d{1,2}-\d{1,2} \d{1,2}:\d{2}:\d{2}(?:\.\d+)?: ?")
_EPOCH = re.compile(r"^Epoch (\d+)\s*$")
_EPOCH_TIME = re.compile(r"^Epoch time: ([0-9.eE+-]+) s")
_PSEUDO = re.compile(r"^Pseudo dice (\[.*\])")
_VAL = re.compile(r"^val \((\d+) cases\): Dice (\[.*?\])(.*)$")
_NAMED = re.compile(r"(accuracy|macro F1|macro AUC) (nan|[-+]?\d*\.?\d+(?:[eE][-+]?\d+)?)")
_NP_SCALAR = re.compile(r"np\.(?:float|int)\d*\(([^)]*)\)")
_LOG_NAME = re.compile(r"training_log_(\d+)_(\d+)_(\d+)_(\d+)_(\d+)_(\d+)\.txt$")


def parse_float_list(text: str) -> list[float]:
    """``[np.float64(0.19), nan]`` or ``[0.19, 0.2]`` -> floats (``nan`` kept)."""
    inner = _NP_SCALAR.sub(r"\1", text.strip()).strip("[] ")
    out = []
    for part in inner.split(","):
        part = part.strip()
        if part:
            try:
                out.append(float(part))
            except ValueError:
                out.append(float("nan"))
    return out


def _mean(values: Sequence[float]) -> float:
    finite = [v for v in values if v is not None and not math.isnan(v)]
    return float(sum(finite) / len(finite)) if finite else float("nan")


def parse_training_log(text: str) -> dict[int, dict[str, Any]]:
    """Epoch -> ``{dice, dice_source, pseudo_dice, val_dice, macro_f1, macro_auc, accuracy, epoch_seconds}``.

    ``dice`` is the mean foreground Dice of the full validation pass (``val ... Dice``) when the
    trainer logs one, else nnU-Net's pseudo Dice; ``dice_source`` says which. Epochs without an
    ``Epoch time`` line (interrupted) are left out.
    """
    epochs: dict[int, dict[str, Any]] = {}
    current: dict[str, Any] | None = None
    for raw in text.splitlines():
        line = _TIMESTAMP.sub("", raw.strip()).strip()
        if m := _EPOCH.match(line):
            current = {"epoch": int(m.group(1))}
            continue
        if current is None:
            continue
        if m := _VAL.match(line):
            current["val_cases"] = int(m.group(1))
            current["val_dice"] = _mean(parse_float_list(m.group(2)))
            for key, value in _NAMED.findall(m.group(3)):
                current[{"accuracy": "accuracy", "macro F1": "macro_f1", "macro AUC": "macro_auc"}[key]] = float(value)
        elif m := _PSEUDO.match(line):
            current["pseudo_dice"] = _mean(parse_float_list(m.group(1)))
        elif m := _EPOCH_TIME.match(line):
            current["epoch_seconds"] = float(m.group(1))
            if "val_dice" in current:
                current["dice"], current["dice_source"] = current["val_dice"], "full validation pass"
            elif "pseudo_dice" in current:
                current["dice"], current["dice_source"] = current["pseudo_dice"], "pseudo Dice"
            epochs[current["epoch"]] = current
            current = None
    return epochs


def _log_order(path: Path) -> tuple:
    m = _LOG_NAME.search(path.name)  # nnU-Net's names are not zero-padded: sort by the numbers
    return (tuple(int(g) for g in m.groups()) if m else (10 ** 9,), path.name)


def fold_curve(fold_dir: str | Path) -> list[dict[str, Any]]:
    """One fold's epochs in order (all its training logs merged), with cumulative ``minutes``."""
    merged: dict[int, dict[str, Any]] = {}
    for log in sorted(Path(fold_dir).glob("training_log_*.txt"), key=_log_order):
        merged.update(parse_training_log(log.read_text(errors="replace")))
    rows, total = [], 0.0
    for epoch in range(len(merged)):  # contiguous from epoch 0
        if epoch not in merged:
            break
        row = dict(merged[epoch])
        total += row["epoch_seconds"]
        row["minutes"] = total / 60.0
        rows.append(row)
    return rows


def mean_curve(curves: Sequence[Sequence[Mapping[str, Any]]]) -> dict[str, list]:
    """Epoch-wise mean over folds, up to the shortest fold: ``{epoch, minutes, dice, macro_f1}`` lists."""
    curves = [c for c in curves if c]
    n = min((len(c) for c in curves), default=0)
    out: dict[str, list] = {"epoch": [], "minutes": [], "dice": [], "macro_f1": []}
    for i in range(n):
        out["epoch"].append(i)
        for key in ("minutes", "dice", "macro_f1"):
            out[key].append(_mean([c[i].get(key, float("nan")) for c in curves]))
    return out


def arm_curves(model_folder: str | Path, folds: Iterable[int]) -> dict[str, Any]:
    """An arm's curve: the mean over ``folds`` (up to the shortest) plus each fold's length and Dice source."""
    per_fold = {int(f): fold_curve(Path(model_folder) / f"fold_{f}") for f in folds}
    mean = mean_curve(list(per_fold.values()))
    sources = sorted({r.get("dice_source") for c in per_fold.values() for r in c if r.get("dice_source")})
    return {**mean, "folds": sorted(per_fold), "epochs_per_fold": {f: len(c) for f, c in per_fold.items()},
            "dice_source": sources[0] if len(sources) == 1 else ", ".join(sources) or None}


LEARNING_CURVE_CAPTION = (
    "Validation Dice and macro F1 per epoch and per minute of training (cumulative logged epoch durations), "
    "mean over folds up to the shortest fold. The Dice are not the same measurement: stock nnU-Net's per-epoch "
    "Dice is its 'pseudo Dice', a global Dice over randomly sampled validation patches (one pass worth of "
    "batches, foreground-oversampled); PhyJoint's is the global Dice over one full pass over the validation "
    "fold. Stock nnU-Net has no diagnosis head (no F1 curve). Final scores are in the table."
)
