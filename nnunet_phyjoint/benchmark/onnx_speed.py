"""Deployment rows of ``phyjoint bench-speed --onnx EXPORT``: PyTorch FP32 vs ONNX Runtime FP32 and INT8.

The same fold's network three ways: PyTorch (the checkpoint the export came from), the FP32 graph
and the INT8 graph. Per row:

- latency: one forward pass (both outputs) of one patch-sized preprocessed image at batch 1, median of
  ``repeats`` after warm-up, with ``threads`` intra-op threads (PyTorch ``set_num_threads``, ONNX Runtime
  ``intra_op_num_threads``);
- images/s: forward passes at batch ``batch`` with the same threads;
- size: the graph file (PyTorch: the network's float32 weights, i.e. a safetensors file of them);
- DSC / F1: every image of the fold's validation split predicted end to end by the standalone
  pipeline (:class:`~nnunet_phyjoint.onnx_predict.predictor.ExportPredictor`: nnU-Net's preprocessing,
  mirroring, sliding window, diagnosis gating as ``phyjoint predict`` does it) with that row's network,
  against ``labelsTr`` and the classes in dataset.json; lesion-only DSC (cases with a lesion) and macro F1.

All three rows run through one pipeline, so the differences between them are those of the runtime and
the precision alone.
"""
from __future__ import annotations

import json
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

ROWS = ("PyTorch FP32", "ONNX FP32", "ONNX INT8")
TARGET_SPEEDUP, TARGET_DSC, TARGET_F1, TARGET_SIZE = 1.5, 0.005, 0.01, 0.30  # issue 14's "done when"


@dataclass
class ValidationCase:
    case_id: str
    images: list[Path]
    label: Path
    true_class: int


def validation_cases(dataset_name: str, fold: int, limit: int | None = None) -> list[ValidationCase]:
    """The fold's validation cases with raw images, labels and diagnosis; [] where the raw data is absent."""
    from nnunet_phyjoint.metadata import CLASS_NAMES, METADATA_KEY, load_case_metadata
    from nnunet_phyjoint.paths import preprocessed_dir, raw_dir

    splits_file = preprocessed_dir() / dataset_name / "splits_final.json"
    raw = raw_dir() / dataset_name
    if not splits_file.is_file() or not (raw / "dataset.json").is_file():
        return []
    dataset_json = json.loads((raw / "dataset.json").read_text())
    # a dataset without our metadata has no diagnosis to score: no cases (the rows are then timing only)
    labels = {c: m.label for c, m in load_case_metadata(dataset_json).items()} if METADATA_KEY in dataset_json else {}
    ending = dataset_json.get("file_ending", ".png")
    splits = json.loads(splits_file.read_text())
    if fold >= len(splits):
        return []
    cases = []
    for case in sorted(splits[fold]["val"])[:limit]:
        images = sorted((raw / "imagesTr").glob(f"{case}_[0-9][0-9][0-9][0-9]{ending}"))
        label = raw / "labelsTr" / f"{case}{ending}"
        if images and label.is_file() and labels.get(case) in CLASS_NAMES:
            cases.append(ValidationCase(case, images, label, CLASS_NAMES.index(labels[case])))
    return cases


def torch_network(manifest: dict[str, Any], export_folder: Path, fold: int | str):
    """The PyTorch network of the checkpoint the export was made from (eval mode, CPU), and its weight bytes."""
    import torch

    from nnunet_phyjoint.quantization.export import _load_strict, _read_checkpoint, build_network_from_plans
    from nnunet_phyjoint.quantization.qat import dequantize_qat_state_dict

    checkpoint_path = Path(manifest["source_model_folder"]) / f"fold_{fold}" / manifest["source_checkpoint"]
    if not checkpoint_path.is_file():
        raise FileNotFoundError(f"{checkpoint_path} not found: the PyTorch row needs the checkpoint "
                                f"{export_folder} was exported from")
    checkpoint = _read_checkpoint(checkpoint_path)
    plans = json.loads((export_folder / "plans.json").read_text())
    dataset_json = json.loads((export_folder / "dataset.json").read_text())
    network = build_network_from_plans(plans, dataset_json, manifest["configuration"])
    _load_strict(network, dequantize_qat_state_dict(checkpoint["network_weights"]), source=str(checkpoint_path))
    weight_bytes = sum(t.numel() * 4 for t in network.state_dict().values() if torch.is_floating_point(t))
    return network.eval(), weight_bytes


def torch_runner(network) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """A sliding-window runner around a PyTorch network (what the ONNX graphs compute)."""
    import torch

    def run(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with torch.inference_mode():
            seg, cls = network(torch.from_numpy(batch), return_class_logits=True)
        return seg.numpy(), cls.numpy()

    return run


def time_runner(run: Callable[[np.ndarray], Any], image: np.ndarray, batch: int, repeats: int) -> dict[str, float]:
    """Median batch-1 latency (ms) and images/s at ``batch``; three warm-up calls each."""
    one = np.ascontiguousarray(image[None], dtype=np.float32)
    many = np.ascontiguousarray(np.repeat(one, batch, axis=0))
    results = {}
    for key, x in (("latency", one), ("batched", many)):
        for _ in range(3):
            run(x)
        times = []
        for _ in range(repeats if key == "latency" else max(3, repeats // batch)):
            start = time.perf_counter()
            run(x)
            times.append(time.perf_counter() - start)
        results[key] = statistics.median(times)
    return {"latency_ms": 1000 * results["latency"], "images_per_second": batch / results["batched"],
            "batch": batch, "repeats": repeats}


def accuracy(predict: Callable[[np.ndarray], Any], cases: Sequence[ValidationCase]) -> dict[str, Any]:
    """Lesion-only DSC and macro F1 of end-to-end predictions (diagnosis-gated masks, as ``phyjoint predict``)."""
    from nnunet_phyjoint.evaluation.classification_metrics import scalar_metrics
    from nnunet_phyjoint.evaluation.io import read_mask
    from nnunet_phyjoint.evaluation.segmentation_metrics import dice_jaccard
    from nnunet_phyjoint.inference.normal_gating import is_called_normal
    from nnunet_phyjoint.onnx_predict.preprocessing import read_case

    dsc, probs, started = [], [], time.perf_counter()
    for case in cases:
        result = predict(read_case(case.images))
        mask = result.segmentation > 0
        if is_called_normal(result.probabilities):
            mask = np.zeros_like(mask)
        gt = read_mask(case.label)
        if gt.any():
            dsc.append(dice_jaccard(gt, mask)[0])
        probs.append(result.probabilities)
    probs_arr = np.array(probs)
    y_true = np.array([c.true_class for c in cases])
    cls = scalar_metrics(y_true, probs_arr, probs_arr.argmax(1))
    return {"dsc_lesion_only": float(np.mean(dsc)) if dsc else float("nan"), "n_lesion_cases": len(dsc),
            "f1_macro": cls["f1_macro"], "accuracy": cls["accuracy"], "n_cases": len(cases),
            "seconds_per_case": (time.perf_counter() - started) / max(1, len(cases))}


def measure_deployment(export_folder: Path, dataset_name: str, fold: int = 0, threads: int = 2, repeats: int = 20,
                       batch: int = 8, accuracy_cases: int | None = None) -> dict[str, Any]:
    """The three rows for ``fold`` of the export (INT8 only when it was exported with ``--bits 8``)."""
    import torch

    from nnunet_phyjoint.onnx_export.calibration import as_patch
    from nnunet_phyjoint.onnx_predict.manifest import fold_model_path, read_manifest
    from nnunet_phyjoint.onnx_predict.predictor import ExportPredictor, session_runner
    from nnunet_phyjoint.onnx_predict.preprocessing import preprocess_case, read_case

    export_folder = Path(export_folder)
    manifest = read_manifest(export_folder)
    network, weight_bytes = torch_network(manifest, export_folder, fold)
    runners: dict[str, tuple[Callable, int]] = {"PyTorch FP32": (torch_runner(network), weight_bytes)}
    for precision, row in (("fp32", "ONNX FP32"), ("int8", "ONNX INT8")):
        try:
            path = fold_model_path(export_folder, manifest, fold, precision)
        except ValueError:
            continue  # no INT8 graph in an FP32-only export
        runners[row] = (session_runner(path, threads), path.stat().st_size)

    cases = validation_cases(dataset_name, fold, accuracy_cases) if accuracy_cases != 0 else []
    patch = manifest["preprocessing"]["patch_size"]
    if cases:
        image = as_patch(preprocess_case(read_case(cases[0].images), manifest["preprocessing"])[0][:, 0], patch)
        image_source = f"validation case {cases[0].case_id}"
    else:
        image = np.random.default_rng(0).standard_normal((manifest["num_input_channels"], *patch)).astype(np.float32)
        image_source = "random image (no raw validation data found)"

    saved_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    rows: dict[str, dict[str, Any]] = {}
    try:
        for row, (run, size) in runners.items():
            rows[row] = {"file_bytes": size, **time_runner(run, image, batch, repeats)}
            if cases:
                predictor = ExportPredictor(manifest, [run])
                rows[row].update(accuracy(predictor.predict, cases))
    finally:
        torch.set_num_threads(saved_threads)
    return {"export": str(export_folder), "fold": fold, "threads": threads, "input_shape": list(image.shape),
            "timing_image": image_source, "cpu": _cpu_name(), "rows": rows}


def format_deployment_table(result: dict[str, Any]) -> str:
    """The rows as a markdown table, then how the INT8 row compares with issue 14's targets."""
    rows = result["rows"]
    base = rows["PyTorch FP32"]
    has_acc = "dsc_lesion_only" in base
    head = ["", "batch-1 ms", f"images/s (batch {base['batch']})", "speed-up", "file MB"]
    head += ["DSC (lesion)", "F1 (macro)", "s/case end to end"] if has_acc else []
    body = []
    for name, r in rows.items():
        cells = [name, f"{r['latency_ms']:.1f}", f"{r['images_per_second']:.1f}",
                 f"{base['latency_ms'] / r['latency_ms']:.2f}x", f"{r['file_bytes'] / 1e6:.2f}"]
        if has_acc:
            cells += [f"{r['dsc_lesion_only']:.4f}", f"{r['f1_macro']:.4f}", f"{r['seconds_per_case']:.3f}"]
        body.append(cells)
    widths = [max(len(row[i]) for row in (head, *body)) for i in range(len(head))]
    line = lambda r: "| " + " | ".join(v.ljust(w) for v, w in zip(r, widths)) + " |"  # noqa: E731
    lines = [f"fold {result['fold']}, input {result['input_shape']} ({result['timing_image']}), "
             f"{result['threads']} threads, {result['cpu']}",
             line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, body)]
    if "ONNX INT8" in rows:
        lines.append(_target_line(rows))
    return "\n".join(lines)


def _target_line(rows: dict[str, dict[str, Any]]) -> str:
    int8, torch_row, fp32 = rows["ONNX INT8"], rows["PyTorch FP32"], rows.get("ONNX FP32")
    checks = [_check(f"INT8 speed-up over PyTorch FP32 {torch_row['latency_ms'] / int8['latency_ms']:.2f}x",
                     torch_row["latency_ms"] / int8["latency_ms"] >= TARGET_SPEEDUP, f">= {TARGET_SPEEDUP}x")]
    if fp32 is not None:
        ratio = int8["file_bytes"] / fp32["file_bytes"]
        checks.append(_check(f"INT8/FP32 file {ratio:.1%}", ratio <= TARGET_SIZE, f"<= {TARGET_SIZE:.0%}"))
    if "dsc_lesion_only" in int8:
        d_dsc = int8["dsc_lesion_only"] - torch_row["dsc_lesion_only"]
        d_f1 = int8["f1_macro"] - torch_row["f1_macro"]
        checks.append(_check(f"DSC {d_dsc:+.4f}", abs(d_dsc) <= TARGET_DSC, f"within {TARGET_DSC}"))
        checks.append(_check(f"F1 {d_f1:+.4f}", abs(d_f1) <= TARGET_F1, f"within {TARGET_F1}"))
    return "targets: " + "; ".join(checks)


def _check(text: str, ok: bool, target: str) -> str:
    return f"{text} ({'met' if ok else 'MISSED'}: {target})"


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} logical CPUs)"
    except OSError:
        pass
    return f"{os.cpu_count()} logical CPUs"
