"""Per-output-channel symmetric fake quantization with a straight-through estimator (STE).

Grid (restricted symmetric range, no zero point): for ``bits`` b the integer codes are
``-(2^(b-1)-1) .. 2^(b-1)-1`` -- INT8: -127..127 (255 levels), INT4: -7..7 (15 levels) -- and
channel c of a weight (output channels on dim 0) uses ``scale_c = max|w_c| / (2^(b-1)-1)``.
The fake-quantized weight is ``code * scale_c``. Dropping -128 / -8 keeps the grid symmetric, so a
weight and its negation quantize alike.

The rounding itself is torch's ``fake_quantize_per_channel_affine``, whose backward is the STE:
the gradient passes unchanged for values inside the grid's range (all of them here, because the
scale comes from the channel's maximum) and is zero for clipped values. The scale is treated as a
constant (detached), as in the plain STE.

:func:`quantize_to_codes` / :func:`dequantize_codes` give the integer codes and scales of the same grid
such that ``dequantize_codes(*quantize_to_codes(w, b))`` equals ``fake_quantize(w, b)`` bit for bit;
exported models rely on that to reproduce the fake-quantized network exactly.
"""
from __future__ import annotations

import torch

SUPPORTED_BITS = (2, 3, 4, 5, 6, 7, 8)

# A channel of zeros would get scale 0 and 0 * (1/0) = nan inside the rounding op; a tiny floor keeps
# its codes at 0 while leaving real weights (|w| >> 1e-12) untouched.
_MIN_ABS_MAX = 1e-12


def max_code(bits: int) -> int:
    """Largest integer code of the symmetric ``bits``-bit grid: 127 for INT8, 7 for INT4."""
    if bits not in SUPPORTED_BITS:
        raise ValueError(f"bits must be one of {SUPPORTED_BITS}, got {bits!r}")
    return 2 ** (bits - 1) - 1


def channel_scales(weight: torch.Tensor, bits: int) -> torch.Tensor:
    """Per-output-channel scales ``max|w_c| / max_code(bits)`` (float32, shape ``(out_channels,)``, detached)."""
    if weight.dim() < 2:
        raise ValueError(f"per-output-channel quantization needs a weight with >= 2 dims, "
                         f"got shape {tuple(weight.shape)}")
    abs_max = weight.detach().float().abs().flatten(1).amax(dim=1)
    return abs_max.clamp_min(_MIN_ABS_MAX) / max_code(bits)


def fake_quantize(weight: torch.Tensor, bits: int) -> torch.Tensor:
    """Round ``weight`` to the symmetric per-output-channel ``bits``-bit grid; gradients pass straight through.

    Returns a tensor of ``weight``'s shape and dtype holding ``code * scale`` values.
    """
    limit = max_code(bits)
    scales = channel_scales(weight, bits)
    zero_points = torch.zeros(scales.shape, dtype=torch.int32, device=weight.device)
    quantized = torch.fake_quantize_per_channel_affine(weight.float(), scales, zero_points, 0, -limit, limit)
    return quantized.to(weight.dtype)


def quantize_to_codes(weight: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer codes (int8, ``weight``'s shape) and float32 per-channel scales of ``fake_quantize(weight, bits)``."""
    with torch.no_grad():
        scales = channel_scales(weight, bits)
        quantized = fake_quantize(weight.float(), bits)
        # quantized = code * scale exactly, so dividing and rounding recovers the code without error.
        codes = torch.round(quantized / _per_channel_view(scales, weight.dim()))
        return codes.to(torch.int8), scales


def dequantize_codes(codes: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """Float32 weights ``code * scale`` from integer codes and per-output-channel scales."""
    if scales.dim() != 1 or scales.shape[0] != codes.shape[0]:
        raise ValueError(f"expected {codes.shape[0]} per-channel scales for codes of shape {tuple(codes.shape)}, "
                         f"got scales of shape {tuple(scales.shape)}")
    return codes.to(torch.float32) * _per_channel_view(scales.to(torch.float32), codes.dim())


def _per_channel_view(scales: torch.Tensor, ndim: int) -> torch.Tensor:
    return scales.view(-1, *([1] * (ndim - 1)))
