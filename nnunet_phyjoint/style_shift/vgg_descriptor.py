"""Frozen VGG-19 "physics descriptor": torchvision's VGG-19 features up to relu4_1.

Input mapping (our images are one-channel, z-scored per image by nnU-Net): each image is
min-max scaled to [0, 1] on its own (:func:`to_unit`), repeated to three channels and
normalised with the ImageNet mean/std that torchvision's VGG weights expect. The decoder
works in the same [0, 1] "display" domain, so :meth:`VGGDescriptor.forward_unit` takes
such images directly (and stays differentiable with respect to them).
"""
from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import torch
from torch import nn

# indices of relu1_1, relu2_1, relu3_1, relu4_1 in torchvision's vgg19().features
LAYER_INDICES: dict[str, int] = {"relu1_1": 1, "relu2_1": 6, "relu3_1": 11, "relu4_1": 20}
LAYER_NAMES: tuple[str, ...] = tuple(LAYER_INDICES)
RELU4_1_CHANNELS = 512
DOWNSAMPLING = 8  # relu4_1 sits after three 2x2 max-pools
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RANDOM_SEED = 0  # random weights are seeded so that a decoder fitted against them stays valid


def to_unit(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Per-image (and per-channel) min-max scaling of (B, C, H, W) to [0, 1]."""
    lo = x.amin(dim=(-2, -1), keepdim=True)
    hi = x.amax(dim=(-2, -1), keepdim=True)
    return (x - lo) / (hi - lo).clamp_min(eps)


def torchvision_cache_file() -> Path:
    """Where torch hub's standard cache keeps torchvision's VGG19_Weights.IMAGENET1K_V1."""
    from torchvision.models import VGG19_Weights

    url = VGG19_Weights.IMAGENET1K_V1.url
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]


def _features_up_to_relu4_1() -> nn.Sequential:
    from torchvision.models.vgg import cfgs, make_layers

    # make_layers builds only the convolutional trunk (no 120 M parameter classifier)
    full = make_layers(cfgs["E"], batch_norm=False)
    layers = list(full.children())[: LAYER_INDICES["relu4_1"] + 1]
    return nn.Sequential(*[nn.ReLU(inplace=False) if isinstance(m, nn.ReLU) else m for m in layers])


def _load_state(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"VGG-19 weights file {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a clear message beats a pickle traceback
        raise ValueError(f"cannot read VGG-19 weights from {path}: {e}") from e
    if not isinstance(state, dict):
        raise ValueError(f"{path} does not hold a state dict (got {type(state).__name__})")
    # accept a whole torchvision vgg19 state dict ("features.N.weight") or the trunk alone ("N.weight")
    if any(k.startswith("features.") for k in state):
        state = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
    return state


class VGGDescriptor(nn.Module):
    """Frozen VGG-19 trunk returning relu1_1, relu2_1, relu3_1 and relu4_1 activations.

    ``weights``: ``"auto"`` uses torchvision's ``VGG19_Weights.IMAGENET1K_V1`` only when the
    file is already in torch hub's cache (never downloads); a path loads that file
    (``weights_only=True``); ``None`` or a missing cache gives seeded random weights with a
    loud warning. The parameters never require gradients and the module stays in eval mode
    whatever its parent does.
    """

    def __init__(self, weights: str | Path | None = "auto") -> None:
        super().__init__()
        self.features = _features_up_to_relu4_1()
        self.weights_source = self._load(weights)
        for p in self.features.parameters():
            p.requires_grad_(False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.features.eval()

    def _load(self, weights: str | Path | None) -> str:
        if weights == "auto":
            cached = torchvision_cache_file()
            if cached.is_file():
                self._load_file(cached)
                return f"torchvision VGG19_Weights.IMAGENET1K_V1 ({cached})"
            reason = f"no cached torchvision VGG19 ImageNet weights at {cached}"
        elif weights is None:
            reason = "weights=None"
        else:
            path = Path(weights).expanduser().resolve()
            self._load_file(path)
            return f"file {path}"
        warnings.warn(
            f"!!! VGGDescriptor uses RANDOM weights ({reason}). The style shift will not carry "
            "ImageNet texture statistics; pass --vgg-weights FILE or place vgg19-dcbb9e9d.pth in "
            "torch hub's checkpoints cache for real use. !!!",
            RuntimeWarning,
            stacklevel=3,
        )
        self._init_random()
        return f"random (seed {RANDOM_SEED})"

    def _load_file(self, path: Path) -> None:
        state = _load_state(path)
        own = self.features.state_dict()
        missing = [k for k in own if k not in state]
        if missing:
            raise ValueError(f"{path} is not a VGG-19 state dict: missing {missing[:4]}")
        for k, v in own.items():
            if tuple(state[k].shape) != tuple(v.shape):
                raise ValueError(f"{path}: {k} has shape {tuple(state[k].shape)}, VGG-19 needs {tuple(v.shape)}")
        self.features.load_state_dict({k: state[k] for k in own})

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
        for k, v in sorted(self.features.state_dict().items()):
            h.update(k.encode())
            h.update(v.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
        return h.hexdigest()[:16]

    def train(self, mode: bool = True) -> "VGGDescriptor":
        super().train(mode)
        self.features.eval()  # frozen: dropout/bn-free, but keep the promise explicit
        return self

    def forward_unit(self, u: torch.Tensor) -> list[torch.Tensor]:
        """Activations for images already in [0, 1] (B, 1 or 3, H, W); differentiable in ``u``."""
        if u.ndim != 4 or u.shape[1] not in (1, 3):
            raise ValueError(f"expected (B, 1 or 3, H, W) images, got shape {tuple(u.shape)}")
        if u.shape[1] == 1:
            u = u.expand(-1, 3, -1, -1)
        x = (u - self.mean.to(u.dtype)) / self.std.to(u.dtype)
        out = []
        last = LAYER_INDICES["relu4_1"]
        wanted = set(LAYER_INDICES.values())
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in wanted:
                out.append(x)
            if i == last:
                break
        return out

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Activations for nnU-Net-normalised images (B, 1, H, W): min-max per image first."""
        return self.forward_unit(to_unit(x))
