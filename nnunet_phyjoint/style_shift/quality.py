"""Does a style shift keep the anatomy and take on the reference's statistics? Two measurements.

- :func:`edge_correlation`: Pearson correlation of the smoothed gradient magnitude of the content
  and of the result, per image. Edges are where the anatomy is (tissue layers, lesion borders);
  speckle is smoothed away first so that a re-textured image is not penalised for new grain.
- :func:`statistics_shift`: per VGG layer (relu1_1 ... relu4_1), how far the result's channel
  mean and std vectors moved from the content's towards the reference's, as the fraction
  ``1 - |s(result) - s(reference)| / |s(content) - s(reference)|`` (0: still the content's
  statistics, 1: the reference's, measured with one and the same descriptor).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from nnunet_phyjoint.style_shift.adain import channel_mean_std
from nnunet_phyjoint.style_shift.vgg_descriptor import LAYER_NAMES, VGGDescriptor


def _gaussian_kernel(sigma: float) -> torch.Tensor:
    radius = max(1, int(round(3 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def edge_map(x: torch.Tensor, sigma: float = 1.5) -> torch.Tensor:
    """Gradient magnitude (Sobel) of the Gaussian-smoothed (B, 1, H, W) images."""
    k = _gaussian_kernel(sigma).to(x)
    r = k.numel() // 2
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
    x = F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1))
    sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=x.device, dtype=x.dtype)
    xp = F.pad(x, (1, 1, 1, 1), mode="replicate")
    gx = F.conv2d(xp, sobel.view(1, 1, 3, 3))
    gy = F.conv2d(xp, sobel.t().contiguous().view(1, 1, 3, 3))
    return torch.sqrt(gx ** 2 + gy ** 2 + 1e-12)


def pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image Pearson correlation of two (B, ...) batches."""
    a = a.flatten(1) - a.flatten(1).mean(1, keepdim=True)
    b = b.flatten(1) - b.flatten(1).mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-12)


def edge_correlation(content: torch.Tensor, result: torch.Tensor, sigma: float = 1.5) -> torch.Tensor:
    """(B,) correlation of the edge maps of content and result (both (B, 1, H, W))."""
    return pearson(edge_map(content.float(), sigma), edge_map(result.float(), sigma))


@torch.no_grad()
def statistics_shift(vgg: VGGDescriptor, content_u: torch.Tensor, reference_u: torch.Tensor,
                     result_u: torch.Tensor) -> dict[str, dict[str, float]]:
    """Per layer, the mean over images of the fraction moved towards the reference, for channel mean and std.

    Inputs are [0, 1] images (B, 1, H, W); reference i belongs to content i.
    """
    out: dict[str, dict[str, float]] = {}
    feats = [vgg.forward_unit(x) for x in (content_u, reference_u, result_u)]
    for name, fc, fr, fo in zip(LAYER_NAMES, *feats):
        row = {}
        for which, (c, r, o) in zip(("mean", "std"), zip(*(channel_mean_std(f, eps=0.0) for f in (fc, fr, fo)))):
            gap = (c - r).flatten(1).norm(dim=1).clamp_min(1e-12)
            left = (o - r).flatten(1).norm(dim=1)
            row[which] = float((1 - left / gap).mean())
        out[name] = row
    return out
