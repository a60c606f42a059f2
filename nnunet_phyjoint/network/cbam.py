"""Convolutional Block Attention Module (Woo et al., 2018): channel attention, then spatial attention."""
from __future__ import annotations

import torch
from torch import nn


class ChannelAttention(nn.Module):
    """``M_c(z) = sigmoid(MLP(avgpool(z)) + MLP(maxpool(z)))``, one weight per channel, shape (B, C, 1, 1)."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        avg = self.mlp(z.mean(dim=(2, 3)))
        mx = self.mlp(z.amax(dim=(2, 3)))
        return torch.sigmoid(avg + mx)[:, :, None, None]


class SpatialAttention(nn.Module):
    """``M_s(z) = sigmoid(conv7x7([mean_c(z), max_c(z)]))``, one weight per position, shape (B, 1, H, W)."""

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([z.mean(dim=1, keepdim=True), z.amax(dim=1, keepdim=True)], dim=1)
        return torch.sigmoid(self.conv(pooled))


class CBAM(nn.Module):
    """``z' = M_c(z) * z``, then ``z'' = M_s(z') * z'`` (paper Eq. 4); shape preserved."""

    def __init__(self, channels: int, reduction: int = 16, spatial_kernel: int = 7) -> None:
        super().__init__()
        self.channel_attention = ChannelAttention(channels, reduction)
        self.spatial_attention = SpatialAttention(spatial_kernel)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        z = z * self.channel_attention(z)
        return z * self.spatial_attention(z)
