"""Shared encoder: any timm model built with ``features_only=True``, and loading its weights.

Channel counts and reductions come from timm's ``feature_info`` so that the decoder and heads never
hard-code them. Where pretrained weights come from (``"auto"``, ``"imagenet"``, a file, ``"none"``)
is decided by :mod:`nnunet_phyjoint.network.encoder_weights`: explicit file, local cache, timm's own
download, the offline registry package, random initialisation; one log line says which and why.
"""
from __future__ import annotations

import os

import torch
from torch import nn

from nnunet_phyjoint.encoders import CPU_ENCODER, DEFAULT_ENCODER  # noqa: F401  (re-exported)
from nnunet_phyjoint.network.encoder_state import (  # noqa: F401  (re-exported: weights-file helpers)
    find_cached_pretrained_weights, load_encoder_state, load_encoder_weights, pretrained_cfg, read_state_dict,
)
from nnunet_phyjoint.network.encoder_weights import resolve_encoder_weights


class TimmEncoder(nn.Module):
    """A timm feature extractor returning one feature map per stage, shallowest first.

    ``channels`` and ``reductions`` (stride of each map w.r.t. the input) are read from timm's
    ``feature_info``. ``weights``: ``"auto"`` (pretrained from the first source that has them, else
    random with a warning), ``"imagenet"`` (the same, but an error instead of random), ``None``/``"none"``
    (random) or a path to a ``.safetensors``/``.pth`` state dict. ``weights_source`` is the file loaded
    or ``"random"``; ``weights_resolution`` says which source and why the earlier ones failed.
    """

    def __init__(self, name: str, in_channels: int = 3, weights: str | os.PathLike | None = "auto") -> None:
        super().__init__()
        import timm

        self.name = name
        self.model = timm.create_model(name, features_only=True, in_chans=in_channels, pretrained=False)
        self.channels: list[int] = [int(c) for c in self.model.feature_info.channels()]
        self.reductions: list[int] = [int(r) for r in self.model.feature_info.reduction()]
        self.in_channels = in_channels
        self.weights_resolution = self._load_weights(weights)
        self.weights_source: str = self.weights_resolution.location or (
            "random" if not self.weights_resolution.pretrained else self.weights_resolution.description)

    @property
    def max_reduction(self) -> int:
        return max(self.reductions)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return list(self.model(x))

    @property
    def weights_report(self) -> str:
        """The one line about where the weights came from (for training logs)."""
        return self.weights_resolution.summary()

    def _load_weights(self, weights: str | os.PathLike | None):
        return resolve_encoder_weights(self, weights)
