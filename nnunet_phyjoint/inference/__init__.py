"""Class-aware inference and ensembling on top of nnU-Net's predictor."""
