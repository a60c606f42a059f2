"""The folder ``nnUNet_extTrainer`` names (installed as ``nnunet_phyjoint.trainers``; see ``phyjoint env``).

nnU-Net imports each module here as a top-level module and looks up trainer classes by name; this
file only makes the folder a package so that a wheel ships it (nnU-Net's search skips ``__init__``).
"""
