"""AdaIN decoder: VGG-19 features of one layer back to a one-channel image in the [0, 1] display domain.

It mirrors VGG-19 up to its layer (Huang & Belongie 2017 use relu4_1; ``relu3_1`` and
``relu2_1`` give the same decoder without its deepest stages): 3x3 convolutions with reflection
padding, ReLU, nearest-neighbour 2x upsampling where VGG pools. The output has ONE channel
(our images are grey; a three-channel output would only be averaged). Channel widths are
VGG's times ``width`` (at least 8), so tests can use a slim decoder; the class default 0.25
keeps about 0.5 M parameters, the fits use ``defaults.DEFAULT_DECODER_WIDTH`` (0.5).

The features are multiplied by a stored ``input_scale`` (set by :meth:`StyleDecoder.calibrate`
before fitting) so that they reach the decoder with unit RMS: relu4_1 activations of random
VGG weights are ~100x smaller than ImageNet ones, and an uncalibrated decoder would spend
its whole fit learning that gain. Convolutions start with He initialisation and the output
bias at 0.5, the middle of the display range.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from nnunet_phyjoint.style_shift.vgg_descriptor import LAYER_CHANNELS, LAYER_POOLS, PAPER_LAYER, check_layer

# (VGG width, number of 3x3 convs) per stage, deepest first, as in the AdaIN decoder
_STAGES: tuple[tuple[int, int], ...] = ((256, 4), (128, 2), (64, 2))


@dataclass(frozen=True)
class DecoderConfig:
    """Everything needed to rebuild a decoder from its saved record."""

    in_channels: int = LAYER_CHANNELS[PAPER_LAYER]
    width: float = 0.25
    out_channels: int = 1
    layer: str = PAPER_LAYER  # records written before the layer option are relu4_1 decoders


def _conv(cin: int, cout: int, relu: bool = True) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, 3)]
    return layers + [nn.ReLU()] if relu else layers


class StyleDecoder(nn.Module):
    """Mirror of VGG-19 up to ``layer``: (B, C_layer, h, w) -> (B, out_channels, s*h, s*w), s = 2**pools.

    ``in_channels`` defaults to the layer's channel count (and must equal it when given).
    """

    def __init__(self, in_channels: int | None = None, width: float = 0.25, out_channels: int = 1,
                 layer: str = PAPER_LAYER) -> None:
        super().__init__()
        check_layer(layer)
        if width <= 0:
            raise ValueError(f"width must be positive, got {width}")
        in_channels = LAYER_CHANNELS[layer] if in_channels is None else int(in_channels)
        if in_channels != LAYER_CHANNELS[layer]:
            raise ValueError(f"{layer} has {LAYER_CHANNELS[layer]} channels, not {in_channels}")
        self.config = DecoderConfig(in_channels, float(width), out_channels, layer)
        stages = _STAGES[len(_STAGES) - LAYER_POOLS[layer]:]  # the deepest stages go with the deeper layers
        chans = [max(8, round(c * width)) for c, _ in stages]
        layers: list[nn.Module] = _conv(in_channels, chans[0])
        for stage, (c, (_, n_convs)) in enumerate(zip(chans, stages)):
            layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
            for _ in range(n_convs - 1):
                layers += _conv(c, c)
            if stage + 1 < len(chans):
                layers += _conv(c, chans[stage + 1])
        layers += _conv(chans[-1], out_channels, relu=False)
        self.net = nn.Sequential(*layers)
        self.register_buffer("input_scale", torch.ones(1))
        convs = [m for m in self.net if isinstance(m, nn.Conv2d)]
        for conv in convs[:-1]:
            nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
            nn.init.zeros_(conv.bias)
        nn.init.constant_(convs[-1].bias, 0.5)

    @torch.no_grad()
    def calibrate(self, feat: torch.Tensor) -> float:
        """Set ``input_scale`` so that ``feat`` (typical features of the layer) has unit RMS; returns it."""
        rms = float(feat.float().pow(2).mean().sqrt())
        if not rms > 0:
            raise ValueError("cannot calibrate the style decoder on all-zero features")
        self.input_scale.fill_(1.0 / rms)
        return 1.0 / rms

    @property
    def layer(self) -> str:
        return self.config.layer

    @classmethod
    def from_config(cls, config: dict) -> "StyleDecoder":
        return cls(**{k: config[k] for k in asdict(DecoderConfig()) if k in config})

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        return self.net(feat * self.input_scale)
