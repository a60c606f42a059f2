"""One fold's network as an ONNX graph: preprocessed image in, lesion-mask logits and diagnosis logits out.

The graph is traced by PyTorch's TorchScript-based exporter (``dynamo=False``: it needs no extra
package and handles timm's encoders) at the plans' patch size; the batch axis is dynamic, the spatial
size fixed (the predictor always feeds patch-sized tiles, and TensorFlow-"same" padding of the
``tf_`` encoders is traced for that size).
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from nnunet_phyjoint.onnx_predict.manifest import INPUT_NAME, OUTPUT_NAMES

OPSET = 17


class JointOutputs(nn.Module):
    """``network(x, return_class_logits=True)`` as a plain two-output module (what the exporter traces)."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        seg, class_logits = self.network(x, return_class_logits=True)
        return seg, class_logits


def export_graph(network: nn.Module, path: Path, input_channels: int, patch_size: Sequence[int],
                 opset: int = OPSET) -> None:
    """Write ``network`` (eval mode, deep supervision off) to ``path``: input ``image`` (batch, C, *patch)."""
    wrapper = JointOutputs(network).eval()  # a wrapper left in train mode would put BatchNorm in train mode
    dummy = torch.zeros(1, input_channels, *patch_size)
    batch = {0: "batch"}
    with warnings.catch_warnings():
        # shape checks in the network become constants for this size (intended); the exporter's
        # own deprecation notice for dynamo=False says nothing about the result
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        with torch.no_grad():
            torch.onnx.export(wrapper, (dummy,), str(path), dynamo=False, opset_version=opset,
                              input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
                              dynamic_axes={name: batch for name in (INPUT_NAME, *OUTPUT_NAMES)},
                              do_constant_folding=True)
    network.eval()


def torch_outputs(network: nn.Module, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PyTorch's (segmentation logits, diagnosis logits) of a batch, for comparisons."""
    with torch.no_grad():
        seg, cls = network.eval()(torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)),
                                  return_class_logits=True)
    return seg.numpy(), cls.numpy()


def compare_outputs(path: Path, reference: tuple[np.ndarray, np.ndarray], images: np.ndarray) -> dict[str, float]:
    """How far ONNX Runtime's outputs of the graph at ``path`` are from ``reference`` on ``images``.

    Max absolute differences of both outputs, the largest reference magnitude (their scale), and the
    fractions of pixels / images whose argmax (mask label / diagnosis) agrees.
    """
    from nnunet_phyjoint.onnx_predict.predictor import session_runner

    seg, cls = session_runner(path)(np.ascontiguousarray(images, dtype=np.float32))
    ref_seg, ref_cls = reference
    return {
        "max_abs_diff_segmentation": float(np.abs(seg - ref_seg).max()),
        "max_abs_diff_class": float(np.abs(cls - ref_cls).max()),
        "max_abs_reference": float(max(np.abs(ref_seg).max(), np.abs(ref_cls).max())),
        "mask_agreement": float((seg.argmax(1) == ref_seg.argmax(1)).mean()),
        "diagnosis_agreement": float((cls.argmax(1) == ref_cls.argmax(1)).mean()),
        "n_images": int(len(images)),
    }
