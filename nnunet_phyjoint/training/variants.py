"""The PhyJointTrainer variants a user chooses from, one changed thing each (as nnU-Net's own ``variants/``).

- one default back to the paper's: ``_noPhyAug``, ``_noLatentAug``, ``_focal``, ``_lr1e4``,
  ``_noHeadPrior``, ``_noGating``; all of them at once: ``_paper``; ``_AdamW`` (32-bit AdamW);
- classic physics augmentations instead of the style shift: ``_physGain``, ``_physTGC``,
  ``_physSpeckle``, ``_physDynamicRange``, ``_physAll``;
- quantization-aware training of the encoder: ``_INT8``, ``_INT4``;
- short runs: ``_1epoch``, ``_3epochs``, ``_10epochs``, ``_30epochs``, ``_demo``.

The rows of ``docs/training-recipe.md``'s ablation history (``_noPhyAug_batchDice``, ``_headFanIn``,
``_newLr3e3`` …) are in :mod:`nnunet_phyjoint.training.ablation_variants`.
"""
from __future__ import annotations

import torch

from nnunet_phyjoint.training.phyjoint_trainer import PhyJointTrainer

__all__ = [
    "PhyJointTrainer_noLatentAug", "PhyJointTrainer_noPhyAug", "PhyJointTrainer_AdamW", "PhyJointTrainer_paper",
    "PhyJointTrainer_focal", "PhyJointTrainer_lr1e4", "PhyJointTrainer_noHeadPrior", "PhyJointTrainer_noGating",
    "PhyJointTrainer_physGain", "PhyJointTrainer_physTGC", "PhyJointTrainer_physSpeckle",
    "PhyJointTrainer_physDynamicRange", "PhyJointTrainer_physAll",
    "PhyJointTrainer_INT8", "PhyJointTrainer_INT4",
    "PhyJointTrainer_1epoch", "PhyJointTrainer_3epochs", "PhyJointTrainer_10epochs", "PhyJointTrainer_30epochs",
    "PhyJointTrainer_demo",
]


class PhyJointTrainer_noLatentAug(PhyJointTrainer):
    """Ablation: no latent feature augmentation."""

    use_latent_augmentation = False


class PhyJointTrainer_noPhyAug(PhyJointTrainer):
    """Ablation: no physics style shift (the paper's "Without PhyAug")."""

    style_shift_probability = 0.0


def _with_classic_physics(name: str, p: float = 0.3):
    def get_training_transforms(*args, **kwargs):
        from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

        from nnunet_phyjoint.physics_augmentations import classic_physics_transform

        pipeline = nnUNetTrainer.get_training_transforms(*args, **kwargs)
        # first, before the spatial transform pads with zeros (mid-grey after z-scoring, not "no echo")
        pipeline.transforms.insert(0, classic_physics_transform(name, p=p))
        return pipeline

    return staticmethod(get_training_transforms)


class _ClassicPhysics(PhyJointTrainer):
    """Comparison set of Fig. 3: a classic physics augmentation instead of the style shift."""

    style_shift_probability = 0.0


class PhyJointTrainer_physGain(_ClassicPhysics):
    """Classic physics augmentation instead of the style shift: random overall gain."""

    get_training_transforms = _with_classic_physics("gain")


class PhyJointTrainer_physTGC(_ClassicPhysics):
    """Classic physics augmentation instead of the style shift: random time-gain-compensation curve."""

    get_training_transforms = _with_classic_physics("tgc")


class PhyJointTrainer_physSpeckle(_ClassicPhysics):
    """Classic physics augmentation instead of the style shift: speckle re-synthesis."""

    get_training_transforms = _with_classic_physics("speckle")


class PhyJointTrainer_physDynamicRange(_ClassicPhysics):
    """Classic physics augmentation instead of the style shift: random displayed dynamic range."""

    get_training_transforms = _with_classic_physics("dynamic_range")


class PhyJointTrainer_physAll(_ClassicPhysics):
    """Classic physics augmentation instead of the style shift: gain, TGC, speckle and dynamic range in turn."""

    get_training_transforms = _with_classic_physics("all")


class PhyJointTrainer_AdamW(PhyJointTrainer):
    """torch's 32-bit AdamW instead of bitsandbytes' AdamW8bit."""

    optimizer_name = "adamw"


class PhyJointTrainer_paper(PhyJointTrainer):
    """The paper's literal recipe: AdamW8bit lr 1e-4, DiceFocal with gamma 2, default head init, raw (ungated) masks."""

    # kept so that the paper can be reproduced; docs/training-recipe.md measures why the default differs
    learning_rate = 1e-4
    new_layers_learning_rate = None  # the paper's one rate for every parameter
    focal_gamma = 2.0
    gate_normal_masks = False
    seg_head_prior = None


class PhyJointTrainer_focal(PhyJointTrainer):
    """Ablation: the paper's focal term (gamma 2) instead of gamma 0 (cross-entropy)."""

    focal_gamma = 2.0


class PhyJointTrainer_lr1e4(PhyJointTrainer):
    """Ablation: the paper's learning rate 1e-4 for every parameter."""

    learning_rate = 1e-4
    new_layers_learning_rate = None


class PhyJointTrainer_noHeadPrior(PhyJointTrainer):
    """Ablation: PyTorch's default init of the segmentation heads instead of p(lesion) = 0.01."""

    seg_head_prior = None


class PhyJointTrainer_noGating(PhyJointTrainer):
    """Ablation: raw masks in the final validation (no diagnosis gating of normal images)."""

    gate_normal_masks = False


def _with_quantized_encoder(bits: int):
    def build_network_architecture(plans_manager, configuration_manager, num_input_channels, num_output_channels,
                                   enable_deep_supervision: bool = True) -> torch.nn.Module:
        from nnunet_phyjoint.quantization.qat import prepare_qat

        network = PhyJointTrainer.build_network_architecture(plans_manager, configuration_manager,
                                                             num_input_channels, num_output_channels,
                                                             enable_deep_supervision)
        # fake-quantized encoder weights in training *and* when nnU-Net's predictor rebuilds the network
        prepare_qat(network.encoder, bits)
        return network

    return staticmethod(build_network_architecture)


class PhyJointTrainer_INT8(PhyJointTrainer):
    """Quantization-aware training: encoder conv/linear weights fake-quantized to INT8 (per channel)."""

    build_network_architecture = _with_quantized_encoder(8)


class PhyJointTrainer_INT4(PhyJointTrainer):
    """Quantization-aware training: encoder conv/linear weights fake-quantized to INT4 (per channel)."""

    build_network_architecture = _with_quantized_encoder(4)


class PhyJointTrainer_1epoch(PhyJointTrainer):
    max_epochs = 1
    style_fit_kwargs = {"steps": 10}


class PhyJointTrainer_3epochs(PhyJointTrainer):
    max_epochs = 3
    style_fit_kwargs = {"steps": 10}


class PhyJointTrainer_10epochs(PhyJointTrainer):
    max_epochs = 10


class PhyJointTrainer_30epochs(PhyJointTrainer):
    max_epochs = 30


class PhyJointTrainer_demo(PhyJointTrainer):
    """What `phyjoint demo` trains on 2 CPU cores: 20 epochs, patience 10, a short style-decoder fit.

    The fit is the CPU default (relu3_1, batch 4 at 128x128) with 100 steps at style weight 5 instead of
    the default's steps at 10 (docs/style-shift.md, "Fit steps"), a shorter fit that keeps the demo near 15 minutes.
    """

    max_epochs = 20
    style_fit_kwargs = {"steps": 100, "style_weight": 5}
