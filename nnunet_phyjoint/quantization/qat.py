"""Quantization-aware training: fake-quantize the weights of every conv/linear layer of a module.

:func:`prepare_qat` registers a :class:`WeightFakeQuantizer` on each layer's ``weight`` with
``torch.nn.utils.parametrize``. The float master weights stay the trained parameters (the optimizer
sees them, gradients reach them through the straight-through estimator) and every forward pass uses
their fake-quantized values.

State-dict keys of a prepared layer ``encoder.conv_stem`` (bias and other tensors keep their keys)::

    encoder.conv_stem.parametrizations.weight.original       # float master weight
    encoder.conv_stem.parametrizations.weight.0._extra_state  # {"bits": b}, checked when loading

Such a state dict loads into a network prepared with the same ``bits`` (deepcopy, ``torch.save`` /
``torch.load(weights_only=True)`` and ``.to(device)`` all work). For a plain network -- inference,
export -- :func:`quantized_state_dict` / :func:`dequantize_qat_state_dict` give plain ``...weight``
keys holding the fake-quantized values, and :func:`strip_qat` bakes them into the module in place.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn
from torch.nn.utils import parametrize

from nnunet_phyjoint.quantization.fake_quant import fake_quantize, max_code

DEFAULT_LAYER_TYPES: tuple[type[nn.Module], ...] = (nn.Conv2d, nn.Linear)

_ORIGINAL_SUFFIX = ".parametrizations.weight.original"
_EXTRA_STATE_SUFFIX = ".parametrizations.weight.0._extra_state"


class WeightFakeQuantizer(nn.Module):
    """Parametrization ``weight -> fake_quantize(weight, bits)``; its bits travel in the state dict."""

    def __init__(self, bits: int) -> None:
        super().__init__()
        max_code(bits)  # validates bits
        self.bits = int(bits)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return fake_quantize(weight, self.bits)

    def get_extra_state(self) -> dict:
        return {"bits": self.bits}

    def set_extra_state(self, state: dict) -> None:
        # Loading weights trained on another grid would silently change what the network computes.
        stored = int(state["bits"])
        if stored != self.bits:
            raise ValueError(f"state dict was trained with {stored}-bit fake quantization, "
                             f"but this layer fake-quantizes at {self.bits} bits")

    def extra_repr(self) -> str:
        return f"bits={self.bits}"


def prepare_qat(module: nn.Module, bits: int,
                layer_types: tuple[type[nn.Module], ...] = DEFAULT_LAYER_TYPES) -> nn.Module:
    """Fake-quantize, in place, the weight of every ``layer_types`` layer inside ``module``; returns ``module``.

    Layers already fake-quantized at the same ``bits`` are left alone, so calling it twice is harmless.
    """
    max_code(bits)
    prepared = 0
    for name, layer in module.named_modules():
        if not isinstance(layer, layer_types) or getattr(layer, "weight", None) is None:
            continue
        existing = _fake_quantizer_of(layer)
        if existing is not None:
            if existing.bits != bits:
                raise ValueError(f"layer {name or type(layer).__name__!r} is already fake-quantized at "
                                 f"{existing.bits} bits, cannot prepare it for {bits} bits")
            prepared += 1
            continue
        parametrize.register_parametrization(layer, "weight", WeightFakeQuantizer(bits))
        prepared += 1
    if prepared == 0:
        kinds = ", ".join(t.__name__ for t in layer_types)
        raise ValueError(f"no {kinds} layer with a weight found in {type(module).__name__}; nothing to quantize")
    return module


def qat_bits(module: nn.Module) -> int | None:
    """The bits ``module`` fake-quantizes its weights at, or ``None`` when it is not prepared for QAT."""
    found = {q.bits for q in (_fake_quantizer_of(m) for m in module.modules()) if q is not None}
    if len(found) > 1:
        raise ValueError(f"{type(module).__name__} mixes fake quantization bit widths {sorted(found)}")
    return found.pop() if found else None


def strip_qat(module: nn.Module) -> nn.Module:
    """Replace, in place, each fake-quantized weight by a plain parameter holding its quantized value."""
    for layer in module.modules():
        if _fake_quantizer_of(layer) is None:
            continue
        if len(layer.parametrizations.weight) != 1:
            raise ValueError(f"{type(layer).__name__}.weight has other parametrizations besides fake quantization; "
                             "remove them first")
        parametrize.remove_parametrizations(layer, "weight", leave_parametrized=True)
    return module


def quantized_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    """``module.state_dict()`` with plain ``weight`` keys holding fake-quantized values (module unchanged)."""
    return dequantize_qat_state_dict(module.state_dict())


def dequantize_qat_state_dict(state_dict: Mapping[str, object]) -> dict[str, object]:
    """Turn a QAT state dict into a plain one: ``X.parametrizations.weight.original`` becomes ``X.weight``
    holding ``fake_quantize(original, bits)`` (bits from ``X.parametrizations.weight.0._extra_state``).

    Keys without fake quantization pass through unchanged, so a plain state dict is returned as is.
    """
    plain, bits_by_key = _split_qat_state_dict(state_dict)
    with torch.no_grad():
        for key, bits in bits_by_key.items():
            plain[key] = fake_quantize(plain[key], bits)
    return plain


def master_state_dict(state_dict: Mapping[str, object]) -> dict[str, object]:
    """A QAT state dict with plain keys but the float master weights (not quantized): what packing starts from,
    so that the exported codes and scales are exactly those of the training-time fake quantization."""
    return _split_qat_state_dict(state_dict)[0]


def state_dict_qat_bits(state_dict: Mapping[str, object]) -> int | None:
    """Bits of the fake quantization recorded in a state dict, ``None`` for a plain (float) state dict."""
    found = {int(v["bits"]) for k, v in state_dict.items() if k.endswith(_EXTRA_STATE_SUFFIX)}
    if len(found) > 1:
        raise ValueError(f"state dict mixes fake quantization bit widths {sorted(found)}")
    return found.pop() if found else None


def _split_qat_state_dict(state_dict: Mapping[str, object]) -> tuple[dict[str, object], dict[str, int]]:
    """(state dict with ``X.weight`` keys holding the float masters, {``X.weight``: bits} of the QAT layers)."""
    plain: dict[str, object] = {}
    bits_by_key: dict[str, int] = {}
    for key, value in state_dict.items():
        if key.endswith(_EXTRA_STATE_SUFFIX):
            continue
        if not key.endswith(_ORIGINAL_SUFFIX):
            if ".parametrizations." in key:
                raise ValueError(f"state dict key {key!r} belongs to a parametrization other than fake quantization")
            plain[key] = value
            continue
        prefix = key[: -len(_ORIGINAL_SUFFIX)]
        state = state_dict.get(prefix + _EXTRA_STATE_SUFFIX)
        if not isinstance(state, Mapping) or "bits" not in state:
            raise ValueError(f"state dict has {key!r} but no fake-quantization bits under "
                             f"{prefix + _EXTRA_STATE_SUFFIX!r}")
        plain[prefix + ".weight"] = value
        bits_by_key[prefix + ".weight"] = int(state["bits"])
    return plain, bits_by_key


def _fake_quantizer_of(layer: nn.Module) -> WeightFakeQuantizer | None:
    if not parametrize.is_parametrized(layer, "weight"):
        return None
    return next((p for p in layer.parametrizations.weight if isinstance(p, WeightFakeQuantizer)), None)
