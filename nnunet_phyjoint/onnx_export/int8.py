"""Real INT8: ONNX Runtime static quantization of an FP32 graph, and proof that it runs on integer kernels.

``quantize_static`` with QDQ format: per-output-channel symmetric int8 weights, uint8 activations whose
ranges come from calibration images (min/max by default). ONNX Runtime's CPU provider fuses each
DequantizeLinear -> Conv -> QuantizeLinear group into ``QLinearConv`` (and likewise ``QLinearAdd``,
``QLinearConcat``, ...), i.e. integer arithmetic; :func:`integer_kernels` counts those nodes in the graph
ONNX Runtime actually runs. The layers that produce the graph outputs (mask head, diagnosis head) stay
float by default: they are a tiny part of the compute, and quantizing them would put the logits
themselves on a 256-level grid.

INT4 has no such kernels in ONNX Runtime's CPU provider (its 4-bit support is weight-only: MatMulNBits,
int4 DequantizeLinear), so INT4 stays a storage format: the packed export (``phyjoint export --bits 4``).
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from collections import Counter
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from nnunet_phyjoint.onnx_predict.manifest import INPUT_NAME

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
_INTEGER_OPS = ("QLinear", "ConvInteger", "MatMulInteger", "DynamicQuantize")


def quantize_int8(fp32_path: Path, int8_path: Path, calibration_images: np.ndarray, method: str = "minmax",
                  keep_output_layers_float: bool = True) -> None:
    """Write the static INT8 (QDQ, per-channel) version of ``fp32_path`` to ``int8_path``.

    ``calibration_images``: float32 (n, C, *patch), fed one at a time.
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
        excluded = output_layer_names(prepared) if keep_output_layers_float else []
        quantize_static(str(prepared), str(int8_path), _Images(calibration_images), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=calibrate, nodes_to_exclude=excluded)
        # not CalibMaxIntermediateOutputs: ONNX Runtime's MinMax calibrater drops each full chunk of
        # outputs without reducing it to ranges, so only the last (n mod chunk) images would count and
        # n a multiple of the chunk fails with "No data is collected"; every image is kept instead


def output_layer_names(path: Path) -> list[str]:
    """Names of the nodes that write the graph's outputs."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    outputs = {o.name for o in model.graph.output}
    return [n.name for n in model.graph.node if outputs.intersection(n.output) and n.name]


def integer_kernels(path: Path) -> Counter:
    """Integer-arithmetic operators (``QLinearConv``, ...) in the graph as ONNX Runtime optimises it to run."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="phyjoint_int8_check_") as tmp:
        optimised = Path(tmp) / "optimised.onnx"
        options = ort.SessionOptions()
        # the "extended" level does the QDQ fusions; the full level would also write CPU-specific layouts
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        options.optimized_model_filepath = str(optimised)
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        nodes = onnx.load(str(optimised)).graph.node
    return Counter(n.op_type for n in nodes if n.op_type.startswith(_INTEGER_OPS))


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
