"""Early stopping on the validation Dice history.

The state is derived from the logged per-epoch history, which nnU-Net stores in every
checkpoint: resuming with ``--c`` restores it without any state of its own.
"""
from __future__ import annotations

import math
import os
from typing import Mapping, Sequence

#: environment variable that overrides a trainer's patience; 0 turns early stopping off
PATIENCE_ENV = "PHYJOINT_EARLY_STOPPING_PATIENCE"


def best_epoch(history: Sequence[float]) -> int | None:
    """Epoch of the highest finite value (earliest on ties), or None when there is none."""
    best, best_value = None, -math.inf
    for epoch, value in enumerate(history):
        if value is not None and math.isfinite(value) and value > best_value:
            best, best_value = epoch, value
    return best


def is_new_best(history: Sequence[float]) -> bool:
    """Whether the last entry is a strict improvement over every earlier one."""
    return len(history) > 0 and best_epoch(history) == len(history) - 1


def should_stop(history: Sequence[float], patience: int) -> bool:
    """True once ``patience`` epochs have passed without improving on the best one."""
    if patience <= 0:
        return False
    b = best_epoch(history)
    last = len(history) - 1
    if b is None:
        return last + 1 >= patience
    return last - b >= patience


def patience_from_env(default: int, environ: Mapping[str, str] | None = None) -> int:
    """The trainer's patience, or :data:`PATIENCE_ENV`'s value (an integer >= 0; 0 = never stop early).

    The leave-one-scanner-out benchmark sets it to 0: its validation fold is the held-out scanner, and
    stopping on that scanner's Dice would tune the model on the scanner it is scored on.
    """
    raw = (os.environ if environ is None else environ).get(PATIENCE_ENV)
    if raw is None or raw.strip() == "":
        return int(default)
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise ValueError(f"{PATIENCE_ENV}={raw!r}: expected a whole number of epochs >= 0 (0 turns early stopping off)")
    return value
