"""Adaptive instance normalisation, Eq. (2) of the PhyJointNet paper (Huang & Belongie 2017).

    x~ = sigma(f(x_j)) * (f(x_i) - mu(f(x_i))) / sigma(f(x_i)) + mu(f(x_j))

mu and sigma are per-channel statistics over the spatial dimensions (population standard
deviation). ``eps`` is added to the content variance only, where it guards the division, so
the result carries the style's statistics exactly up to a relative eps / (2 var(content)).
A flat content channel cannot gain a spread: it maps to mu of the style.
"""
from __future__ import annotations

import torch


def channel_mean_std(feat: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Channel-wise mean and std over space of (B, C, H, W), each shaped (B, C, 1, 1)."""
    if feat.ndim != 4:
        raise ValueError(f"expected (B, C, H, W) features, got shape {tuple(feat.shape)}")
    var, mean = torch.var_mean(feat, dim=(2, 3), keepdim=True, correction=0)
    return mean, (var + eps).sqrt()


def adain_with_stats(
    content_feat: torch.Tensor,
    style_mean: torch.Tensor,
    style_std: torch.Tensor,
    alpha: float | torch.Tensor = 1.0,
    eps: float = 1e-5,
) -> torch.Tensor:
    """Eq. (2) with precomputed style statistics (B, C, 1, 1), blended with the content by ``alpha``.

    ``alpha`` may be a tensor broadcastable to the features (e.g. (B, 1, 1, 1), one per sample).
    """
    c_mean, c_std = channel_mean_std(content_feat, eps)
    stylised = style_std * (content_feat - c_mean) / c_std + style_mean
    if not isinstance(alpha, torch.Tensor) and alpha == 1.0:
        return stylised
    return alpha * stylised + (1.0 - alpha) * content_feat


def adain(content_feat: torch.Tensor, style_feat: torch.Tensor, alpha: float = 1.0, eps: float = 1e-5) -> torch.Tensor:
    """``alpha * AdaIN(content, style) + (1 - alpha) * content`` for (B, C, H, W) features.

    The style features may have a different spatial size; their batch must match (or be 1).
    """
    if content_feat.shape[:2] != style_feat.shape[:2] and not (
        style_feat.shape[0] == 1 and content_feat.shape[1] == style_feat.shape[1]
    ):
        raise ValueError(f"content {tuple(content_feat.shape)} and style {tuple(style_feat.shape)} do not match")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    s_mean, s_std = channel_mean_std(style_feat, eps=0.0)
    return adain_with_stats(content_feat, s_mean, s_std, alpha, eps)
