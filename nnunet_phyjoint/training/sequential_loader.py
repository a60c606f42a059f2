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


def ordered_validation_loader(trainer, dataset_val) -> SequentialDataLoader:
    """The trainer's validation fold (this rank's share under DDP) as a :class:`SequentialDataLoader`.

    Same patch size, label handling and validation transforms as nnU-Net's validation loader.
    """
    if trainer.is_ddp:
        import torch.distributed as dist

        keys = sorted(dataset_val.identifiers)[dist.get_rank()::dist.get_world_size()]
        dataset_val = trainer.dataset_class(trainer.preprocessed_dataset_folder, keys)
    labels = trainer.label_manager
    val_transforms = trainer.get_validation_transforms(
        trainer._get_deep_supervision_scales(), is_cascaded=trainer.is_cascaded,
        foreground_labels=labels.foreground_labels,
        regions=labels.foreground_regions if labels.has_regions else None,
        ignore_label=labels.ignore_label)
    return SequentialDataLoader(dataset_val, trainer.batch_size, trainer.configuration_manager.patch_size,
                                trainer.configuration_manager.patch_size, labels,
                                oversample_foreground_percent=0.0, transforms=val_transforms)
