"""UNet++ decoder (Zhou et al., 2018): nested, densely connected skip pathways with deep supervision.

Node ``X[i][j]`` sits at encoder level ``i`` (stride ``reductions[i]``) after ``j`` decoding steps:
``X[i][0]`` is the encoder's feature map and

    X[i][j] = block(concat(X[i][0], ..., X[i][j-1], up(X[i+1][j-1])))

The deepest level holds the CBAM-refined features, first narrowed by a 3x3 "bridge" convolution
(at 1/32 resolution the cheapest place for capacity). Nested nodes use two depthwise-separable
conv blocks, the convolution EfficientNet itself is built from, which keeps the nodes at the
high-resolution levels cheap (see ``default_decoder_channels`` for the measured totals).
Deep supervision (``supervision``):

- ``"nested"`` (default, UNet++'s own definition): one 1x1 head on every level-0 node
  ``X[0][1] ... X[0][L-1]``, all upsampled (bilinear) to the input resolution and all supervised
  against the full-resolution mask. Every output is a complete decoding path of a different
  depth, so the outputs agree on what they predict and the deeper ones refine the shallower.
- ``"levels"`` (the layout of versions <= 0.1): the last node of each level, at strides
  1 (upsampled), 4, 8, 16. Measured to make the outputs fight each other (the full-resolution
  output predicting foreground everywhere while the coarse ones predicted 12 %), see
  ``docs/training-recipe.md``; kept so that old plans still load.

Without deep supervision both layouts give the same single output: the head of ``X[0][L-1]``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


SUPERVISION_LAYOUTS = ("nested", "levels")


def default_decoder_channels(encoder_channels: list[int], divisor: int = 2, minimum: int = 16) -> list[int]:
    """Decoder width per level: the encoder's width at that level divided by ``divisor`` (at least ``minimum``).

    The last entry is the bridge width at the deepest level. With efficientnet_b6 ([32, 40, 72, 200, 576])
    this gives [16, 20, 36, 100, 288], and the whole PhyJointNet at 256x256 has 41.20 M parameters and
    4.64 G multiply-accumulates (paper: 41.48 M, 4.56 G). The minimum of 16 matters for small encoders
    (efficientnet_lite0/b0: 16 instead of 8 channels at stride 2): the deepest level-0 node with 8
    channels was measured to die (every channel zero after the ReLU, its output constant "no lesion").
    """
    return [max(minimum, c // divisor) for c in encoder_channels]


def activation() -> nn.Module:
    """The decoder's nonlinearity: leaky ReLU (slope 0.01), as nnU-Net's own networks use.

    With plain ReLU, nodes of a few channels could die for good at lr 1e-3 (all outputs zero, no
    gradient); a leaky ReLU keeps a gradient, so a node can recover.
    """
    return nn.LeakyReLU(0.01, inplace=True)


class ConvBNAct(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
            nn.BatchNorm2d(out_channels),
            activation(),
        )


class SeparableConvBNAct(nn.Sequential):
    """3x3 depthwise conv -> BN -> leaky ReLU -> 1x1 pointwise conv -> BN -> leaky ReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, in_channels, 3, padding=1, groups=in_channels, bias=False),
            nn.BatchNorm2d(in_channels),
            activation(),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            activation(),
        )


class NestedNode(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(SeparableConvBNAct(in_channels, out_channels), SeparableConvBNAct(out_channels, out_channels))


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
        supervision: str = "nested",
    ) -> None:
        super().__init__()
        if supervision not in SUPERVISION_LAYOUTS:
            raise ValueError(f"supervision must be one of {SUPERVISION_LAYOUTS}, got {supervision!r}")
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
        self.supervision = supervision
        if supervision == "nested":
            self.output_strides: list[int] = [1] * (levels - 1)
        else:
            self.output_strides = [1] + [int(r) for r in encoder_reductions[1:levels - 1]]

        self.bridge = ConvBNAct(encoder_channels[-1], decoder_channels[-1])

        def width(i: int, j: int) -> int:
            return encoder_channels[i] if j == 0 and i < levels - 1 else decoder_channels[i]

        self.nodes = nn.ModuleDict()
        for j in range(1, levels):
            for i in range(levels - j):
                in_ch = width(i, 0) + (j - 1) * decoder_channels[i] + width(i + 1, j - 1)
                self.nodes[f"x{i}_{j}"] = NestedNode(in_ch, decoder_channels[i])
        # nested: head k reads X[0][L-1-k] (deepest decoding first); levels: head i reads level i's last node
        head_inputs = [decoder_channels[0]] * (levels - 1) if supervision == "nested" \
            else [decoder_channels[i] for i in range(levels - 1)]
        self.seg_heads = nn.ModuleList(nn.Conv2d(c, num_classes, 1) for c in head_inputs)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor | list[torch.Tensor]:
        if len(features) != self.levels:
            raise ValueError(f"expected {self.levels} feature maps, got {len(features)}")
        grid: list[list[torch.Tensor]] = [[f] for f in features[:-1]] + [[self.bridge(features[-1])]]
        for j in range(1, self.levels):
            for i in range(self.levels - j):
                skips = grid[i][:j]
                up = F.interpolate(grid[i + 1][j - 1], size=skips[0].shape[-2:], mode="nearest")
                grid[i].append(self.nodes[f"x{i}_{j}"](torch.cat([*skips, up], dim=1)))

        full = self._full_resolution(self.seg_heads[0](grid[0][-1]))
        if not self.deep_supervision:
            return full
        if self.supervision == "nested":
            # grid[0] = [X00, X01, ..., X0(L-1)]: head k reads X0(L-1-k)
            return [full] + [self._full_resolution(self.seg_heads[k](grid[0][self.levels - 1 - k]))
                             for k in range(1, self.levels - 1)]
        return [full] + [self.seg_heads[i](grid[i][-1]) for i in range(1, self.levels - 1)]

    def initialise_heads(self, foreground_prior: float, weight_std: float | None = 0.01) -> None:
        """Start every segmentation head at p(foreground) = ``foreground_prior`` (RetinaNet's prior init).

        The background-vs-foreground bias is log(prior / (1 - prior)). ``weight_std`` is the std of the
        head's weights: 0.01 as RetinaNet (whose 3x3 head over 256 channels has a fan-in of 2304, so
        its logits still vary ~0.5 per unit feature); ``None`` scales it to the head's own fan-in,
        1/sqrt(fan_in), which gives these 1x1 heads over 16-64 channels the same logit spread.
        """
        if not 0.0 < foreground_prior < 1.0:
            raise ValueError(f"foreground_prior must lie in (0, 1), got {foreground_prior}")
        if weight_std is not None and weight_std <= 0:
            raise ValueError(f"weight_std must be positive or None, got {weight_std}")
        bias = math.log(foreground_prior / (1.0 - foreground_prior))
        for head in self.seg_heads:
            fan_in = head.weight[0].numel()
            nn.init.normal_(head.weight, std=weight_std if weight_std is not None else fan_in ** -0.5)
            nn.init.zeros_(head.bias)
            with torch.no_grad():
                head.bias[1:] = bias

    def _full_resolution(self, logits: torch.Tensor) -> torch.Tensor:
        if self.input_reduction == 1:
            return logits
        size = (logits.shape[-2] * self.input_reduction, logits.shape[-1] * self.input_reduction)
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
