"""The training budget of every benchmark arm: N epochs (``--epochs``) or M minutes per fold (``--minutes-per-fold``).

A budget maps a base trainer to the class nnU-Net trains (trainer classes exist by name for a
fixed set of budgets, see :mod:`nnunet_phyjoint.training.stock_variants` and
:mod:`nnunet_phyjoint.training.budget_variants`):

==========================  ==================================  =====================
budget                      stock (``nnUNetTrainer_onePass``)   PhyJoint base ``B``
==========================  ==================================  =====================
``--epochs N``              ``nnUNetTrainer_onePass_{N}epochs`` ``{B}_{N}ep``
``--minutes-per-fold M``    ``nnUNetTrainer_onePass_{M}min``    ``{B}_{M}min``
==========================  ==================================  =====================
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

EPOCHS = "epochs"
MINUTES = "minutes"


@dataclass(frozen=True)
class Budget:
    """``kind`` is ``"epochs"`` or ``"minutes"`` (training minutes per fold); ``value`` a positive int."""

    kind: str
    value: int

    def __post_init__(self) -> None:
        if self.kind not in (EPOCHS, MINUTES):
            raise ValueError(f"budget kind must be {EPOCHS!r} or {MINUTES!r}, got {self.kind!r}")
        if int(self.value) != self.value or self.value < 1:
            raise ValueError(f"budget must be a positive integer, got {self.value!r}")

    @classmethod
    def epochs(cls, n: int) -> "Budget":
        return cls(EPOCHS, int(n))

    @classmethod
    def minutes(cls, m: int) -> "Budget":
        return cls(MINUTES, int(m))

    @property
    def is_epochs(self) -> bool:
        return self.kind == EPOCHS

    @property
    def suffix(self) -> str:
        """Class-name suffix of the PhyJoint trainers (``_5ep``, ``_10min``)."""
        return f"_{self.value}ep" if self.is_epochs else f"_{self.value}min"

    @property
    def stock_suffix(self) -> str:
        """Class-name suffix of the stock one-pass trainer (``_5epochs``, ``_10min``)."""
        return f"_{self.value}epochs" if self.is_epochs else f"_{self.value}min"

    def trainer_name(self, base: str, stock: bool) -> str:
        """Class name of ``base`` with this budget."""
        return f"{base}{self.stock_suffix if stock else self.suffix}"

    @property
    def label(self) -> str:
        """Short form: ``"5 epochs"``, ``"10 min/fold"``."""
        return f"{self.value} epochs" if self.is_epochs else f"{self.value} min/fold"

    @property
    def option(self) -> str:
        """The command-line option that selects it."""
        return f"--epochs {self.value}" if self.is_epochs else f"--minutes-per-fold {self.value}"

    def describe(self) -> str:
        """One sentence for reports."""
        if self.is_epochs:
            return f"equal epochs: {self.value} epochs of one pass over the training fold for every arm"
        return (f"equal wall-clock: {self.value} min of training per fold for every arm (sum of logged epoch "
                "durations, training + per-epoch validation; epoch count and LR decay planned from the first "
                "epoch's duration; start-up and final validation not counted)")

    def allowed(self) -> tuple[int, ...]:
        """The budgets of this kind that exist as trainer classes."""
        from nnunet_phyjoint.training.stock_variants import EPOCH_BUDGETS, MINUTE_BUDGETS

        return EPOCH_BUDGETS if self.is_epochs else MINUTE_BUDGETS

    def validate(self) -> "Budget":
        """``self``, or ValueError when no trainer classes exist for it."""
        allowed = self.allowed()
        if self.value not in allowed:
            raise ValueError(f"{self.option} has no equal-budget trainer classes; choose one of "
                             f"{', '.join(map(str, allowed))} (see nnunet_phyjoint/training/stock_variants.py)")
        return self

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "value": self.value, "label": self.label, "description": self.describe()}


BudgetLike = Union[Budget, int]


def as_budget(budget: BudgetLike) -> Budget:
    """A :class:`Budget`; a bare int means epochs (the historical signature)."""
    if isinstance(budget, Budget):
        return budget
    if isinstance(budget, bool) or not isinstance(budget, int):
        raise TypeError(f"expected a Budget or an epoch count, got {budget!r}")
    return Budget.epochs(budget)
