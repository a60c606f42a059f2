"""PhyJointTrainer variants, one changed thing each (as nnU-Net's own ``variants/``)."""
from __future__ import annotations

import torch

from nnunet_phyjoint.training.phyjoint_trainer import PhyJointTrainer

__all__ = [
    "PhyJointTrainer_noLatentAug", "PhyJointTrainer_AdamW",
    "PhyJointTrainer_INT8", "PhyJointTrainer_INT4",
    "PhyJointTrainer_1epoch", "PhyJointTrainer_3epochs", "PhyJointTrainer_10epochs", "PhyJointTrainer_30epochs",
    "PhyJointTrainer_demo",
]


class PhyJointTrainer_noLatentAug(PhyJointTrainer):
    """Ablation: no latent feature augmentation."""

    use_latent_augmentation = False


class PhyJointTrainer_AdamW(PhyJointTrainer):
    """torch's 32-bit AdamW instead of bitsandbytes' AdamW8bit."""

    optimizer_name = "adamw"


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


class PhyJointTrainer_3epochs(PhyJointTrainer):
    max_epochs = 3


class PhyJointTrainer_10epochs(PhyJointTrainer):
    max_epochs = 10


class PhyJointTrainer_30epochs(PhyJointTrainer):
    max_epochs = 30


class PhyJointTrainer_demo(PhyJointTrainer):
    """What `phyjoint demo` trains on 2 CPU cores: 25 epochs, patience 10."""

    max_epochs = 25
