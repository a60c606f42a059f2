"""``phyjoint export --format onnx``: a trained model folder as ONNX graphs for ONNX Runtime, FP32 and real INT8.

- :mod:`.graph`: one fold's network (deep supervision off) as an ONNX graph with both outputs, checked
  against PyTorch.
- :mod:`.calibration`: preprocessed training images of a fold, as nnU-Net's preprocessing wrote them.
- :mod:`.int8`: ONNX Runtime static quantization (QDQ, per-channel weights), and a check that ONNX Runtime
  runs the result with integer kernels.
- :mod:`.folder`: the export folder, written atomically, with the manifest the standalone predictor
  (:mod:`nnunet_phyjoint.onnx_predict`) reads.
"""
