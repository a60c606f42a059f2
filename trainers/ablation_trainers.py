"""Thin module for nnU-Net's trainer search: the ablation-history trainers of docs/training-recipe.md."""
from nnunet_phyjoint.training.ablation_variants import *  # noqa: F401,F403
