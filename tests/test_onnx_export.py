"""`phyjoint export --format onnx [--bits 8]`: graphs per fold, checked against PyTorch, real INT8, manifest."""
from __future__ import annotations

import json

import numpy as np
import pytest

from nnunet_phyjoint.cli import main as phyjoint
from onnx_tiny_model import PATCH, tiny_model

pytest.importorskip("onnxruntime", reason="needs the onnx extra (pip install -e '.[onnx]')")


@pytest.fixture
def tiny(tmp_path_factory):
    return tiny_model(tmp_path_factory)


def test_export_layout_and_manifest(tiny):
    export = tiny["export"]
    files = sorted(p.relative_to(export).as_posix() for p in export.rglob("*") if p.is_file())
    assert files == ["dataset.json", "fold_0/model_fp32.onnx", "fold_0/model_int8.onnx", "fold_1/model_fp32.onnx",
                     "fold_1/model_int8.onnx", "phyjoint_onnx.json", "plans.json"]
    manifest = json.loads((export / "phyjoint_onnx.json").read_text())
    assert manifest["default_precision"] == "int8" and manifest["opset"] == 17
    assert manifest["input"]["shape"] == ["batch", 1, PATCH, PATCH]
    assert manifest["inference_allowed_mirroring_axes"] == [1]
    assert manifest["class_names"] == ["normal", "benign", "malignant"]
    pre = manifest["preprocessing"]
    assert pre["spacing"] == [2.0, 2.0] and pre["normalization_schemes"] == ["ZScoreNormalization"]
    assert [f["fold"] for f in manifest["folds"]] == [0, 1]
    assert not any(p.name.startswith(".export_int8.tmp") for p in export.parent.iterdir())  # staging removed


def test_onnx_runtime_matches_pytorch_with_dynamic_batch(tiny):
    """The FP32 graph computes what the checkpoint computes (bound 1e-4 on these logits), at any batch size."""
    import onnx
    import torch

    from nnunet_phyjoint.onnx_export.graph import torch_outputs
    from nnunet_phyjoint.onnx_predict.predictor import session_runner
    from nnunet_phyjoint.quantization.export import build_network_from_plans

    entry = tiny["report"]["folds"]["0"]
    assert entry["checks"]["fp32"]["max_abs_diff_segmentation"] < 1e-4
    assert entry["checks"]["fp32"]["max_abs_diff_class"] < 1e-4

    network = build_network_from_plans(tiny["plans"], tiny["dataset_json"], "2d")
    state = torch.load(tiny["model"] / "fold_1" / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    network.load_state_dict(state["network_weights"])
    x = np.random.default_rng(0).standard_normal((3, 1, PATCH, PATCH)).astype(np.float32)
    expected_seg, expected_cls = torch_outputs(network, x)
    seg, cls = session_runner(tiny["export"] / "fold_1" / "model_fp32.onnx")(x)
    assert seg.shape == (3, 2, PATCH, PATCH) and cls.shape == (3, 3)
    assert np.abs(seg - expected_seg).max() < 1e-4 and np.abs(cls - expected_cls).max() < 1e-4
    graph = onnx.load(str(tiny["export"] / "fold_1" / "model_fp32.onnx")).graph
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"


def test_int8_is_smaller_and_runs_on_integer_kernels(tiny):
    from nnunet_phyjoint.onnx_export.int8 import integer_kernels

    for fold in ("0", "1"):
        entry = tiny["report"]["folds"][fold]
        fp32 = tiny["export"] / f"fold_{fold}" / "model_fp32.onnx"
        int8 = tiny["export"] / f"fold_{fold}" / "model_int8.onnx"
        # a tiny network is mostly per-layer overhead; on efficientnet_lite0 the ratio is ~30 %
        assert int8.stat().st_size < 0.6 * fp32.stat().st_size
        assert entry["sizes"]["int8_ratio"] == pytest.approx(int8.stat().st_size / fp32.stat().st_size)
        assert entry["calibration"]["images"] == 3  # the fold's three preprocessed training cases
    kernels = integer_kernels(tiny["export"] / "fold_0" / "model_int8.onnx")
    assert kernels["QLinearConv"] >= 20
    assert tiny["report"]["folds"]["0"]["integer_kernels"] == dict(sorted(kernels.items()))


def test_cli_onnx_export_errors_and_fp32_only(tiny, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("nnUNet_preprocessed", raising=False)
    out = tmp_path / "fp32"
    assert phyjoint(["export", str(tiny["model"]), "--format", "onnx", "-o", str(out), "-f", "1"]) == 0
    printed = capsys.readouterr().out
    assert "FP32 max|diff|" in printed and "opset 17" in printed
    assert "random images" in printed  # no calibration data needed (nor found: nnUNet_preprocessed unset) for FP32
    manifest = json.loads((out / "phyjoint_onnx.json").read_text())
    assert manifest["default_precision"] == "fp32" and [f["fold"] for f in manifest["folds"]] == [1]

    assert phyjoint(["export", str(tiny["model"]), "--format", "onnx", "--bits", "4", "-o", str(tmp_path / "x")]) == 2
    assert "INT4" in capsys.readouterr().err
    assert phyjoint(["export", str(tiny["model"]), "--format", "onnx", "-o", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert phyjoint(["export", str(tiny["model"]), "--format", "onnx", "--bits", "8", "-f", "0",
                     "--calibration-data", str(tmp_path / "absent"), "-o", str(tmp_path / "y")]) == 2
    assert "calibration needs" in capsys.readouterr().err and not (tmp_path / "y").exists()
    assert phyjoint(["export", str(tiny["model"]), "-o", str(tmp_path / "z")]) == 2
    assert "--bits is required" in capsys.readouterr().err


def test_tf_same_padding_encoder_exports_and_quantizes(tmp_path, monkeypatch):
    """timm's tf_ encoders (the default tf_efficientnet_b6 among them) pad at run time, which ONNX Runtime's
    symbolic shape inference cannot follow; the export and INT8 quantization still work."""
    from nnunet_phyjoint.network.phyjoint_net import PhyJointNet
    from nnunet_phyjoint.onnx_export.graph import compare_outputs, export_graph, torch_outputs
    from nnunet_phyjoint.onnx_export.int8 import integer_kernels, quantize_int8

    network = PhyJointNet(1, 2, False, encoder_name="tf_mobilenetv3_small_minimal_100", encoder_weights=None,
                          decoder_channels=[16] * 5).eval()
    x = np.random.default_rng(0).standard_normal((2, 1, 64, 64)).astype(np.float32)
    reference = torch_outputs(network, x)
    export_graph(network, tmp_path / "fp32.onnx", 1, [64, 64])
    assert compare_outputs(tmp_path / "fp32.onnx", reference, x)["max_abs_diff_segmentation"] < 1e-4
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    quantize_int8(tmp_path / "fp32.onnx", tmp_path / "int8.onnx", x)
    assert integer_kernels(tmp_path / "int8.onnx")["QLinearConv"] >= 20
    assert not any(work.iterdir())  # ONNX Runtime's temporary files stay out of the working directory


def test_int8_calibration_uses_every_image_also_in_multiples_of_four(tmp_path):
    """ONNX Runtime's chunked calibration (CalibMaxIntermediateOutputs) drops full chunks: 8 images used to fail."""
    import torch

    from nnunet_phyjoint.onnx_export.int8 import INPUT_NAME, integer_kernels, quantize_int8

    net = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 2, 1)).eval()
    fp32 = tmp_path / "tiny.onnx"
    torch.onnx.export(net, torch.zeros(1, 1, 16, 16), str(fp32), input_names=[INPUT_NAME], output_names=["out"],
                      opset_version=17, dynamo=False)
    images = np.random.default_rng(0).normal(size=(8, 1, 16, 16)).astype(np.float32)
    quantize_int8(fp32, tmp_path / "tiny_int8.onnx", images, keep_output_layers_float=False)
    assert integer_kernels(tmp_path / "tiny_int8.onnx")["QLinearConv"] >= 1


def test_int8_keeps_heads_and_early_encoder_float_and_the_rest_integer(tiny):
    """The default rule: the heads (mask head conv + its resize, diagnosis head's last layer) and the
    encoder's stem and first two stages (timm conv_stem, blocks.0, blocks.1) stay float in the graph ONNX
    Runtime runs; everything else in the encoder and decoder runs on integer kernels."""
    from nnunet_phyjoint.onnx_export.int8 import KEEP_FLOAT_RULES, _runtime_nodes

    entry = tiny["report"]["folds"]["0"]
    kept = entry["float_nodes"]
    assert kept["rules"] == ["encoder-early"] and entry["calibration"]["method"] == "minmax"
    stage0 = tuple(KEEP_FLOAT_RULES["encoder-early"])
    assert "/network/decoder/seg_heads.0/Conv" in kept["nodes"]  # found back through the final Resize
    assert any(n.startswith(stage0) for n in kept["nodes"])
    runtime = _runtime_nodes(tiny["export"] / "fold_0" / "model_int8.onnx")
    ops = {name: op for name, op in runtime}
    for name in kept["nodes"]:
        assert not ops.get(name, "").startswith("QLinear"), (name, ops.get(name))
    float_convs = [n for n, op in runtime if op in ("Conv", "FusedConv")]
    assert "/network/decoder/seg_heads.0/Conv" in float_convs
    assert any(n.startswith(stage0) for n in float_convs)
    assert all(n.startswith(stage0) or "seg_heads" in n for n in float_convs), float_convs
    integer_convs = [n for n, op in runtime if op == "QLinearConv"]
    assert not any(n.startswith(stage0) or "seg_heads" in n for n in integer_convs)
    assert any("/network/encoder/model/blocks.2/" in n for n in integer_convs)
    assert all(any(n.startswith(p) for n in float_convs) for p in stage0)  # stem, blocks.0 and blocks.1 float
    assert any(n.startswith("/network/decoder/x") for n in integer_convs)
    assert ops["/network/classification_head/mlp/mlp.4/Gemm"] == "Gemm"


def test_keep_float_rules_patterns_and_lone_nodes(tmp_path):
    """``keep_float=()`` quantizes all but the heads; a hand-given pattern must match; a lone float conv between
    quantized neighbours is caught (ONNX Runtime would quantize its weights itself)."""
    import torch

    from nnunet_phyjoint.onnx_export.int8 import (
        INPUT_NAME, float_nodes_that_run_integer, keep_float_nodes, output_layer_names, quantize_int8,
    )

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.c = (torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.Conv2d(8, 8, 3, padding=1),
                                      torch.nn.Conv2d(8, 2, 1))

        def forward(self, x):
            y = self.c(self.b(torch.relu(self.a(x))))  # b linear, as the conv_pw of Lite0's blocks.0
            return torch.nn.functional.interpolate(y, scale_factor=2.0, mode="bilinear")

    fp32 = tmp_path / "net.onnx"
    torch.onnx.export(Net().eval(), torch.zeros(1, 1, 16, 16), str(fp32), input_names=[INPUT_NAME],
                      output_names=["out"], opset_version=17, dynamo=False)
    heads = output_layer_names(fp32)
    assert heads[0].endswith("Resize") and any(n.startswith("/c/") for n in heads)  # back through the Resize
    with pytest.raises(ValueError, match="matches no node"):
        keep_float_nodes(fp32, ["/no/such/node"])
    assert keep_float_nodes(fp32, ["encoder-early"]) == keep_float_nodes(fp32, ())  # rule absent: no error
    images = np.random.default_rng(0).normal(size=(4, 1, 16, 16)).astype(np.float32)
    lone = quantize_int8(fp32, tmp_path / "lone.onnx", images, keep_output_layers_float=False, keep_float=["/b/"])
    assert lone == ["/b/Conv"]
    assert float_nodes_that_run_integer(tmp_path / "lone.onnx", lone) == ["/b/Conv"]
    kept = quantize_int8(fp32, tmp_path / "heads.onnx", images, keep_float=())
    assert float_nodes_that_run_integer(tmp_path / "heads.onnx", kept) == []
