"""Diagnosis head: global average pooling of the refined deepest features, then a small MLP."""
from __future__ import annotations

import torch
from torch import nn


class ClassificationHead(nn.Module):
    """GAP -> Linear -> ReLU -> Dropout -> Linear: (B, C, h, w) features to (B, num_classes) logits.

    Returns logits; softmax belongs to the loss / the predictor.
    """

    def __init__(self, in_channels: int, hidden: int = 256, num_classes: int = 3, dropout: float = 0.0) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.mlp = nn.Sequential(
            nn.Flatten(1),
            nn.Linear(in_channels, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.pool(z))
