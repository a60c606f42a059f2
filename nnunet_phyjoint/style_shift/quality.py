"""Does a style shift keep the anatomy and take on the reference's statistics? Two measurements.

- :func:`edge_correlation`: Pearson correlation of the smoothed gradient magnitude of the content
  and of the result, per image. Edges are where the anatomy is (tissue layers, lesion borders);
  speckle is smoothed away first so that a re-textured image is not penalised for new grain.
- :func:`statistics_shift`: per VGG layer (relu1_1 ... relu4_1), how far the result's channel
  mean and std vectors moved from the content's towards the reference's, as the fraction
  ``1 - |s(result) - s(reference)| / |s(content) - s(reference)|`` (0: still the content's
  statistics, 1: the reference's, measured with one and the same descriptor).
- :func:`measure_style_shift` / :func:`measure_held_out`: both, for an augmenter on held-out
  images (a fold's validation cases), with two yardsticks for the edge correlation: the
  "identity" decoding (the content's own features decoded, AdaIN alpha 0: the best a decoder
  keeps) and reference vs result (what a result that copied the reference would score).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F

from nnunet_phyjoint.style_shift.adain import channel_mean_std
from nnunet_phyjoint.style_shift.vgg_descriptor import LAYER_NAMES, VGGDescriptor, to_unit


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
                     result_u: torch.Tensor, layer: str = "relu4_1") -> dict[str, dict[str, float]]:
    """Per layer relu1_1 ... ``layer``, the mean over images of the fraction moved towards the reference,
    for channel mean and std.

    Inputs are [0, 1] images (B, 1, H, W); reference i belongs to content i.
    """
    out: dict[str, dict[str, float]] = {}
    feats = [vgg.forward_unit(x, layer) for x in (content_u, reference_u, result_u)]
    for name, fc, fr, fo in zip(LAYER_NAMES, *feats):
        row = {}
        for which, (c, r, o) in zip(("mean", "std"), zip(*(channel_mean_std(f, eps=0.0) for f in (fc, fr, fo)))):
            gap = (c - r).flatten(1).norm(dim=1).clamp_min(1e-12)
            left = (o - r).flatten(1).norm(dim=1)
            row[which] = float((1 - left / gap).mean())
        out[name] = row
    return out


def _mean_std(x: torch.Tensor) -> dict[str, float]:
    return {"mean": float(x.mean()), "std": float(x.std(correction=0))}


@torch.no_grad()
def measure_style_shift(augmenter, content: torch.Tensor, ref_ids: Sequence[str]) -> dict:
    """Edge correlations and statistics moves of ``augmenter`` on (B, 1, H, W) nnU-Net-normalised ``content``.

    ``ref_ids`` are references in ``augmenter.bank``, one per image. Every image is compared in
    the [0, 1] domain VGG sees (min-max per image). Returns ``edge`` (``content_result``,
    ``content_identity``, ``reference_result``; mean and std over images) and ``moved``
    (per layer relu1_1 ... relu4_1, the fraction of the way to the reference's channel mean/std).
    """
    shape = tuple(content.shape[-2:])
    reference = augmenter.bank.get_batch(ref_ids, shape, content.device)[:, :1]
    content_u, reference_u = to_unit(content.float()), to_unit(reference)
    result_u = to_unit(augmenter.restyle(content, ref_ids, alpha=1.0, normalise=False).float())
    identity_u = to_unit(augmenter.restyle(content, ref_ids, alpha=0.0, normalise=False).float())
    edge = {
        "content_result": _mean_std(edge_correlation(content_u, result_u)),
        "content_identity": _mean_std(edge_correlation(content_u, identity_u)),
        "reference_result": _mean_std(edge_correlation(reference_u, result_u)),
    }
    return {"n": int(content.shape[0]), "size": list(shape), "layer": augmenter.layer, "edge": edge,
            "moved": statistics_shift(augmenter.vgg, content_u, reference_u, result_u)}


def measure_held_out(augmenter, dataset: int | str | Path, plans: str = "PhyJointPlans", configuration: str = "2d",
                     fold: int = 0, n: int = 32, size: int = 128, seed: int = 0, progress: bool = False) -> dict:
    """:func:`measure_style_shift` on ``n`` validation cases of ``fold`` (square ``size`` crops), each with
    a reference from another scanner drawn from the augmenter's (training) bank."""
    import json

    from nnunet_phyjoint.style_shift.reference_bank import ReferenceBank, locate_preprocessed

    cfg = locate_preprocessed(dataset, plans, configuration)
    with open(cfg.dataset_folder / "splits_final.json") as f:
        val = sorted(str(k) for k in json.load(f)[fold]["val"])
    gen = torch.Generator().manual_seed(seed)
    picked = [val[i] for i in torch.randperm(len(val), generator=gen)[:n].tolist()]
    held_out = ReferenceBank.from_preprocessed(cfg.dataset_folder, plans, configuration, fold, picked, progress)
    refs = augmenter.bank.sample_references(picked, gen)
    device = next(augmenter.decoder.parameters()).device
    content = held_out.get_batch(picked, (size, size), device)[:, :1]
    return {**measure_style_shift(augmenter, content, refs), "cases": picked}


def format_measurement(m: dict) -> str:
    """Two lines: the edge correlations and the statistics moves (mean / std per layer)."""
    e = m["edge"]
    edge = ", ".join(f"{k.replace('_', ' vs ')} {v['mean']:.2f} ± {v['std']:.2f}" for k, v in e.items())
    moved = " / ".join(f"{v['mean']:.2f}" for v in m["moved"].values())
    moved_std = " / ".join(f"{v['std']:.2f}" for v in m["moved"].values())
    return (f"{m['n']} held-out images at {m['size'][0]}x{m['size'][1]}, AdaIN at {m['layer']}: edge correlation {edge}\n"
            f"  moved towards the reference ({' / '.join(m['moved'])}): mean {moved}; std {moved_std}")
