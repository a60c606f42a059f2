"""Equal wall-clock budget: train for M minutes, with the LR schedule planned to end at the budget.

nnU-Net's ``run_training`` iterates ``for epoch in range(self.current_epoch, self.num_epochs)``,
with the range computed once, so lowering ``num_epochs`` during training does not shorten the
loop. :class:`WallClockBudgetMixin` therefore

1. starts with a very large ``num_epochs`` (the first epoch's learning rate is the initial one for
   any ``max_steps``),
2. after the first epoch fixes the planned epoch count ``N = max(1, round(budget / first_epoch_seconds))``
   (the count whose planned time is nearest the budget, so every arm trains within half an epoch of
   it: rounding down would give an arm with 170 s epochs one epoch, 57 % of a 5-minute budget, and one
   with 50 s epochs 98 %) and sets both ``self.num_epochs`` and the LR scheduler's ``max_steps`` to N
   (nnU-Net's ``PolyLRScheduler`` and our ``GroupPolyLRScheduler`` both have it), so the polynomial
   decay ends at the budget,
3. raises :class:`StopTraining` from ``on_epoch_end`` when the N epochs are done, or earlier when
   the training time so far plus the last epoch's duration would exceed the budget by more than
   half the first epoch (epochs slowed down after the plan); its
   ``run_training`` catches it and calls ``on_train_end`` (``checkpoint_final.pth``; nnU-Net's
   ``nnUNetv2_train`` entry then runs the final validation as usual).

"Training time" is the sum of nnU-Net's logged epoch durations (``epoch_end_timestamps -
epoch_start_timestamps``: the training pass and the per-epoch validation pass), the same quantity
the benchmark table reports as training minutes. Process start-up, ``on_train_start`` (data
unpacking, PhyJoint's one-off style-decoder fit) and the final validation are not counted.

Resuming (``nnUNetv2_train ... --c``) needs no state of its own: the epoch timestamps are in every
checkpoint's logging history, so the plan is recomputed from the logged first epoch and the time
already spent is the sum of the logged durations.

The module imports nothing of nnU-Net (torch only when a trainer is built), so that
``phyjoint_trainer`` can share :class:`StopTraining`.
"""
from __future__ import annotations

import math
from typing import Sequence

#: ``num_epochs`` before the plan exists; large enough never to end the loop by itself
UNPLANNED_NUM_EPOCHS = 100_000


class StopTraining(Exception):
    """Raised from ``on_epoch_end`` to leave nnU-Net's epoch loop (wall-clock budget or early stopping)."""


def plan_epochs(budget_seconds: float, first_epoch_seconds: float) -> int:
    """Epochs whose time at the first epoch's pace is nearest the budget: ``max(1, round(budget / first))``.

    Halves round up (1.5 -> 2), so a plan never falls short of the budget by more than half an epoch.
    """
    if budget_seconds <= 0:
        raise ValueError(f"budget must be positive, got {budget_seconds} s")
    if not math.isfinite(first_epoch_seconds):
        return 1
    first = max(float(first_epoch_seconds), 1e-6)
    return int(min(UNPLANNED_NUM_EPOCHS, max(1, math.floor(budget_seconds / first + 0.5))))


def epoch_durations(starts: Sequence[float], ends: Sequence[float]) -> list[float]:
    """Seconds of every finished epoch (pairs of logged start and end timestamps)."""
    return [float(e) - float(s) for s, e in zip(starts, ends)]


def stop_reason(budget_seconds: float, planned_epochs: int, durations: Sequence[float]) -> str | None:
    """Why training stops after the epochs in ``durations`` (None: go on).

    Stops when ``planned_epochs`` epochs are done, or when the time spent plus the last epoch's
    duration (the estimate of the next one) would exceed the budget by more than half the first
    epoch, the most a plan made at the first epoch's pace overshoots (epochs got slower since).
    """
    done = len(durations)
    if done >= planned_epochs:
        return f"the {planned_epochs} planned epochs are done"
    if done == 0:
        return None
    spent = float(sum(durations))
    if spent + float(durations[-1]) > budget_seconds + 0.5 * float(durations[0]):
        return (f"{spent / 60:.2f} min spent; another epoch (~{durations[-1]:.1f} s) would exceed the "
                f"{budget_seconds / 60:g} min budget by more than half an epoch")
    return None


class WallClockBudgetMixin:
    """Put before an nnU-Net trainer class: ``type(name, (WallClockBudgetMixin, Base), {"budget_minutes": M})``."""

    budget_minutes: float | None = None

    # nnU-Net records the constructor's arguments by inspecting this signature (``my_init_kwargs``): keep its names
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict, device=None):
        import torch

        super().__init__(plans, configuration, fold, dataset_json, torch.device("cuda") if device is None else device)
        if self.budget_minutes is None:
            raise TypeError(f"{type(self).__name__}: budget_minutes is not set")
        self.planned_epochs: int | None = None
        self.num_epochs = UNPLANNED_NUM_EPOCHS

    @property
    def budget_seconds(self) -> float:
        return float(self.budget_minutes) * 60.0

    # ------------------------------------------------------------------ the plan
    def _logged_durations(self) -> list[float]:
        return epoch_durations(self.logger.get_value("epoch_start_timestamps", step=None),
                               self.logger.get_value("epoch_end_timestamps", step=None))

    def _agree(self, value):
        """Rank 0's value on every rank (DDP), so that all ranks plan and stop together."""
        if not getattr(self, "is_ddp", False):
            return value
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def _set_plan(self, planned: int, first_epoch_seconds: float, resumed: bool = False) -> None:
        self.planned_epochs = int(planned)
        self.num_epochs = self.planned_epochs
        scheduler = getattr(self, "lr_scheduler", None)
        if scheduler is not None and hasattr(scheduler, "max_steps"):
            scheduler.max_steps = self.planned_epochs
        self.print_to_log_file(
            f"wall-clock budget {self.budget_minutes:g} min: first epoch {first_epoch_seconds:.1f} s -> "
            f"{self.planned_epochs} epochs" + (" (recomputed from the checkpoint's log on resume)" if resumed else ""))

    def _plan_from_history(self, resumed: bool) -> None:
        durations = self._logged_durations()
        if self.planned_epochs is None and durations:
            self._set_plan(self._agree(plan_epochs(self.budget_seconds, durations[0])), durations[0], resumed)

    # ------------------------------------------------------------------ nnU-Net hooks
    def load_checkpoint(self, filename_or_checkpoint) -> None:
        super().load_checkpoint(filename_or_checkpoint)
        self.planned_epochs = None
        self.num_epochs = UNPLANNED_NUM_EPOCHS
        self._plan_from_history(resumed=True)
        durations = self._logged_durations()
        if self.planned_epochs is not None:
            reason = stop_reason(self.budget_seconds, self.planned_epochs, durations)
            if reason is not None:
                # nothing left to train: an empty epoch loop, then on_train_end as nnU-Net does it
                self.num_epochs = min(self.num_epochs, self.current_epoch)
                self.print_to_log_file(f"wall-clock budget: nothing left to train on resume ({reason})")

    def on_epoch_end(self):
        super().on_epoch_end()  # increments current_epoch (and may raise the base trainer's StopTraining)
        self._plan_from_history(resumed=False)
        if self.planned_epochs is None:
            return
        reason = self._agree(stop_reason(self.budget_seconds, self.planned_epochs, self._logged_durations()))
        if reason is not None:
            spent = sum(self._logged_durations())
            self.print_to_log_file(f"wall-clock budget {self.budget_minutes:g} min: stopping after "
                                   f"{self.current_epoch} epochs, {spent / 60:.2f} min of training ({reason})")
            raise StopTraining(reason)

    def run_training(self):
        try:
            super().run_training()
        except StopTraining:
            self.on_train_end()


__all__ = ["StopTraining", "UNPLANNED_NUM_EPOCHS", "WallClockBudgetMixin", "epoch_durations", "plan_epochs",
           "stop_reason"]
