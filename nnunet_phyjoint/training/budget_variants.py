"""Equal-budget (fixed epoch count) versions of every PhyJoint trainer, for the benchmark.

For each *base* PhyJoint trainer (``PhyJointTrainer`` and every subclass in
``nnunet_phyjoint.training`` that changes more than the epoch count: ablations, INT8/INT4, AdamW,
and the physics style-shift variants as soon as their module is importable) and each budget N in
:data:`EPOCH_BUDGETS`, a module-level class ``f"{base}_{N}ep"`` sets ``max_epochs = N`` and
nothing else; for each wall-clock budget M in :data:`MINUTE_BUDGETS`, ``f"{base}_{M}min"`` trains
for M minutes per fold (:class:`~nnunet_phyjoint.training.wall_clock_budget.WallClockBudgetMixin`:
epoch count and LR schedule planned from the first epoch). Early stopping (patience 10) stays what
it is in the base trainer.

Bases are found at import, so a variant added later gets its budget classes without editing this file.
"""
from __future__ import annotations

import importlib
import pkgutil
import warnings

from nnunet_phyjoint.training.phyjoint_trainer import PhyJointTrainer
from nnunet_phyjoint.training.stock_variants import EPOCH_BUDGETS, MINUTE_BUDGETS
from nnunet_phyjoint.training.wall_clock_budget import WallClockBudgetMixin

# attributes a subclass may set and still be "the same method with another length"
_LENGTH_ONLY_ATTRIBUTES = {"max_epochs", "early_stopping_patience", "checkpoint_every", "style_fit_kwargs"}
_OWN_MODULES = {__name__, "nnunet_phyjoint.training.stock_variants"}


def budget_trainer_name(base: str, epochs: int) -> str:
    """Class name of the ``epochs``-epoch version of PhyJoint trainer ``base``."""
    return f"{base}_{int(epochs)}ep"


def minutes_trainer_name(base: str, minutes: int) -> str:
    """Class name of the ``minutes``-per-fold wall-clock version of PhyJoint trainer ``base``."""
    return f"{base}_{int(minutes)}min"


def _import_training_modules() -> None:
    import nnunet_phyjoint.training as training

    for info in pkgutil.iter_modules(training.__path__):
        name = f"{training.__name__}.{info.name}"
        if name in _OWN_MODULES:
            continue
        try:
            importlib.import_module(name)
        except ImportError as e:  # a half-finished variant module must not hide all the others
            warnings.warn(f"budget variants: cannot import {name} ({e}); its trainers get no budget versions")


def _all_subclasses(cls: type) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_all_subclasses(sub))
    return out


def is_length_only_variant(cls: type) -> bool:
    """True for subclasses that only change the training length (``PhyJointTrainer_10epochs``, ``_demo``)."""
    own = {k for k in vars(cls) if not (k.startswith("__") and k.endswith("__"))}
    return cls is not PhyJointTrainer and own <= _LENGTH_ONLY_ATTRIBUTES


def find_base_trainers() -> list[type]:
    """PhyJointTrainer and its public, method-changing subclasses defined in ``nnunet_phyjoint``, sorted by name."""
    _import_training_modules()
    found = {PhyJointTrainer.__name__: PhyJointTrainer}
    for cls in _all_subclasses(PhyJointTrainer):
        if cls.__module__ in _OWN_MODULES or not cls.__module__.startswith("nnunet_phyjoint."):
            continue
        if cls.__name__.startswith("_") or is_length_only_variant(cls) or cls.__name__ in found:
            continue
        found[cls.__name__] = cls
    return [found[k] for k in sorted(found)]


def _make(base: type, epochs: int) -> type:
    name = budget_trainer_name(base.__name__, epochs)
    return type(name, (base,), {
        "max_epochs": epochs, "__module__": __name__, "__qualname__": name,
        "__doc__": f"{base.__name__} with at most {epochs} epochs (one pass over the training fold each).",
    })


def _make_minutes(base: type, minutes: int) -> type:
    name = minutes_trainer_name(base.__name__, minutes)
    return type(name, (WallClockBudgetMixin, base), {
        "budget_minutes": minutes, "__module__": __name__, "__qualname__": name,
        "__doc__": f"{base.__name__} for {minutes} min of training per fold (epoch count and LR schedule "
                   "planned from the first epoch; early stopping kept).",
    })


_BASES = find_base_trainers()  # once: it imports every training module and walks the subclass tree
BASE_TRAINERS: tuple[str, ...] = tuple(cls.__name__ for cls in _BASES)
__all__ = ["EPOCH_BUDGETS", "MINUTE_BUDGETS", "BASE_TRAINERS", "budget_trainer_name", "minutes_trainer_name",
           "find_base_trainers", "is_length_only_variant"]
for _base in _BASES:
    for _n in EPOCH_BUDGETS:
        globals()[budget_trainer_name(_base.__name__, _n)] = _make(_base, _n)
        __all__.append(budget_trainer_name(_base.__name__, _n))
    for _n in MINUTE_BUDGETS:
        globals()[minutes_trainer_name(_base.__name__, _n)] = _make_minutes(_base, _n)
        __all__.append(minutes_trainer_name(_base.__name__, _n))
del _base, _n
