"""A validation data loader that walks the validation fold in order, once per epoch.

nnU-Net's loader draws cases at random with replacement, which is fine for a pseudo Dice but
not for per-epoch accuracy, F1 and AUC, where every case should count exactly once.
"""
from __future__ import annotations

from nnunetv2.training.dataloading.data_loader import nnUNetDataLoader


class SequentialDataLoader(nnUNetDataLoader):
    """Yields the cases in sorted order; the last batch of a pass wraps around.

    Batches always hold ``batch_size`` samples (nnU-Net preallocates them); consumers drop the
    repeated keys of the wrapped batch. Call :meth:`restart` at the start of each pass.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.order = sorted(self.indices)
        self.cursor = 0

    def restart(self) -> None:
        self.cursor = 0

    def batches_per_pass(self) -> int:
        return -(-len(self.order) // self.batch_size)

    def get_indices(self):
        n = len(self.order)
        keys = [self.order[(self.cursor + i) % n] for i in range(self.batch_size)]
        self.cursor = (self.cursor + self.batch_size) % n
        return keys
