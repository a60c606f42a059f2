"""Thin module for nnU-Net's trainer search: equal-budget stock and PhyJoint trainers (``phyjoint benchmark``)."""
from nnunet_phyjoint.training.budget_variants import *  # noqa: F401,F403
from nnunet_phyjoint.training.stock_variants import *  # noqa: F401,F403
