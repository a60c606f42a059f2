"""One case through the exported model: preprocessing, sliding windows per fold, fold ensemble, original size.

The network is a :data:`~nnunet_phyjoint.onnx_predict.sliding_window.Runner` per fold (an ONNX Runtime
session from :func:`onnx_runners`; the speed benchmark passes PyTorch ones), so the same numpy
pipeline serves every backend. As in nnU-Net, the segmentation of several folds is the mean of their
(float16) logits, resampled to the cropped original size and put back into the uncropped image; the
diagnosis is the mean of the folds' softmax (``PhyJointPredictor``'s convention).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from nnunet_phyjoint.onnx_predict.manifest import INPUT_NAME, fold_model_path, read_manifest
from nnunet_phyjoint.onnx_predict.preprocessing import preprocess_case, resample, revert_geometry
from nnunet_phyjoint.onnx_predict.sliding_window import Runner, predict_sliding_window


@dataclass(frozen=True)
class CasePrediction:
    """The label map at the input image's size and the diagnosis probabilities (order of ``class_names``)."""

    segmentation: np.ndarray
    probabilities: np.ndarray


class ExportPredictor:
    """Predicts cases with one runner per fold and the preprocessing recorded in the export's manifest."""

    def __init__(self, manifest: dict[str, Any], runners: Sequence[Runner], use_mirroring: bool = True,
                 tile_step_size: float | None = None):
        if not runners:
            raise ValueError("at least one fold is needed")
        self.manifest = manifest
        self.runners = list(runners)
        self.mirror_axes = manifest["inference_allowed_mirroring_axes"] if use_mirroring else None
        inference = manifest["inference"]
        self.tile_step_size = float(tile_step_size if tile_step_size is not None else inference["tile_step_size"])
        self.use_gaussian = bool(inference.get("use_gaussian", True))

    def predict(self, data: np.ndarray) -> CasePrediction:
        """Prediction for one case read as nnU-Net reads it: float32 (C, 1, H, W)."""
        pre = self.manifest["preprocessing"]
        image, geometry = preprocess_case(data, pre)
        logits, diagnoses = None, []
        for run in self.runners:
            fold_logits, diagnosis = predict_sliding_window(
                run, image, pre["patch_size"], int(self.manifest["num_segmentation_heads"]), self.mirror_axes,
                self.tile_step_size, self.use_gaussian)
            logits = fold_logits if logits is None else logits + fold_logits  # float16, as nnU-Net sums them
            diagnoses.append(diagnosis)
        if len(self.runners) > 1:
            logits = logits / np.float16(len(self.runners))
        network_spacing = [geometry.spacing[0], *pre["spacing"]] if len(pre["spacing"]) < len(geometry.spacing) \
            else list(pre["spacing"])
        logits = resample(logits, geometry.shape_after_cropping, network_spacing, geometry.spacing,
                          pre["resampling_probabilities"])
        segmentation = revert_geometry(np.argmax(logits, axis=0), geometry, pre["transpose_backward"])
        return CasePrediction(segmentation[0], np.mean(diagnoses, axis=0))


def onnx_runners(folder: str | Path, folds: Sequence[int | str] | None = None, precision: str | None = None,
                 threads: int | None = None) -> tuple[dict[str, Any], list[Runner], list[Path]]:
    """(manifest, one ONNX Runtime runner per fold, their graph files) for the export in ``folder``.

    ``precision`` defaults to the export's ``default_precision``; ``threads`` sets ONNX Runtime's intra-op
    threads (default: its own choice, the physical cores).
    """
    manifest = read_manifest(folder)
    precision = precision or manifest["default_precision"]
    folds = list(folds) if folds else [f["fold"] for f in manifest["folds"]]
    paths = [fold_model_path(folder, manifest, f, precision) for f in folds]
    return manifest, [session_runner(p, threads) for p in paths], paths


def session_runner(path: str | Path, threads: int | None = None) -> Runner:
    """A runner around an ONNX Runtime CPU session of the graph at ``path``."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        seg, cls = session.run(None, {INPUT_NAME: batch})
        return seg, cls

    run.session = session  # type: ignore[attr-defined]  (the benchmark times the session itself)
    return run
