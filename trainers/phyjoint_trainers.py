"""Thin module for nnU-Net's trainer search (``nnUNet_extTrainer`` points at this folder).

The classes live in the installed ``nnunet_phyjoint`` package; nnU-Net finds them here by name.
"""
from nnunet_phyjoint.training.phyjoint_trainer import PhyJointTrainer  # noqa: F401
from nnunet_phyjoint.training.variants import *  # noqa: F401,F403
