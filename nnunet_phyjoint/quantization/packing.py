"""Exact packing of per-output-channel quantized weights: int8 codes, or two int4 codes per byte, plus scales.

Why not bitsandbytes' blockwise functions: ``quantize_blockwise`` / ``quantize_4bit`` use their own grid
(dynamic or NF4/FP4 codebooks, one absmax per block of 64 values, not per output channel), so
dequantizing them does not give back the values the network was trained with under fake quantization.
Storing the QAT grid's own codes and scales is lossless with respect to that grid: export -> load
reproduces the fake-quantized weights bit for bit.

Layout, for a weight named ``N`` (safetensors allows any string key):
``N.codes`` int8 with the weight's shape (8 bits) or uint8 of ``ceil(numel / 2)`` bytes (4 bits, code + 8
in each nibble, even element in the low nibble), and ``N.scale`` float32 of shape ``(out_channels,)``.
The bit width and the original shapes go into the safetensors metadata (:func:`packed_metadata`).
"""
from __future__ import annotations

import json
from collections.abc import Mapping

import torch

from nnunet_phyjoint.quantization.fake_quant import dequantize_codes, max_code, quantize_to_codes

PACKED_BITS = (8, 4)
FORMAT_NAME = "phyjoint-packed-weights-v1"
_INT4_OFFSET = 8  # codes -7..7 become nibbles 1..15


def pack_codes(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """Store int8 codes at ``bits`` per value: the codes themselves (8) or two per byte (4)."""
    _check_bits(bits)
    limit = max_code(bits)
    if codes.dtype != torch.int8:
        raise TypeError(f"codes must be int8, got {codes.dtype}")
    if codes.numel() and int(codes.abs().max()) > limit:
        raise ValueError(f"codes outside the {bits}-bit range -{limit}..{limit}")
    if bits == 8:
        return codes.contiguous()
    nibbles = (codes.flatten().to(torch.int16) + _INT4_OFFSET).to(torch.uint8)
    if nibbles.numel() % 2:
        nibbles = torch.cat([nibbles, nibbles.new_full((1,), _INT4_OFFSET)])
    return nibbles[0::2] | (nibbles[1::2] << 4)


def unpack_codes(packed: torch.Tensor, bits: int, shape: tuple[int, ...]) -> torch.Tensor:
    """Inverse of :func:`pack_codes`: int8 codes of ``shape``."""
    _check_bits(bits)
    numel = 1
    for size in shape:
        numel *= size
    if bits == 8:
        if packed.dtype != torch.int8 or tuple(packed.shape) != tuple(shape):
            raise ValueError(f"expected int8 codes of shape {tuple(shape)}, got {packed.dtype} {tuple(packed.shape)}")
        return packed
    if packed.dtype != torch.uint8 or packed.numel() != (numel + 1) // 2:
        raise ValueError(f"expected {(numel + 1) // 2} uint8 bytes for {numel} int4 codes, "
                         f"got {packed.dtype} with {packed.numel()} elements")
    nibbles = torch.stack([packed & 0x0F, packed >> 4], dim=1).flatten()[:numel]
    return (nibbles.to(torch.int16) - _INT4_OFFSET).to(torch.int8).view(shape)


def pack_weights(weights: Mapping[str, torch.Tensor], bits: int) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Quantize and pack float weights (output channels on dim 0) -> (safetensors tensors, metadata)."""
    _check_bits(bits)
    tensors: dict[str, torch.Tensor] = {}
    shapes: dict[str, list[int]] = {}
    for name, weight in weights.items():
        codes, scales = quantize_to_codes(weight.detach().cpu(), bits)
        tensors[f"{name}.codes"] = pack_codes(codes, bits)
        tensors[f"{name}.scale"] = scales.contiguous()
        shapes[name] = list(weight.shape)
    return tensors, packed_metadata(bits, shapes)


def unpack_weights(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None) -> dict[str, torch.Tensor]:
    """Float32 weights ``code * scale`` from :func:`pack_weights` output (as read back from safetensors)."""
    if not metadata or metadata.get("format") != FORMAT_NAME:
        raise ValueError(f"not a packed-weights file: metadata 'format' is "
                         f"{(metadata or {}).get('format')!r}, expected {FORMAT_NAME!r}")
    bits = int(metadata["bits"])
    shapes = json.loads(metadata["shapes"])
    weights = {}
    for name, shape in shapes.items():
        try:
            packed, scales = tensors[f"{name}.codes"], tensors[f"{name}.scale"]
        except KeyError as missing:
            raise ValueError(f"packed weights lack tensor {missing.args[0]!r}") from None
        weights[name] = dequantize_codes(unpack_codes(packed, bits, tuple(shape)), scales)
    return weights


def packed_metadata(bits: int, shapes: Mapping[str, list[int]]) -> dict[str, str]:
    """Safetensors metadata (string values only) describing a packed-weights file."""
    return {"format": FORMAT_NAME, "bits": str(bits), "shapes": json.dumps(dict(shapes))}


def tensor_bytes(tensors: Mapping[str, object]) -> int:
    """Bytes of the tensor data in a mapping (non-tensor entries ignored)."""
    return sum(t.numel() * t.element_size() for t in tensors.values() if isinstance(t, torch.Tensor))


def _check_bits(bits: int) -> None:
    if bits not in PACKED_BITS:
        raise ValueError(f"packing supports {PACKED_BITS} bits, got {bits!r}")
