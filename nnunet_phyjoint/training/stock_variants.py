"""Stock ``nnUNetTrainer`` with an epoch budget equal to the PhyJoint trainers' (for the benchmark).

``PhyJointTrainer`` counts one epoch as one pass over the training fold; stock nnU-Net counts
250 random batches. ``nnUNetTrainer_onePass`` keeps everything of the stock trainer (network,
loss, SGD, augmentation, sampling) and only sets the epoch length to one pass over the training
fold (``ceil(n_train / batch)`` iterations) and the per-epoch validation to one pass over the
validation fold, so that "N epochs" costs both methods the same number of images.

nnU-Net finds trainers by class *name* in the modules of ``nnUNet_extTrainer``, so every budget
in :data:`EPOCH_BUDGETS` exists as a module-level class ``nnUNetTrainer_onePass_{N}epochs``, and
every wall-clock budget in :data:`MINUTE_BUDGETS` as ``nnUNetTrainer_onePass_{M}min`` (training
time per fold; the epoch count is planned from the first epoch, see
:mod:`nnunet_phyjoint.training.wall_clock_budget`).
"""
from __future__ import annotations

import math

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunet_phyjoint.training.cpu_threads import limit_cpu_threads
from nnunet_phyjoint.training.wall_clock_budget import WallClockBudgetMixin

EPOCH_BUDGETS: tuple[int, ...] = (1, 2, 3, 5, 8, 10, 15, 20, 25, 30, 40, 50, 100, 200)
#: training minutes per fold that exist as trainer classes (``--minutes-per-fold``)
MINUTE_BUDGETS: tuple[int, ...] = (1, 2, 3, 5, 8, 10, 15, 20, 30, 45, 60, 90, 120)


def stock_trainer_name(epochs: int) -> str:
    """Class name of the stock one-pass trainer with ``epochs`` epochs."""
    return f"nnUNetTrainer_onePass_{int(epochs)}epochs"


def stock_minutes_trainer_name(minutes: int) -> str:
    """Class name of the stock one-pass trainer with a wall-clock budget of ``minutes`` per fold."""
    return f"nnUNetTrainer_onePass_{int(minutes)}min"


class nnUNetTrainer_onePass(nnUNetTrainer):
    """Stock nnU-Net; one epoch = one pass over the training fold, validation = one pass over the validation fold."""

    budget_epochs: int | None = None
    #: nnU-Net saves ``checkpoint_latest.pth`` every 50 epochs; a one-pass epoch of the stock network takes
    #: ~25 min of one CPU core on BUS-BRA, so a benchmark resumed with ``--c`` across sessions would restart
    #: from nothing. Saving after every epoch costs seconds and changes nothing about the training.
    checkpoint_every: int = 1

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        limit_cpu_threads(self.device)
        self.save_every = int(self.checkpoint_every)
        if self.budget_epochs is not None:
            self.num_epochs = int(self.budget_epochs)

    def get_dataloaders(self):
        loaders = super().get_dataloaders()
        tr_keys, val_keys = self.do_split()
        world = torch.distributed.get_world_size() if self.is_ddp else 1
        per_step = self.batch_size * world
        self.num_iterations_per_epoch = max(1, math.ceil(len(tr_keys) / per_step))
        self.num_val_iterations_per_epoch = max(1, math.ceil(len(val_keys) / per_step))
        self.print_to_log_file(f"one pass per epoch: {self.num_iterations_per_epoch} training and "
                               f"{self.num_val_iterations_per_epoch} validation iterations (batch size {self.batch_size})")
        return loaders


def _make(epochs: int) -> type:
    name = stock_trainer_name(epochs)
    return type(name, (nnUNetTrainer_onePass,), {
        "budget_epochs": epochs, "__module__": __name__, "__qualname__": name,
        "__doc__": f"Stock nnU-Net, {epochs} epochs of one pass over the training fold each.",
    })


def _make_minutes(minutes: int) -> type:
    name = stock_minutes_trainer_name(minutes)
    return type(name, (WallClockBudgetMixin, nnUNetTrainer_onePass), {
        "budget_minutes": minutes, "__module__": __name__, "__qualname__": name,
        "__doc__": f"Stock nnU-Net, one-pass epochs for {minutes} min of training per fold "
                   "(epoch count and LR schedule planned from the first epoch).",
    })


__all__ = ["EPOCH_BUDGETS", "MINUTE_BUDGETS", "stock_trainer_name", "stock_minutes_trainer_name",
           "nnUNetTrainer_onePass"]
for _n in EPOCH_BUDGETS:
    globals()[stock_trainer_name(_n)] = _make(_n)
    __all__.append(stock_trainer_name(_n))
for _n in MINUTE_BUDGETS:
    globals()[stock_minutes_trainer_name(_n)] = _make_minutes(_n)
    __all__.append(stock_minutes_trainer_name(_n))
del _n
