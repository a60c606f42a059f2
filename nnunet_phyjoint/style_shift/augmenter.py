"""Training-time physics style shift (Sec. 3.1, Eq. (2)): a sample takes on the VGG-19 feature
statistics of a reference image from another scanner and is decoded back to an image.

The trainer calls :class:`StyleShiftAugmenter` inside ``train_step`` on the training device,
never in data-loader workers, and only on ``data`` (masks are not touched).

Back to nnU-Net's input normalisation: the decoder works in the [0, 1] display domain; its
output is clamped to [0, 1], the content's letterbox bars (whole rows or columns at the
content's minimum) are set back to 0, and the image is z-scored over all its pixels, as nnU-Net's ZScoreNormalization does per
image (``use_mask_for_norm`` False). Only whole rows/columns count as no-signal: single
pixels at the minimum are usually the inside of an anechoic lesion, which must stay part of
the image. Padding added by nnU-Net's own data loader (z = 0) is not recognised as background.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from nnunet_phyjoint.style_shift.adain import adain_with_stats, channel_mean_std
from nnunet_phyjoint.style_shift.fit import describe_fit, default_layer, fit_and_save, load_style_decoder, style_folder
from nnunet_phyjoint.style_shift.reference_bank import ReferenceBank, locate_preprocessed
from nnunet_phyjoint.style_shift.style_decoder import StyleDecoder
from nnunet_phyjoint.style_shift.vgg_descriptor import VGGDescriptor, check_layer, downsampling, to_unit


def zscore_per_image(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """(B, C, H, W) -> zero mean, unit std per image and channel (nnU-Net's ZScoreNormalization)."""
    var, mean = torch.var_mean(x, dim=(-2, -1), keepdim=True, correction=0)
    return (x - mean) / var.sqrt().clamp_min(eps)


def letterbox_mask(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) bool: pixels of rows or columns that lie entirely at the image's minimum."""
    at_min = x == x.amin(dim=(-2, -1), keepdim=True)
    return at_min.all(dim=-1, keepdim=True) | at_min.all(dim=-2, keepdim=True)


class StyleShiftAugmenter(nn.Module):
    """Re-styles each sample with probability ``p`` towards a reference from another scanner.

    ``alpha`` is the AdaIN blend (1 = full style of the reference); a pair ``(lo, hi)`` draws it
    uniformly per sample. The AdaIN layer is the decoder's (``decoder.layer``). Nothing here is
    trained: VGG and decoder are frozen and run under ``torch.no_grad``.
    """

    def __init__(
        self,
        vgg: VGGDescriptor,
        decoder: StyleDecoder,
        bank: ReferenceBank,
        p: float = 0.3,
        alpha: float | tuple[float, float] = 1.0,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must lie in [0, 1], got {p}")
        lo, hi = (alpha, alpha) if isinstance(alpha, (int, float)) else alpha
        if not 0.0 <= lo <= hi <= 1.0:
            raise ValueError(f"alpha must lie in [0, 1] (or be a pair lo <= hi there), got {alpha}")
        self.vgg = vgg
        self.decoder = decoder.eval()
        for prm in self.decoder.parameters():
            prm.requires_grad_(False)
        self.bank = bank
        self.p = float(p)
        self.alpha_range = (float(lo), float(hi))
        self.layer = decoder.layer
        # a CPU generator: decisions are reproducible and independent of the device
        seed = int(torch.randint(2**62, (1,))) if seed is None else int(seed)
        self.generator = torch.Generator().manual_seed(seed)
        self._style_stats: dict[tuple[str, int, int], tuple[torch.Tensor, torch.Tensor]] = {}
        self.decoder_record: dict = {}  # the fit's record.json when loaded from a dataset (steps, batch, size, ...)
        self.decoder_folder: Path | None = None  # where that decoder is cached

    @classmethod
    def from_dataset(
        cls,
        dataset: int | str | Path,
        plans: str = "PhyJointPlans",
        configuration: str = "2d",
        fold: int = 0,
        train_case_ids: Sequence[str] | None = None,
        p: float = 0.3,
        alpha: float | tuple[float, float] = 1.0,
        device: str | torch.device = "cpu",
        fit_if_missing: bool = True,
        vgg_weights: str | Path | VGGDescriptor | None = "auto",
        fit_kwargs: dict | None = None,
        seed: int | None = None,
        progress: bool = True,
    ) -> "StyleShiftAugmenter":
        """Load the fold's references and decoder; fit the decoder first (once) when it is missing.

        ``dataset`` is an id, a ``DatasetXXX_NAME`` or the preprocessed dataset folder;
        ``train_case_ids`` defaults to the fold's ``train`` list in splits_final.json.
        A decoder fitted against other VGG weights is refitted (or refused when
        ``fit_if_missing`` is False). ``vgg_weights`` may be an already built descriptor.
        The AdaIN layer is ``fit_kwargs["layer"]`` when given, else the device's default
        (:func:`~nnunet_phyjoint.style_shift.fit.default_layer`); each layer has its own decoder folder.
        """
        cfg = locate_preprocessed(dataset, plans, configuration)
        bank = ReferenceBank.from_preprocessed(cfg.dataset_folder, plans, configuration, fold, train_case_ids, progress)
        vgg = vgg_weights if isinstance(vgg_weights, VGGDescriptor) else VGGDescriptor(vgg_weights)
        fit_kwargs = dict(fit_kwargs or {})
        layer = check_layer(fit_kwargs.pop("layer", None) or default_layer(device))
        folder = style_folder(cfg.dataset_folder, plans, configuration, fold, layer)
        decoder = None
        if folder.is_dir():
            decoder, record = load_style_decoder(folder)
            if record.get("vgg_fingerprint") != vgg.fingerprint():
                msg = (f"style decoder in {folder} was fitted against VGG weights {record.get('vgg_weights')!r}, "
                       f"but this run uses {vgg.weights_source!r}")
                if not fit_if_missing:
                    raise ValueError(msg + "; refit it with `phyjoint fit-style`")
                warnings.warn(msg + "; refitting it", RuntimeWarning)
                decoder = None
            elif decoder.layer != layer:
                raise ValueError(f"style decoder in {folder} decodes {decoder.layer}, not {layer}")
            elif set(record.get("case_ids", [])) - set(bank.case_ids):
                warnings.warn(f"style decoder in {folder} was fitted on cases outside this training fold", RuntimeWarning)
        if decoder is None:
            if not fit_if_missing:
                raise FileNotFoundError(f"no style decoder in {folder}: run `phyjoint fit-style` first")
            fit_and_save(bank, vgg, folder, device=device, progress=progress, layer=layer, **fit_kwargs)
            decoder, record = load_style_decoder(folder)
        augmenter = cls(vgg, decoder, bank, p=p, alpha=alpha, seed=seed).to(device)
        augmenter.decoder_record, augmenter.decoder_folder = record, folder
        return augmenter

    def describe_decoder(self) -> str:
        """One line on the decoder in use: its fit (steps, batch, size) and folder, when known."""
        if not self.decoder_record:
            return f"decoder for {self.layer}"
        return f"decoder fitted with {describe_fit(self.decoder_record)} ({self.decoder_folder})"

    def _reference_stats(self, ref_ids: Sequence[str], shape: tuple[int, int], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean/std at the AdaIN layer of each reference at ``shape``, computed once per reference and cached."""
        missing = sorted({r for r in ref_ids if (r, *shape) not in self._style_stats})
        if missing:
            refs = self.bank.get_batch(missing, shape, device)[:, :1]
            feats = self.vgg.forward_unit(to_unit(refs), self.layer)[-1]
            mean, std = channel_mean_std(feats, eps=0.0)
            for i, r in enumerate(missing):
                self._style_stats[(r, *shape)] = (mean[i : i + 1], std[i : i + 1])
        stats = [self._style_stats[(r, *shape)] for r in ref_ids]
        return torch.cat([m for m, _ in stats]).to(device), torch.cat([s for _, s in stats]).to(device)

    def _draw_alpha(self, n: int, device: torch.device) -> float | torch.Tensor:
        lo, hi = self.alpha_range
        if lo == hi:
            return lo
        return (lo + (hi - lo) * torch.rand(n, 1, 1, 1, generator=self.generator)).to(device)

    @torch.no_grad()
    def restyle(self, content: torch.Tensor, ref_ids: Sequence[str], alpha: float | None = None,
                normalise: bool = True) -> torch.Tensor:
        """Re-style every image of (n, 1, H, W) with the matching reference; z-scored output of the same shape.

        ``alpha`` overrides the augmenter's blend (0 = decode the content's own features, the
        "identity decoding" of :mod:`~nnunet_phyjoint.style_shift.quality`); ``normalise=False``
        returns the decoded image in the [0, 1] display domain instead of z-scored.
        """
        if content.ndim != 4 or content.shape[1] != 1:
            raise ValueError(f"style shift needs one-channel 2D images (n, 1, H, W), got {tuple(content.shape)}")
        if len(ref_ids) != content.shape[0]:
            raise ValueError(f"{content.shape[0]} images but {len(ref_ids)} reference ids")
        self._follow(content.device)
        with torch.autocast(content.device.type, enabled=False):
            x = content.float()
            h, w = x.shape[-2:]
            # VGG pools before the layer: pad to a multiple of its stride so the decoder gives back the full size
            stride = downsampling(self.layer)
            ph, pw = -h % stride, -w % stride
            xp = F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x
            feat = self.vgg.forward_unit(to_unit(xp), self.layer)[-1]
            mean_s, std_s = self._reference_stats(ref_ids, tuple(xp.shape[-2:]), x.device)
            blend = self._draw_alpha(len(ref_ids), x.device) if alpha is None else float(alpha)
            target = adain_with_stats(feat, mean_s, std_s, blend)
            out = self.decoder(target)[..., :h, :w].clamp(0.0, 1.0)
            out = out.masked_fill(letterbox_mask(x), 0.0)
            return (zscore_per_image(out) if normalise else out).to(content.dtype)

    def _follow(self, device: torch.device) -> None:
        if next(self.decoder.parameters()).device != device:
            self.to(device)

    def forward(self, data: torch.Tensor, keys: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor, list[str | None]]:
        """(data_out, applied (B,) bool, reference id per sample or None) for a (B, 1, H, W) batch."""
        if data.ndim != 4 or data.shape[1] != 1:
            raise ValueError(f"style shift needs one-channel 2D batches (B, 1, H, W), got {tuple(data.shape)}")
        if len(keys) != data.shape[0]:
            raise ValueError(f"batch of {data.shape[0]} images but {len(keys)} keys")
        applied = torch.rand(data.shape[0], generator=self.generator) < self.p
        ref_ids: list[str | None] = [None] * data.shape[0]
        if not applied.any():
            return data, applied.to(data.device), ref_ids
        idx = applied.nonzero().flatten().tolist()
        refs = self.bank.sample_references([str(keys[i]) for i in idx], self.generator)
        for i, r in zip(idx, refs):
            ref_ids[i] = r
        out = data.clone()
        out[idx] = self.restyle(data[idx], refs)
        return out, applied.to(data.device), ref_ids
