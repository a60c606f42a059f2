"""Real INT8: ONNX Runtime static quantization of an FP32 graph, and proof that it runs on integer kernels.

``quantize_static`` with QDQ format: per-output-channel symmetric int8 weights, uint8 activations whose
ranges come from calibration images (min/max by default). ONNX Runtime's CPU provider fuses each
DequantizeLinear -> Conv -> QuantizeLinear group into ``QLinearConv`` (and likewise ``QLinearAdd``,
``QLinearConcat``, ...), i.e. integer arithmetic; :func:`integer_kernels` counts those nodes in the graph
ONNX Runtime actually runs.

Two parts of the graph stay float by default (:data:`DEFAULT_KEEP_FLOAT`, docs/deployment.md has the
measurements behind the rule):

- the **heads**: the layers that compute the graph outputs (mask head convolution, then its resize to the
  patch; the diagnosis head's last linear layer). A tiny share of the compute; quantizing them would put
  the logits themselves on a 256-level grid.
- the encoder's **early, high-resolution layers** (timm's ``conv_stem`` and block stages ``blocks.0`` and
  ``blocks.1``, stride <= 4): the stem reads the image itself (quantizing it puts the input on 256
  levels), and these layers run at 1/2 and 1/4 of the input size, where quantization noise then feeds
  every deeper layer and the decoder's high-resolution skip paths. Measured on EfficientNet-Lite0, they
  cost nearly all of the INT8 segmentation loss (ungated DSC -0.034 -> -0.002) for 0.16 % more file and
  little time: few channels, few weights.

A node kept float must not sit alone between quantized neighbours: ONNX Runtime (seen with 1.32; its
``WeightBiasQuantization`` graph transformer) quantizes the float weights of a ``DequantizeLinear -> Conv ->
QuantizeLinear`` group itself, per tensor, at session start, which is worse than not excluding it.
:func:`float_nodes_that_run_integer` checks what ONNX Runtime really runs, and the export fails if a node
meant to stay float runs on an integer kernel.

INT4 has no such kernels in ONNX Runtime's CPU provider (its 4-bit support is weight-only: MatMulNBits,
int4 DequantizeLinear), so INT4 stays a storage format: the packed export (``phyjoint export --bits 4``).
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from collections import Counter
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from nnunet_phyjoint.onnx_predict.manifest import INPUT_NAME

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
DEFAULT_CALIBRATION_METHOD = "minmax"
# node-name patterns (substrings of the ONNX node names, which follow the PyTorch module paths) kept float
# besides the heads; "encoder-early": timm's stem convolution and first two block stages (stride <= 4)
KEEP_FLOAT_RULES = {"encoder-early": ("/network/encoder/model/conv_stem/", "/network/encoder/model/blocks.0/",
                                      "/network/encoder/model/blocks.1/")}
DEFAULT_KEEP_FLOAT = ("encoder-early",)
_INTEGER_OPS = ("QLinear", "ConvInteger", "MatMulInteger", "DynamicQuantize")
# ops that only move, resize or reshape data between a weighted layer and a graph output
_PASS_THROUGH_OPS = ("Resize", "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Identity", "Upsample")


def quantize_int8(fp32_path: Path, int8_path: Path, calibration_images: np.ndarray,
                  method: str = DEFAULT_CALIBRATION_METHOD, keep_output_layers_float: bool = True,
                  keep_float: Sequence[str] = DEFAULT_KEEP_FLOAT) -> list[str]:
    """Write the static INT8 (QDQ, per-channel) version of ``fp32_path`` to ``int8_path``.

    ``calibration_images``: float32 (n, C, *patch), fed one at a time. ``keep_output_layers_float``: the
    heads (:func:`output_layer_names`) stay float. ``keep_float``: more nodes to keep float, each entry a
    rule name of :data:`KEEP_FLOAT_RULES` or a substring of node names. Returns the names of the nodes
    kept float.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if method not in CALIBRATION_METHODS:
        raise ValueError(f"calibration method must be one of {CALIBRATION_METHODS}, got {method!r}")
    if len(calibration_images) == 0:
        raise ValueError("INT8 calibration needs at least one image")
    calibrate = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                 "percentile": CalibrationMethod.Percentile}[method]
    fp32_path, int8_path = Path(fp32_path).resolve(), Path(int8_path).resolve()
    # run inside the temporary folder: failing symbolic shape inference dumps its partial model (and a
    # weights file) into the working directory
    with tempfile.TemporaryDirectory(prefix="phyjoint_int8_") as tmp, _working_directory(tmp):
        prepared = Path(tmp) / "prepared.onnx"
        # shape inference and graph clean-up first, as ONNX Runtime recommends before quantizing
        try:
            quant_pre_process(str(fp32_path), str(prepared))
        except Exception:  # noqa: BLE001 - ONNX Runtime raises a bare Exception for it
            # symbolic shape inference gives up on the run-time "same" padding of timm's tf_ encoders;
            # ONNX's own shape inference and the graph optimisation still run
            quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        excluded = keep_float_nodes(prepared, keep_float, keep_output_layers_float)
        quantize_static(str(prepared), str(int8_path), _Images(calibration_images), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=calibrate, nodes_to_exclude=excluded)
        # not CalibMaxIntermediateOutputs: ONNX Runtime's MinMax calibrater drops each full chunk of
        # outputs without reducing it to ranges, so only the last (n mod chunk) images would count and
        # n a multiple of the chunk fails with "No data is collected"; every image is kept instead
    return excluded


def keep_float_patterns(keep_float: Sequence[str]) -> list[str]:
    """Rule names expanded to their node-name patterns; other entries are patterns themselves."""
    patterns: list[str] = []
    for entry in keep_float:
        if not entry:
            raise ValueError("an empty keep-float pattern would match every node")
        patterns.extend(KEEP_FLOAT_RULES.get(entry, (entry,)))
    return patterns


def keep_float_nodes(path: Path, keep_float: Sequence[str] = DEFAULT_KEEP_FLOAT,
                     keep_output_layers_float: bool = True) -> list[str]:
    """Names of the nodes of the graph at ``path`` that :func:`quantize_int8` keeps float."""
    import onnx

    names = [n.name for n in onnx.load(str(path), load_external_data=False).graph.node if n.name]
    chosen = set(output_layer_names(path)) if keep_output_layers_float else set()
    for entry in keep_float:
        for pattern in keep_float_patterns([entry]):
            matched = {n for n in names if pattern in n}
            # a rule may not apply to every encoder; a pattern given by hand that matches nothing is a typo
            if not matched and entry not in KEEP_FLOAT_RULES:
                raise ValueError(f"keep-float pattern {pattern!r} matches no node of the graph")
            chosen |= matched
    return [n for n in names if n in chosen]


def output_layer_names(path: Path) -> list[str]:
    """Names of the heads' last layers: for each graph output, the node writing it and, back through data
    movement (a final ``Resize`` of the mask logits, ``Reshape``, ...), the weighted layer (Conv/Gemm)
    that computes it."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    producer = {out: n for n in model.graph.node for out in n.output}
    initializers = {i.name for i in model.graph.initializer}
    chosen: list[str] = []
    for output in model.graph.output:
        node = producer.get(output.name)
        while node is not None:
            if node.name:
                chosen.append(node.name)
            if node.op_type not in _PASS_THROUGH_OPS:
                break
            # the data input (a Resize's first input; its scales/sizes come from shape arithmetic)
            node = producer.get(node.input[0]) if node.input and node.input[0] not in initializers else None
    return list(dict.fromkeys(chosen))


def integer_kernels(path: Path) -> Counter:
    """Integer-arithmetic operators (``QLinearConv``, ...) in the graph as ONNX Runtime optimises it to run."""
    return Counter(op for _, op in _runtime_nodes(path) if op.startswith(_INTEGER_OPS))


def float_nodes_that_run_integer(path: Path, float_nodes: Sequence[str]) -> list[str]:
    """Those of ``float_nodes`` (weighted layers meant to stay float) that ONNX Runtime runs on an integer
    kernel anyway (a lone float node between quantized neighbours, see the module docstring)."""
    integer = {name for name, op in _runtime_nodes(path) if op.startswith(_INTEGER_OPS)}
    return [n for n in float_nodes if n in integer]


def _runtime_nodes(path: Path) -> list[tuple[str, str]]:
    """(name, op type) of every node of the graph as ONNX Runtime optimises it to run."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="phyjoint_int8_check_") as tmp:
        optimised = Path(tmp) / "optimised.onnx"
        options = ort.SessionOptions()
        # the "extended" level does the QDQ fusions; the full level would also write CPU-specific layouts
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        options.optimized_model_filepath = str(optimised)
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return [(n.name, n.op_type) for n in onnx.load(str(optimised)).graph.node]


@contextlib.contextmanager
def _working_directory(folder: str | Path) -> Iterator[None]:
    previous = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)


class _Images:
    """``CalibrationDataReader`` over an array of images, one per call (ONNX Runtime's protocol)."""

    def __init__(self, images: np.ndarray) -> None:
        self._images: Iterable[np.ndarray] = iter(np.ascontiguousarray(images, dtype=np.float32))

    def get_next(self) -> dict[str, np.ndarray] | None:
        image = next(self._images, None)  # type: ignore[call-overload]
        return None if image is None else {INPUT_NAME: image[None]}
