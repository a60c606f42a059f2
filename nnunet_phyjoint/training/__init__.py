"""PhyJointTrainer and its parts, composed through nnU-Net's trainer hooks."""
