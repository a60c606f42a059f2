"""nnunet-phyjoint: PhyJointNet (joint lesion segmentation + diagnosis) as an nnU-Net v2 plugin."""

__version__ = "0.5.0"
