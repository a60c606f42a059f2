"""Ablation-history trainers: the rows of ``docs/training-recipe.md``, kept so that they can be reproduced.

Not variants to choose for a model (those are :mod:`nnunet_phyjoint.training.variants`): each one
reruns one row of the recipe's ablation rounds against the default of its time.

- round 2 (loss and deep supervision, measured before the head-prior init became the default):
  ``_noPhyAug_batchDice`` (R1), ``_noPhyAug_dsHalving`` (R2);
- round 3 (learning rates and the heads' init): ``_newLr1e3`` (the recipe before it: the new layers
  at the encoder's lr 1e-3, row 0), ``_headFanIn`` (row 1), ``_prior05`` (row 2), ``_newLr3e3`` (row 3),
  ``_lr3e3`` (row 4), ``_lr1e2`` (row 6), ``_lr3e3_newLr1e2`` (row 7).

nnU-Net finds them through ``trainers/ablation_trainers.py``; the benchmark's equal-budget versions
(``budget_variants``) include them, so ``phyjoint benchmark --arms headFanIn`` and the like keep working.
"""
from __future__ import annotations

from nnunet_phyjoint.training.phyjoint_trainer import PhyJointTrainer
from nnunet_phyjoint.training.variants import PhyJointTrainer_noPhyAug

__all__ = [
    "PhyJointTrainer_noPhyAug_batchDice", "PhyJointTrainer_noPhyAug_dsHalving",
    "PhyJointTrainer_newLr1e3", "PhyJointTrainer_headFanIn", "PhyJointTrainer_prior05", "PhyJointTrainer_newLr3e3",
    "PhyJointTrainer_lr3e3", "PhyJointTrainer_lr1e2", "PhyJointTrainer_lr3e3_newLr1e2",
]


class PhyJointTrainer_noPhyAug_batchDice(PhyJointTrainer_noPhyAug):
    """Ablation of the recipe (docs/training-recipe.md, E15): soft Dice over the whole batch (nnU-Net's 2d default).

    Measured before the head-prior init became the default, so it keeps PyTorch's default head init.
    """

    batch_dice = True
    seg_head_prior = None


class PhyJointTrainer_noPhyAug_dsHalving(PhyJointTrainer_noPhyAug):
    """Ablation of the recipe (E16): nnU-Net's halving deep-supervision weights on the nested outputs, final first.

    Measured before the head-prior init became the default, so it keeps PyTorch's default head init.
    """

    deep_supervision_weighting = "halving"
    seg_head_prior = None


class PhyJointTrainer_newLr1e3(PhyJointTrainer):
    """Ablation: CBAM, decoder and heads at the encoder's lr 1e-3 instead of 1e-2 (the default before 2026-12-03)."""

    new_layers_learning_rate = None


class PhyJointTrainer_headFanIn(PhyJointTrainer_newLr1e3):
    """Ablation of the lr-1e-3 recipe: prior-initialised heads with weights at 1/sqrt(fan_in) instead of std 0.01."""

    seg_head_weight_std = None


class PhyJointTrainer_prior05(PhyJointTrainer_newLr1e3):
    """Ablation of the lr-1e-3 recipe: segmentation heads start at p(lesion) = 0.05 instead of 0.01."""

    seg_head_prior = 0.05


class PhyJointTrainer_newLr3e3(PhyJointTrainer):
    """Ablation: CBAM, decoder and heads at lr 3e-3 instead of 1e-2, the encoder at 1e-3."""

    new_layers_learning_rate = 3e-3


class PhyJointTrainer_lr3e3(PhyJointTrainer):
    """Ablation: lr 3e-3 for every parameter (encoder 1e-3, new layers 1e-2 by default)."""

    learning_rate = 3e-3
    new_layers_learning_rate = None


class PhyJointTrainer_lr1e2(PhyJointTrainer):
    """Ablation: lr 1e-2 for the encoder as well as the new layers (encoder 1e-3 by default)."""

    learning_rate = 1e-2


class PhyJointTrainer_lr3e3_newLr1e2(PhyJointTrainer):
    """Ablation: the encoder at lr 3e-3 instead of 1e-3 (new layers at 1e-2, as the default)."""

    learning_rate = 3e-3
