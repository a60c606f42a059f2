"""Building a PhyJointTrainer's loss, Eq. (6), from its training fold.

α·DiceFocal(mask, deep supervision) + (1-α)·weighted CE(class): class weights from the fold's class
frequencies, latent feature augmentation for the fold's minority classes, and the weights of the
deep-supervision outputs (UNet++'s equal weights on the nested layout, nnU-Net's halving otherwise).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from nnunet_phyjoint.metadata import CLASS_NAMES


def deep_supervision_weights(weighting: str, supervision: str, n: int,
                             ddp_without_compile: Callable[[], bool] = lambda: False) -> np.ndarray:
    """Loss weight of each deep-supervision output (highest resolution / deepest decoding first), summing to 1.

    ``weighting``: ``"equal"``, ``"halving"`` or ``"auto"`` (equal for the decoder's ``"nested"``
    ``supervision`` layout, halving otherwise). ``ddp_without_compile`` is asked only for halving
    (nnU-Net's check may log a line).
    """
    if weighting == "auto":
        weighting = "equal" if supervision == "nested" else "halving"
    if weighting == "equal":  # UNet++: every level-0 output is a full decoding path, averaged
        weights = np.ones(n)
    elif weighting == "halving":
        weights = np.array([1 / (2 ** i) for i in range(n)])
        # as nnU-Net: the coarsest output gets no weight (a tiny one under DDP without compile)
        weights[-1] = 1e-6 if ddp_without_compile() else 0
    else:
        raise ValueError(f"deep_supervision_weighting must be auto, equal or halving, got {weighting!r}")
    return weights / weights.sum()


def build_joint_loss(trainer):
    """The trainer's ``JointLoss``; sets ``trainer.class_weights`` and ``trainer.latent_augmentation``."""
    from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper

    from nnunet_phyjoint.latent_augmentation import LatentFeatureAugmentation, minority_classes_from_counts
    from nnunet_phyjoint.losses import DiceFocalLoss, JointLoss, balanced_class_weights

    labels = trainer._training_labels()
    counts = np.bincount(labels, minlength=len(CLASS_NAMES))
    trainer.class_weights = balanced_class_weights(labels, len(CLASS_NAMES))
    trainer.print_to_log_file(f"training fold class counts {dict(zip(CLASS_NAMES, counts.tolist()))}, class "
                              f"weights {np.round(trainer.class_weights.numpy(), 3).tolist()}, alpha {trainer.alpha}")
    if trainer.use_latent_augmentation:
        minority = minority_classes_from_counts(counts.tolist())
        trainer.latent_augmentation = LatentFeatureAugmentation(minority).to(trainer.device)
        trainer.print_to_log_file(f"latent feature augmentation for minority classes "
                                  f"{[CLASS_NAMES[c] for c in minority]}")

    batch_dice = trainer.configuration_manager.batch_dice if trainer.batch_dice is None else trainer.batch_dice
    seg_loss = DiceFocalLoss(batch_dice=batch_dice, gamma=trainer.focal_gamma, weight_dice=trainer.dice_weight,
                             weight_focal=trainer.focal_weight, ddp=trainer.is_ddp)
    trainer.print_to_log_file(f"segmentation loss: {trainer.dice_weight} x Dice (batch_dice {batch_dice}) + "
                              f"{trainer.focal_weight} x focal (gamma {trainer.focal_gamma})")
    if trainer.enable_deep_supervision:
        weights = trainer._deep_supervision_weights(len(trainer._get_deep_supervision_scales()))
        trainer.print_to_log_file(f"deep supervision ({trainer._bare_network().decoder.supervision} layout), "
                                  f"output weights {np.round(weights, 3).tolist()}")
        seg_loss = DeepSupervisionWrapper(seg_loss, weights)
    return JointLoss(seg_loss, trainer.class_weights, trainer.alpha).to(trainer.device)
