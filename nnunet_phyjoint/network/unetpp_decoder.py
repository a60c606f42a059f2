"""UNet++ decoder (Zhou et al., 2018): nested, densely connected skip pathways with deep supervision.

Node ``X[i][j]`` sits at encoder level ``i`` (stride ``reductions[i]``) after ``j`` decoding steps:
``X[i][0]`` is the encoder's feature map and

    X[i][j] = block(concat(X[i][0], ..., X[i][j-1], up(X[i+1][j-1])))

The deepest level holds the CBAM-refined features, first narrowed by a 3x3 "bridge" convolution
(at 1/32 resolution the cheapest place for capacity). Nested nodes use two depthwise-separable
conv blocks, the convolution EfficientNet itself is built from, which keeps the nodes at the
high-resolution levels cheap (see ``default_decoder_channels`` for the measured totals).
Segmentation logits come from the last node of each level except the deepest; the shallowest one is
upsampled (bilinear) to the input resolution.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def default_decoder_channels(encoder_channels: list[int], divisor: int = 2, minimum: int = 8) -> list[int]:
    """Decoder width per level: the encoder's width at that level divided by ``divisor`` (at least ``minimum``).

    The last entry is the bridge width at the deepest level. With efficientnet_b6 ([32, 40, 72, 200, 576])
    this gives [16, 20, 36, 100, 288], and the whole PhyJointNet at 256x256 has 41.20 M parameters and
    4.64 G multiply-accumulates (paper: 41.48 M, 4.56 G).
    """
    return [max(minimum, c // divisor) for c in encoder_channels]


class ConvBNReLU(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class SeparableConvBNReLU(nn.Sequential):
    """3x3 depthwise conv -> BN -> ReLU -> 1x1 pointwise conv -> BN -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, in_channels, 3, padding=1, groups=in_channels, bias=False),
            nn.BatchNorm2d(in_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class NestedNode(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(SeparableConvBNReLU(in_channels, out_channels), SeparableConvBNReLU(out_channels, out_channels))


class UNetPlusPlusDecoder(nn.Module):
    """Decode encoder features (shallowest first, deepest already CBAM-refined) into segmentation logits.

    ``forward`` returns one (B, num_classes, H, W) tensor at input resolution, or, when
    ``self.deep_supervision`` is True (nnU-Net toggles this attribute), a list of logits at
    ``self.output_strides``, highest resolution first.
    """

    def __init__(
        self,
        encoder_channels: list[int],
        encoder_reductions: list[int],
        num_classes: int,
        deep_supervision: bool,
        decoder_channels: list[int] | None = None,
    ) -> None:
        super().__init__()
        levels = len(encoder_channels)
        if levels < 2 or len(encoder_reductions) != levels:
            raise ValueError(f"need >= 2 encoder levels with one reduction each, got {encoder_channels} / "
                             f"{encoder_reductions}")
        decoder_channels = list(decoder_channels or default_decoder_channels(encoder_channels))
        if len(decoder_channels) != levels:
            raise ValueError(f"decoder_channels needs one width per encoder level ({levels}), got {decoder_channels}")
        self.levels = levels
        self.deep_supervision = deep_supervision
        self.decoder_channels = decoder_channels
        self.input_reduction = encoder_reductions[0]
        self.output_strides: list[int] = [1] + [int(r) for r in encoder_reductions[1:levels - 1]]

        self.bridge = ConvBNReLU(encoder_channels[-1], decoder_channels[-1])

        def width(i: int, j: int) -> int:
            return encoder_channels[i] if j == 0 and i < levels - 1 else decoder_channels[i]

        self.nodes = nn.ModuleDict()
        for j in range(1, levels):
            for i in range(levels - j):
                in_ch = width(i, 0) + (j - 1) * decoder_channels[i] + width(i + 1, j - 1)
                self.nodes[f"x{i}_{j}"] = NestedNode(in_ch, decoder_channels[i])
        self.seg_heads = nn.ModuleList(
            nn.Conv2d(decoder_channels[i], num_classes, 1) for i in range(levels - 1)
        )

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor | list[torch.Tensor]:
        if len(features) != self.levels:
            raise ValueError(f"expected {self.levels} feature maps, got {len(features)}")
        grid: list[list[torch.Tensor]] = [[f] for f in features[:-1]] + [[self.bridge(features[-1])]]
        for j in range(1, self.levels):
            for i in range(self.levels - j):
                skips = grid[i][:j]
                up = F.interpolate(grid[i + 1][j - 1], size=skips[0].shape[-2:], mode="nearest")
                grid[i].append(self.nodes[f"x{i}_{j}"](torch.cat([*skips, up], dim=1)))

        last = grid[0][-1]
        full = self.seg_heads[0](last)
        if self.input_reduction != 1:
            size = (last.shape[-2] * self.input_reduction, last.shape[-1] * self.input_reduction)
            full = F.interpolate(full, size=size, mode="bilinear", align_corners=False)
        if not self.deep_supervision:
            return full
        return [full] + [self.seg_heads[i](grid[i][-1]) for i in range(1, self.levels - 1)]
