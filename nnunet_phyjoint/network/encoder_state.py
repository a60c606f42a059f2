"""Encoder weight files: reading a state dict and matching its keys to a timm feature extractor.

No knowledge of where weights come from (that is :mod:`nnunet_phyjoint.network.encoder_weights`) nor
of the encoder module itself beyond its ``name`` and ``model`` attributes, so that both
:mod:`~nnunet_phyjoint.network.encoder` and :mod:`~nnunet_phyjoint.network.encoder_weights` import
from here and neither imports the other's names back.
"""
from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

# timm's Hugging Face loader tries these files in this order.
_HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
# Containers that training scripts commonly wrap a state dict in.
_STATE_DICT_CONTAINERS = ("state_dict", "model", "network_weights", "model_state_dict")
# Prefixes that DDP and torch.compile put in front of every key.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")
# Where the timm model sits inside PhyJointNet.
_NET_ENCODER_PREFIX = "encoder.model."


def pretrained_cfg(name: str) -> dict:
    """timm's default pretrained config of ``name`` (a ``model.tag`` name picks that tag) as a dict."""
    import timm

    cfg = timm.models.get_pretrained_cfg(name, allow_unregistered=True)
    return cfg.to_dict() if cfg is not None else {}


def find_cached_pretrained_weights(name: str) -> Path | None:
    """The locally cached file of timm's default pretrained weights for ``name``, or ``None``.

    Looks where timm itself would download to (the Hugging Face hub cache for ``hf_hub_id``,
    ``torch.hub.get_dir()/checkpoints`` for ``url``) without touching the network.
    """
    cfg = pretrained_cfg(name)
    hub_id = cfg.get("hf_hub_id")
    if hub_id:
        from huggingface_hub import try_to_load_from_cache

        filenames = (cfg["hf_hub_filename"],) if cfg.get("hf_hub_filename") else _HF_WEIGHT_FILES
        for filename in filenames:
            hit = try_to_load_from_cache(hub_id, filename)
            if isinstance(hit, str) and os.path.isfile(hit):
                return Path(hit)
    url = cfg.get("url")
    if url:
        candidate = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)
        if candidate.is_file():
            return candidate
    return None


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` file or a ``torch.save``-d state dict (loaded with ``weights_only``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"encoder weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj = load_file(str(path), device="cpu")
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a corrupt or foreign file: say which one
        raise ValueError(f"cannot read encoder weights from {path}: {e}") from e
    for key in _STATE_DICT_CONTAINERS:
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path} does not hold a state dict (a mapping of names to tensors)")
    return obj


def _strip_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    for prefix in _WRAPPER_PREFIXES:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    if any(k.startswith(_NET_ENCODER_PREFIX) for k in state):
        # a whole PhyJointNet state dict also holds decoder/head keys: keep the encoder's only
        state = {k[len(_NET_ENCODER_PREFIX):]: v for k, v in state.items() if k.startswith(_NET_ENCODER_PREFIX)}
    elif state and all(k.startswith("model.") for k in state):  # a TimmEncoder's own state dict
        state = {k[len("model."):]: v for k, v in state.items()}
    return state


def _source_key(target_key: str, source: dict[str, torch.Tensor]) -> str | None:
    """The key in a full timm model's state dict that a feature-extractor key corresponds to.

    timm's ``FeatureListNet`` flattens sequential stages (``stages.0`` becomes ``stages_0``).
    """
    if target_key in source:
        return target_key
    head, _, rest = target_key.partition(".")
    if "_" in head:
        stage, _, index = head.rpartition("_")
        alt = f"{stage}.{index}.{rest}" if rest else f"{stage}.{index}"
        if alt in source:
            return alt
    return None


def load_encoder_weights(encoder: nn.Module, path: str | os.PathLike) -> None:
    """Load a state dict file into ``encoder`` (a :class:`~nnunet_phyjoint.network.encoder.TimmEncoder`); every encoder tensor must be found with a matching shape.

    Accepts the feature extractor's own keys, a full timm classification model's keys (its classifier
    and head are ignored), or a whole PhyJointNet checkpoint (its ``encoder.model.`` part). A 3-channel
    first convolution is adapted to the encoder's input channels the way timm does it.
    """
    load_encoder_state(encoder, read_state_dict(path), origin=path)


def load_encoder_state(encoder: nn.Module, state: dict[str, torch.Tensor], origin: str | os.PathLike) -> int:
    """:func:`load_encoder_weights` for a state dict already in memory; returns the tensors loaded.

    ``origin`` names the weights in error messages.
    """
    from timm.models import adapt_input_conv

    path = origin
    source = _strip_prefixes(dict(state))
    target = encoder.model.state_dict()
    first_convs = pretrained_cfg(encoder.name).get("first_conv") or ()
    first_conv_weights = {f"{c}.weight" for c in ((first_convs,) if isinstance(first_convs, str) else first_convs)}
    loaded, missing, wrong_shape = {}, [], []
    for key, want in target.items():
        src_key = _source_key(key, source)
        if src_key is None:
            missing.append(key)
            continue
        value = source[src_key]
        if value.shape != want.shape and key in first_conv_weights and value.ndim == 4 \
                and value.shape[0] == want.shape[0] and value.shape[2:] == want.shape[2:]:
            value = adapt_input_conv(want.shape[1], value)
        if value.shape != want.shape:
            wrong_shape.append(f"{key}: file {tuple(value.shape)} vs encoder {tuple(want.shape)}")
            continue
        loaded[key] = value.to(want.dtype)
    if missing or wrong_shape:
        details = []
        if missing:
            details.append(f"{len(missing)} encoder tensors missing from the file (e.g. {missing[:3]})")
        if wrong_shape:
            details.append(f"{len(wrong_shape)} with a different shape (e.g. {wrong_shape[:3]})")
        raise ValueError(
            f"{path} does not match encoder {encoder.name} ({len(target)} tensors): " + "; ".join(details)
            + f"; the file's first keys are {list(source)[:3]}"
        )
    encoder.model.load_state_dict(loaded, strict=True)
    return len(loaded)
