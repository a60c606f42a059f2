"""Quantization of the shared encoder: fake quantization for training, exact packing for export.

- :mod:`.fake_quant`: per-output-channel symmetric fake quantization with a straight-through estimator.
- :mod:`.qat`: apply it to every conv/linear weight of a module through ``torch.nn.utils.parametrize``.
- :mod:`.packing`: store the resulting integer codes (int8, or two int4 codes per byte) plus scales.
- :mod:`.export`: pack a trained nnU-Net model folder and load it back from safetensors only.
"""
from nnunet_phyjoint.quantization.fake_quant import (
    SUPPORTED_BITS,
    channel_scales,
    dequantize_codes,
    fake_quantize,
    max_code,
    quantize_to_codes,
)
from nnunet_phyjoint.quantization.qat import (
    WeightFakeQuantizer,
    dequantize_qat_state_dict,
    master_state_dict,
    prepare_qat,
    qat_bits,
    quantized_state_dict,
    state_dict_qat_bits,
    strip_qat,
)

__all__ = [
    "SUPPORTED_BITS",
    "WeightFakeQuantizer",
    "channel_scales",
    "dequantize_codes",
    "dequantize_qat_state_dict",
    "fake_quantize",
    "master_state_dict",
    "max_code",
    "prepare_qat",
    "qat_bits",
    "quantize_to_codes",
    "quantized_state_dict",
    "state_dict_qat_bits",
    "strip_qat",
]
