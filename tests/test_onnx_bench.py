"""`phyjoint bench-speed --onnx EXPORT --onnx-only`: the deployment rows, checked for correctness (not speed)."""
from __future__ import annotations

import json

import pytest

from nnunet_phyjoint.cli import main as phyjoint
from onnx_tiny_model import DATASET, tiny_model

pytest.importorskip("onnxruntime", reason="needs the onnx extra (pip install -e '.[onnx]')")


def test_deployment_rows(tmp_path_factory, tmp_path, monkeypatch, capsys):
    tiny = tiny_model(tmp_path_factory)
    monkeypatch.setenv("nnUNet_raw", str(tiny["root"] / "raw"))
    monkeypatch.setenv("nnUNet_preprocessed", str(tiny["root"] / "preprocessed"))
    out = tmp_path / "speed.json"
    assert phyjoint(["bench-speed", "-d", DATASET, "--onnx", str(tiny["export"]), "--onnx-only", "--fold", "0",
                     "--threads", "1", "--onnx-repeats", "2", "--onnx-batch", "2", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    for row in ("PyTorch FP32", "ONNX FP32", "ONNX INT8"):
        assert f"| {row}" in printed
    assert "targets: INT8 speed-up over PyTorch FP32" in printed and "validation case case_a" in printed

    result = json.loads(out.read_text())["onnx"]
    rows = result["rows"]
    assert rows["ONNX INT8"]["file_bytes"] < rows["ONNX FP32"]["file_bytes"]
    assert rows["ONNX FP32"]["file_bytes"] == (tiny["export"] / "fold_0" / "model_fp32.onnx").stat().st_size
    for r in rows.values():
        assert r["latency_ms"] > 0 and r["images_per_second"] > 0 and r["batch"] == 2
        assert r["n_cases"] == 1 and 0.0 <= r["dsc_lesion_only"] <= 1.0  # fold 0 validates on case_a alone
    # one pipeline for all rows: the FP32 graph gives PyTorch's numbers
    assert rows["ONNX FP32"]["dsc_lesion_only"] == pytest.approx(rows["PyTorch FP32"]["dsc_lesion_only"], abs=1e-3)
    assert rows["ONNX FP32"]["f1_macro"] == rows["PyTorch FP32"]["f1_macro"]

    assert phyjoint(["bench-speed", "-d", DATASET, "--onnx-only"]) == 2
    assert "--onnx-only needs --onnx" in capsys.readouterr().err
