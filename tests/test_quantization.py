"""Fake quantization, QAT preparation, exact packing and the optimizer factory."""
from __future__ import annotations

import copy
import io

import pytest
import torch
from torch import nn

from nnunet_phyjoint.optim import build_optimizer, optimizer_state_bytes
from nnunet_phyjoint.quantization import (
    dequantize_codes,
    fake_quantize,
    master_state_dict,
    prepare_qat,
    qat_bits,
    quantize_to_codes,
    quantized_state_dict,
    strip_qat,
)
from nnunet_phyjoint.quantization.packing import pack_codes, pack_weights, unpack_codes, unpack_weights


def _timm_encoder() -> nn.Module:
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    return timm.create_model("efficientnet_b0", features_only=True, pretrained=False).eval()


def _relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).detach().norm() / b.detach().norm())


# --- fake quantization -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bits, levels", [(8, 255), (4, 15), (2, 3)])
def test_fake_quantize_uses_symmetric_grid_with_expected_level_count(bits, levels):
    amplitudes = torch.tensor([0.05, 1.0, 3.0])
    weight = torch.linspace(-1, 1, 4001).repeat(3, 1) * amplitudes[:, None]
    quantized = fake_quantize(weight, bits)
    for channel, amplitude in enumerate(amplitudes):
        assert quantized[channel].unique().numel() == levels
        scale = amplitude / (2 ** (bits - 1) - 1)
        codes = quantized[channel] / scale
        assert torch.allclose(codes, codes.round(), atol=1e-4)  # multiples of the channel's own scale
        assert quantized[channel].abs().max() == pytest.approx(float(amplitude), rel=1e-6)
    assert torch.equal(fake_quantize(-weight, bits), -quantized)  # symmetric: no extra negative level


def test_fake_quantize_gradient_is_straight_through():
    weight = torch.randn(8, 4, 3, 3, requires_grad=True)
    upstream = torch.randn(8, 4, 3, 3)
    (fake_quantize(weight, 4) * upstream).sum().backward()
    assert torch.equal(weight.grad, upstream)


def test_fake_quantize_keeps_zero_channels_finite():
    weight = torch.randn(3, 10)
    weight[1] = 0
    quantized = fake_quantize(weight, 8)
    assert torch.isfinite(quantized).all() and torch.equal(quantized[1], torch.zeros(10))


@pytest.mark.parametrize("bits", [1, 9, 16])
def test_fake_quantize_rejects_unsupported_bits(bits):
    with pytest.raises(ValueError, match="bits"):
        fake_quantize(torch.randn(2, 2), bits)


@pytest.mark.parametrize("layer", [nn.Conv2d(16, 32, 3, padding=1), nn.Linear(256, 64)], ids=["conv", "linear"])
def test_quantized_layer_output_is_close_to_float(layer):
    torch.manual_seed(0)
    x = torch.randn(2, 16, 16, 16) if isinstance(layer, nn.Conv2d) else torch.randn(8, 256)
    reference = layer(x)
    errors = {}
    for bits in (8, 4):
        quantized = prepare_qat(copy.deepcopy(layer), bits)
        errors[bits] = _relative_error(quantized(x), reference)
    assert errors[8] < 0.01
    assert errors[8] < errors[4] < 0.15


@pytest.mark.parametrize("bits", [8, 4])
def test_codes_and_scales_reproduce_fake_quantization_exactly(bits):
    weight = torch.randn(24, 7, 3, 3) * torch.rand(24, 1, 1, 1)
    codes, scales = quantize_to_codes(weight, bits)
    assert codes.dtype == torch.int8 and int(codes.abs().max()) == 2 ** (bits - 1) - 1
    assert torch.equal(dequantize_codes(codes, scales), fake_quantize(weight, bits))


# --- packing -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bits, numel", [(8, 10), (4, 10), (4, 11)])
def test_pack_codes_round_trip(bits, numel):
    limit = 2 ** (bits - 1) - 1
    codes = torch.randint(-limit, limit + 1, (numel,), dtype=torch.int8)
    packed = pack_codes(codes, bits)
    assert packed.numel() == (numel if bits == 8 else (numel + 1) // 2)
    assert torch.equal(unpack_codes(packed, bits, (numel,)), codes)


def test_pack_codes_rejects_out_of_range_codes():
    with pytest.raises(ValueError, match="range"):
        pack_codes(torch.tensor([8], dtype=torch.int8), 4)


@pytest.mark.parametrize("bits, limit", [(8, 0.26), (4, 0.14)])
def test_packed_encoder_weights_are_small_and_exact(bits, limit):
    encoder = _timm_encoder()
    weights = {f"{n}.weight": m.weight.detach() for n, m in encoder.named_modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))}
    tensors, metadata = pack_weights(weights, bits)
    packed_bytes = sum(t.numel() * t.element_size() for t in tensors.values())
    fp32_bytes = sum(w.numel() * 4 for w in weights.values())
    assert packed_bytes <= limit * fp32_bytes
    restored = unpack_weights(tensors, metadata)
    assert all(torch.equal(restored[k], fake_quantize(w, bits)) for k, w in weights.items())


# --- prepare_qat -------------------------------------------------------------------------------------------------

def test_prepare_qat_fake_quantizes_every_conv_and_keeps_masters_trainable():
    encoder = _timm_encoder()
    n_convs = sum(isinstance(m, nn.Conv2d) for m in encoder.modules())
    float_encoder = copy.deepcopy(encoder)
    prepare_qat(encoder, 8)
    assert qat_bits(encoder) == 8 and qat_bits(float_encoder) is None
    quantized_layers = [m for m in encoder.modules() if hasattr(m, "parametrizations")]
    assert len(quantized_layers) == n_convs
    assert all(m.parametrizations.weight.original.requires_grad for m in quantized_layers)
    # same parameters as before (the masters), so an optimizer built now trains them
    assert sum(p.numel() for p in encoder.parameters()) == sum(p.numel() for p in float_encoder.parameters())

    x = torch.randn(1, 3, 64, 64)
    out, ref = encoder(x)[-1], float_encoder(x)[-1]
    assert not torch.equal(out, ref) and _relative_error(out, ref) < 0.1

    encoder.train()
    optimizer = torch.optim.SGD(encoder.parameters(), lr=0.1)
    stem = encoder.conv_stem.parametrizations.weight.original
    before = stem.detach().clone()
    sum(f.mean() for f in encoder(x)).backward()
    assert stem.grad is not None and stem.grad.abs().sum() > 0
    optimizer.step()
    assert not torch.equal(stem, before)


def test_prepare_qat_is_idempotent_and_refuses_a_second_bit_width():
    layer = prepare_qat(nn.Linear(4, 4), 4)
    prepare_qat(layer, 4)
    assert len(layer.parametrizations.weight) == 1
    with pytest.raises(ValueError, match="already fake-quantized"):
        prepare_qat(layer, 8)
    with pytest.raises(ValueError, match="no Conv2d, Linear layer"):
        prepare_qat(nn.ReLU(), 8)


def test_qat_state_dict_round_trips_through_torch_save_and_deepcopy():
    encoder = prepare_qat(_timm_encoder(), 4)
    with torch.no_grad():
        encoder.conv_stem.parametrizations.weight.original.mul_(1.5)  # differ from a fresh init
    keys = encoder.state_dict().keys()
    assert "conv_stem.parametrizations.weight.original" in keys
    assert "conv_stem.parametrizations.weight.0._extra_state" in keys and "conv_stem.weight" not in keys

    buffer = io.BytesIO()
    torch.save(encoder.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    fresh = prepare_qat(_timm_encoder(), 4)
    fresh.load_state_dict(state)
    x = torch.randn(1, 3, 64, 64)
    assert torch.equal(fresh(x)[-1], encoder(x)[-1])
    assert torch.equal(copy.deepcopy(encoder)(x)[-1], encoder(x)[-1])

    with pytest.raises(ValueError, match="4-bit"):
        prepare_qat(_timm_encoder(), 8).load_state_dict(state)


def test_quantized_state_dict_and_strip_qat_give_a_plain_network_with_the_same_output():
    encoder = prepare_qat(_timm_encoder(), 4)
    x = torch.randn(1, 3, 64, 64)
    expected = encoder(x)[-1]

    plain_state = quantized_state_dict(encoder)
    assert not any("parametrizations" in k for k in plain_state)
    plain = _timm_encoder()
    plain.load_state_dict(plain_state)
    assert torch.equal(plain(x)[-1], expected)

    masters = master_state_dict(encoder.state_dict())
    assert torch.equal(masters["conv_stem.weight"], encoder.conv_stem.parametrizations.weight.original)

    strip_qat(encoder)
    assert qat_bits(encoder) is None and set(encoder.state_dict()) == set(plain_state)
    assert torch.equal(encoder(x)[-1], expected)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_qat_trains_on_cuda_under_fp16_autocast():
    encoder = prepare_qat(_timm_encoder(), 4).cuda().train()
    optimizer = build_optimizer(encoder.parameters(), "adamw8bit", lr=1e-3)
    scaler = torch.amp.GradScaler("cuda")
    x = torch.randn(2, 3, 64, 64, device="cuda")
    with torch.autocast("cuda", dtype=torch.float16):
        features = encoder(x)
        assert features[-1].dtype == torch.float16
        loss = sum(f.float().pow(2).mean() for f in features)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    assert all(torch.isfinite(p).all() for p in encoder.parameters())
    assert qat_bits(copy.deepcopy(encoder)) == 4


# --- optimizer factory -------------------------------------------------------------------------------------------

def _toy_regression(name: str) -> tuple[list[float], torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = nn.Linear(128, 64)  # 8192 weights: above AdamW8bit's 4096-element threshold, so the state is 8-bit
    x = torch.randn(256, 128)
    target = x @ torch.randn(128, 64) * 0.1
    optimizer = build_optimizer(model.parameters(), name, lr=1e-2, weight_decay=0.0)
    losses = []
    for _ in range(30):
        loss = nn.functional.mse_loss(model(x), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses, optimizer


def test_adamw8bit_steps_on_cpu_and_reduces_a_toy_loss():
    losses, optimizer = _toy_regression("adamw8bit")
    assert type(optimizer).__name__ == "AdamW8bit"
    assert losses[-1] < 0.5 * losses[0]
    state = optimizer.state[optimizer.param_groups[0]["params"][0]]
    assert state["state1"].dtype == torch.uint8


def test_optimizer_state_bytes_is_smaller_for_8bit():
    _, adamw = _toy_regression("adamw")
    _, adamw8 = _toy_regression("adamw8bit")
    full, eight = optimizer_state_bytes(adamw), optimizer_state_bytes(adamw8)
    assert full >= 2 * 4 * (128 * 64 + 64)  # two float32 moments per value
    assert eight < 0.4 * full


def test_build_optimizer_rejects_unknown_names():
    with pytest.raises(ValueError, match="adamw8bit"):
        build_optimizer(nn.Linear(2, 2).parameters(), "sgd")
