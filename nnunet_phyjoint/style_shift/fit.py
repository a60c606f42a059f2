"""Fitting the AdaIN decoder on the training fold, and saving/loading it next to the preprocessed data.

Losses (Huang & Belongie 2017): the decoder output g = D(t), t = AdaIN(f(c), f(s)) at the style
layer L (relu4_1 in the paper; ``relu2_1`` / ``relu3_1`` as options), is re-encoded by the frozen
VGG; content loss ||f_L(g) - t||^2, style loss the sum over relu1_1..L of ||mu(f(g)) - mu(f(s))||^2 + ||sigma(f(g)) - sigma(f(s))||^2, each
term relative to the mean square of its target, plus an identity term (the decoder inverts
the encoder on unstyled features) that keeps the anatomy (see :func:`adain_losses`).
Content/style pairs are random training cases, the style from another scanner when there is one.

Saved to ``$nnUNet_preprocessed/DatasetXXX/phyjoint_style/<plans>__<configuration>__fold<F>__<layer>/``
(never inside the data_identifier folder, whose contents nnU-Net infers its dataset class from):
``decoder.safetensors`` + ``record.json``.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F

from nnunet_phyjoint.atomic_io import atomic_folder
from nnunet_phyjoint.style_shift.adain import adain, channel_mean_std
from nnunet_phyjoint.style_shift.reference_bank import ReferenceBank, locate_preprocessed, resolve_dataset_folder
from nnunet_phyjoint.style_shift.defaults import (  # noqa: F401  (the defaults are public here too)
    ACCELERATOR_BATCH_SIZE, ACCELERATOR_LAYER, ACCELERATOR_STEPS, CPU_BATCH_SIZE, CPU_LAYER, CPU_MAX_SIZE, CPU_STEPS,
    DEFAULT_DECODER_WIDTH, DEFAULT_IDENTITY_WEIGHT, DEFAULT_STYLE_LOSS_LAYER, DEFAULT_STYLE_WEIGHT,
)
from nnunet_phyjoint.style_shift.style_decoder import StyleDecoder
from nnunet_phyjoint.style_shift.vgg_descriptor import (
    LAYER_NAMES, PAPER_LAYER, VGGDescriptor, check_layer, downsampling, layers_up_to, to_unit,
)

STYLE_DIRNAME = "phyjoint_style"
DECODER_FILE = "decoder.safetensors"
RECORD_FILE = "record.json"
RECORD_VERSION = 2  # 2: the AdaIN layer is part of the record and of the folder name



def _on_cpu(device: str | torch.device) -> bool:
    return torch.device(device).type == "cpu"


def default_layer(device: str | torch.device = "cpu") -> str:
    """The AdaIN layer a fit on ``device`` uses unless told otherwise."""
    return CPU_LAYER if _on_cpu(device) else ACCELERATOR_LAYER


def default_batch_size(device: str | torch.device = "cpu") -> int:
    return CPU_BATCH_SIZE if _on_cpu(device) else ACCELERATOR_BATCH_SIZE


def style_folder(dataset: int | str | Path, plans: str = "PhyJointPlans", configuration: str = "2d", fold: int = 0,
                 layer: str = PAPER_LAYER) -> Path:
    """Where the decoder for this plans/configuration/fold and AdaIN layer is (or will be) stored."""
    check_layer(layer)
    return resolve_dataset_folder(dataset) / STYLE_DIRNAME / f"{plans}__{configuration}__fold{fold}__{layer}"


class StyleLosses(NamedTuple):
    """The three fitting losses, each relative to the mean square (or variance) of its target."""

    content: torch.Tensor
    style: torch.Tensor
    identity: torch.Tensor

    def total(self, style_weight: float = 1.0, identity_weight: float = 1.0) -> torch.Tensor:
        return self.content + style_weight * self.style + identity_weight * self.identity


def adain_losses(
    vgg: VGGDescriptor, decoder: StyleDecoder, content_u: torch.Tensor, style_u: torch.Tensor, alpha: float = 1.0,
    style_loss_layer: str | None = None,
) -> StyleLosses:
    """Content, style and identity losses of decoding AdaIN(content, style) for [0, 1] images (B, 1, H, W).

    The AdaIN layer is the decoder's (``decoder.layer``); the style loss runs over relu1_1 ... the
    deeper of that layer and ``style_loss_layer`` (Huang & Belongie always use relu1_1 ... relu4_1).

    Content and style are AdaIN's; each is divided by the mean square of its target so that
    their balance does not depend on the scale of the VGG activations (ImageNet weights give
    activations two orders of magnitude larger than random ones). The identity term,
    ||D(f(c)) - c||^2 / var(c), asks the decoder to invert the encoder on unstyled features:
    it anchors the output to the anatomy, which VGG features alone do not pin down well when
    the weights are random.
    """
    layer = decoder.layer
    deepest = style_loss_layers(layer, style_loss_layer)[-1]
    at = LAYER_NAMES.index(layer)
    with torch.no_grad():
        content_feat = vgg.forward_unit(content_u, layer)[-1]
        style_feats = vgg.forward_unit(style_u, deepest)
        target = adain(content_feat, style_feats[at], alpha)
    out_feats = vgg.forward_unit(decoder(target), deepest)
    content_loss = F.mse_loss(out_feats[at], target) / target.pow(2).mean().clamp_min(1e-12)
    style_loss = content_loss.new_zeros(())
    for fo, fs in zip(out_feats, style_feats):
        mo, so = channel_mean_std(fo)
        ms, ss = channel_mean_std(fs)
        scale = (ms.pow(2).mean() + ss.pow(2).mean()).clamp_min(1e-12)
        style_loss = style_loss + (F.mse_loss(mo, ms) + F.mse_loss(so, ss)) / scale
    identity_loss = F.mse_loss(decoder(content_feat), content_u) / content_u.var().clamp_min(1e-12)
    return StyleLosses(content_loss, style_loss, identity_loss)


def style_loss_layers(layer: str, style_loss_layer: str | None = None) -> tuple[str, ...]:
    """relu1_1 ... the deeper of the AdaIN ``layer`` and ``style_loss_layer`` (None: ``layer``)."""
    deepest = layer if style_loss_layer is None else max(layer, style_loss_layer, key=LAYER_NAMES.index)
    return layers_up_to(deepest)


def _training_pairs(bank: ReferenceBank, batch_size: int, size: int, gen: torch.Generator, device) -> tuple[torch.Tensor, torch.Tensor]:
    idx = torch.randint(len(bank.case_ids), (batch_size,), generator=gen).tolist()
    content_ids = [bank.case_ids[i] for i in idx]
    style_ids = bank.sample_references(content_ids, gen)
    content = bank.get_batch(content_ids, (size, size))
    style = bank.get_batch(style_ids, (size, size))
    flip = torch.rand(batch_size, generator=gen) < 0.5  # cheap variety; anatomy stays upright
    content[flip] = content[flip].flip(-1)
    return to_unit(content[:, :1]).to(device), to_unit(style[:, :1]).to(device)


def fit_decoder_on_bank(
    bank: ReferenceBank,
    vgg: VGGDescriptor,
    decoder: StyleDecoder,
    steps: int,
    batch_size: int = 8,
    size: int = 256,
    lr: float = 1e-3,
    style_weight: float = 1.0,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
    calibrate: bool = True,
    identity_weight: float = 1.0,
    style_loss_layer: str | None = None,
) -> dict[str, list[float]]:
    """Train ``decoder`` in place; returns the loss history (one entry per logged step).

    ``calibrate`` first sets the decoder's input scale from a batch of content features;
    ``style_loss_layer`` extends the style loss beyond the AdaIN layer (see :func:`adain_losses`).
    """
    from nnunet_phyjoint.progress import progress as progress_bar

    stride = downsampling(decoder.layer)
    if size % stride:
        raise ValueError(f"size must be a multiple of {stride} for a {decoder.layer} decoder, got {size}")
    device = torch.device(device)
    vgg.to(device)
    decoder.to(device).train()
    opt = torch.optim.Adam(decoder.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    if calibrate:
        with torch.no_grad():
            decoder.calibrate(vgg.forward_unit(_training_pairs(bank, batch_size, size, gen, device)[0], decoder.layer)[-1])
    log_every = max(1, steps // 100)
    history: dict[str, list[float]] = {"step": [], "content": [], "style": [], "identity": [], "total": []}
    bar = progress_bar(range(1, steps + 1), desc="fitting style decoder", disable=not progress)
    for step in bar:
        content_u, style_u = _training_pairs(bank, batch_size, size, gen, device)
        losses = adain_losses(vgg, decoder, content_u, style_u, style_loss_layer=style_loss_layer)
        loss = losses.total(style_weight, identity_weight)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"style decoder loss is {loss.item()} at step {step}; lower the learning rate")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % log_every == 0 or step == 1 or step == steps:
            values = {"step": step, **{k: v.item() for k, v in losses._asdict().items()}, "total": loss.item()}
            for k, v in values.items():
                history[k].append(float(v))
            bar.set_postfix(content=f"{values['content']:.3g}", style=f"{values['style']:.3g}", identity=f"{values['identity']:.3g}")
    decoder.eval()
    return history


def save_style_decoder(folder: Path, decoder: StyleDecoder, record: dict) -> Path:
    """Write ``decoder.safetensors`` + ``record.json`` into ``folder`` via a temporary sibling folder."""
    from safetensors.torch import save_file

    folder = Path(folder)
    with atomic_folder(folder) as tmp:
        state = {k: v.detach().to("cpu").contiguous() for k, v in decoder.state_dict().items()}
        save_file(state, str(tmp / DECODER_FILE))
        with open(tmp / RECORD_FILE, "w") as f:
            json.dump({**record, "decoder": asdict(decoder.config)}, f, indent=2)
    return folder


def describe_fit(record: dict) -> str:
    """``N steps of batch B at SxS``: how the decoder of a fit ``record`` (record.json) was trained."""
    return f"{record.get('steps')} steps of batch {record.get('batch_size')} at {record.get('size')}x{record.get('size')}"


def load_style_decoder(folder: str | Path) -> tuple[StyleDecoder, dict]:
    """The decoder saved in ``folder`` (eval mode, CPU) and its record."""
    from safetensors.torch import load_file

    folder = Path(folder)
    rec_file, dec_file = folder / RECORD_FILE, folder / DECODER_FILE
    for f in (rec_file, dec_file):
        if not f.is_file():
            raise FileNotFoundError(f"{f} does not exist: run `phyjoint fit-style` first")
    try:
        with open(rec_file) as f:
            record = json.load(f)
        decoder = StyleDecoder.from_config(record["decoder"])
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"{rec_file} is not a style decoder record: {e}") from e
    try:
        decoder.load_state_dict(load_file(str(dec_file)))
    except (RuntimeError, OSError) as e:
        raise ValueError(f"{dec_file} does not match the decoder described in {rec_file.name}: {e}") from e
    return decoder.eval(), record


def fit_style_decoder(
    dataset_id: int | str | Path,
    plans: str = "PhyJointPlans",
    configuration: str = "2d",
    fold: int = 0,
    steps: int | None = None,
    batch_size: int | None = None,
    size: int | None = None,
    device: str | torch.device = "cpu",
    vgg_weights: str | Path | VGGDescriptor | None = "auto",
    width: float | None = None,
    lr: float = 1e-3,
    style_weight: float | None = None,
    identity_weight: float | None = None,
    case_ids: Sequence[str] | None = None,
    seed: int = 0,
    progress: bool = True,
    layer: str | None = None,
    style_loss_layer: str | None = None,
) -> Path:
    """Fit the AdaIN decoder on the training fold (or ``case_ids``) and save it; returns its folder.

    Defaults depend on the device (:func:`default_fit_settings`), because VGG-19 up to relu4_1
    at 256x256 costs ~16 GMAC per image pass: on an accelerator the paper's relu4_1, 1000 steps
    of batch 8 at the configuration's patch size; on the CPU ``CPU_LAYER``, ``CPU_STEPS`` steps
    of batch ``CPU_BATCH_SIZE`` at <= 128x128 (a few minutes on 2 cores).
    """
    cfg = locate_preprocessed(dataset_id, plans, configuration)
    bank = ReferenceBank.from_preprocessed(cfg.dataset_folder, plans, configuration, fold, case_ids, progress)
    vgg = vgg_weights if isinstance(vgg_weights, VGGDescriptor) else VGGDescriptor(vgg_weights)
    layer = default_layer(device) if layer is None else check_layer(layer)
    return fit_and_save(
        bank, vgg, style_folder(cfg.dataset_folder, plans, configuration, fold, layer), steps=steps,
        batch_size=batch_size, size=size, device=device, width=width, lr=lr, style_weight=style_weight,
        identity_weight=identity_weight, seed=seed, progress=progress, layer=layer, style_loss_layer=style_loss_layer,
    )


def default_steps_and_size(device: str | torch.device, patch_size: tuple[int, ...] | None,
                           layer: str = PAPER_LAYER) -> tuple[int, int]:
    """(steps, size) that finish in minutes: the full patch on an accelerator, a cheaper fit on the CPU."""
    stride = downsampling(layer)
    size = min(patch_size[-2:]) if patch_size else 256
    if _on_cpu(device):
        size = min(size, CPU_MAX_SIZE)
    return (CPU_STEPS if _on_cpu(device) else ACCELERATOR_STEPS), max(stride, size // stride * stride)


def default_fit_settings(device: str | torch.device = "cpu", patch_size: tuple[int, ...] | None = None) -> dict:
    """layer, steps, batch_size and size a fit on ``device`` uses when they are not given."""
    layer = default_layer(device)
    steps, size = default_steps_and_size(device, patch_size, layer)
    return {"layer": layer, "steps": steps, "batch_size": default_batch_size(device), "size": size}


def fit_and_save(
    bank: ReferenceBank,
    vgg: VGGDescriptor,
    folder: Path,
    steps: int | None = None,
    batch_size: int | None = None,
    size: int | None = None,
    device: str | torch.device = "cpu",
    width: float | None = None,
    lr: float = 1e-3,
    style_weight: float | None = None,
    identity_weight: float | None = None,
    seed: int = 0,
    progress: bool = True,
    layer: str | None = None,
    style_loss_layer: str | None = None,
) -> Path:
    """Fit a fresh decoder on an already loaded bank against ``vgg`` and save it (with its record) to ``folder``.

    ``layer`` / ``steps`` / ``batch_size`` / ``size`` left at None take :func:`default_fit_settings`;
    ``style_loss_layer`` None takes ``DEFAULT_STYLE_LOSS_LAYER``.
    """
    cfg = bank.config
    layer = default_layer(device) if layer is None else check_layer(layer)
    default_steps, default_size = default_steps_and_size(device, cfg.patch_size if cfg else None, layer)
    steps = default_steps if steps is None else steps
    size = default_size if size is None else size
    batch_size = default_batch_size(device) if batch_size is None else batch_size
    style_weight = DEFAULT_STYLE_WEIGHT if style_weight is None else float(style_weight)
    width = DEFAULT_DECODER_WIDTH if width is None else float(width)
    identity_weight = DEFAULT_IDENTITY_WEIGHT if identity_weight is None else float(identity_weight)
    style_loss_layer = DEFAULT_STYLE_LOSS_LAYER if style_loss_layer is None else style_loss_layer
    loss_layers = style_loss_layers(layer, style_loss_layer)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # reproducible decoder initialisation without touching the caller's RNG
        decoder = StyleDecoder(width=width, layer=layer)
    start = time.time()
    history = fit_decoder_on_bank(bank, vgg, decoder, steps, batch_size, size, lr, style_weight, seed, device, progress,
                                  identity_weight=identity_weight, style_loss_layer=loss_layers[-1])
    record = {
        "format_version": RECORD_VERSION,
        "dataset": cfg.dataset_folder.name if cfg else None,
        "plans": cfg.plans if cfg else None,
        "configuration": cfg.configuration if cfg else None,
        "fold_folder": Path(folder).name,
        "case_ids": bank.case_ids,
        "scanners": sorted({s for s in (bank.scanner_of(c) for c in bank.case_ids) if s is not None}),
        "vgg_weights": vgg.weights_source,
        "vgg_fingerprint": vgg.fingerprint(),
        "layer": layer,
        "style_loss_layers": list(loss_layers),
        "steps": steps,
        "batch_size": batch_size,
        "size": size,
        "lr": lr,
        "style_weight": style_weight,
        "identity_weight": identity_weight,
        "loss_normalisation": "each term divided by the mean square of its target",
        "seed": seed,
        "device": str(device),
        "seconds": round(time.time() - start, 1),
        "threads": torch.get_num_threads(),
        "losses": history,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    return save_style_decoder(Path(folder), decoder.cpu(), record)
