"""A tiny nnU-Net-style network with a timm ``.encoder``, for the quantization/export tests.

It takes ``input_channels`` / ``num_classes`` / ``deep_supervision`` like nnU-Net's networks, so plans.json
can name it (``quant_standin_network.StandInSegNet``) and ``get_network_from_plans`` builds it.
"""
from __future__ import annotations

import timm
import torch
from torch import nn
from torch.nn import functional as F


class StandInSegNet(nn.Module):
    def __init__(self, input_channels: int, num_classes: int, deep_supervision: bool = False,
                 encoder_name: str = "efficientnet_b0", encoder_weights: str | None = None) -> None:
        super().__init__()
        self.encoder = timm.create_model(encoder_name, features_only=True, pretrained=False, in_chans=input_channels)
        if encoder_weights is not None:  # like PhyJointNet: an explicit pretrained file, read at construction
            from safetensors.torch import load_file

            self.encoder.load_state_dict(load_file(encoder_weights))
        channels = self.encoder.feature_info.channels()
        self.decoder = nn.Sequential(
            nn.Conv2d(channels[-1] + channels[-2], 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, num_classes, 1))
        self.deep_supervision = deep_supervision

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        *_, mid, deep = self.encoder(x)
        joined = torch.cat([mid, F.interpolate(deep, size=mid.shape[-2:], mode="nearest")], dim=1)
        logits = F.interpolate(self.decoder(joined), size=x.shape[-2:], mode="bilinear", align_corners=False)
        return [logits] if self.deep_supervision else logits
