"""PhyJointTrainer variants, one changed attribute each (as nnU-Net's own ``variants/``)."""
from __future__ import annotations

from nnunet_phyjoint.training.phyjoint_trainer import PhyJointTrainer

__all__ = [
    "PhyJointTrainer_noLatentAug",
    "PhyJointTrainer_1epoch", "PhyJointTrainer_3epochs", "PhyJointTrainer_10epochs", "PhyJointTrainer_30epochs",
]


class PhyJointTrainer_noLatentAug(PhyJointTrainer):
    """Ablation: no latent feature augmentation."""

    use_latent_augmentation = False


class PhyJointTrainer_1epoch(PhyJointTrainer):
    max_epochs = 1


class PhyJointTrainer_3epochs(PhyJointTrainer):
    max_epochs = 3


class PhyJointTrainer_10epochs(PhyJointTrainer):
    max_epochs = 10


class PhyJointTrainer_30epochs(PhyJointTrainer):
    max_epochs = 30
