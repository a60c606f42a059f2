"""Export a fake nnU-Net model folder at INT8/INT4 and load it back from safetensors only."""
from __future__ import annotations

import copy
import json
import pickle
from pathlib import Path

import pytest
import torch

from nnunet_phyjoint.cli import main as phyjoint
from nnunet_phyjoint.quantization import prepare_qat
from nnunet_phyjoint.quantization.export import export_model_folder, load_exported_network

HERE = Path(__file__).resolve().parent
NETWORK_CLASS = "quant_standin_network.StandInSegNet"


@pytest.fixture(autouse=True)
def _standin_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    # plans.json names the stand-in network by a dotted path that pydoc.locate must find
    monkeypatch.syspath_prepend(str(HERE))


def _build_network(deep_supervision: bool = True) -> torch.nn.Module:
    from quant_standin_network import StandInSegNet

    return StandInSegNet(input_channels=1, num_classes=2, deep_supervision=deep_supervision)


def _move_away_from_init(network: torch.nn.Module) -> None:
    """Perturb weights and BatchNorm statistics (cheaper than training) so a load that silently kept
    the fresh initialisation of any tensor would change the output."""
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.mul_(1 + 0.2 * torch.randn_like(parameter))
        for module in network.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    network.eval()


def _write_model_folder(root: Path, network: torch.nn.Module, trainer_name: str, folds=(0,)) -> Path:
    folder = root / "PhyJointTrainer__PhyJointPlans__2d"
    folder.mkdir(parents=True)
    dataset = {"channel_names": {"0": "ultrasound"}, "labels": {"background": 0, "lesion": 1},
               "numTraining": 4, "file_ending": ".png"}
    plans = {"dataset_name": "Dataset990_Quant", "plans_name": "PhyJointPlans",
             "configurations": {"2d": {"data_identifier": "PhyJointPlans_2d", "patch_size": [64, 64],
                                       "architecture": {"network_class_name": NETWORK_CLASS,
                                                        # a training-machine file: export and load
                                                        # must not need it
                                                        "arch_kwargs": {"encoder_name": "efficientnet_b0",
                                                                        "encoder_weights": "/absent/b0.safetensors"},
                                                        "_kw_requires_import": []}}}}
    (folder / "dataset.json").write_text(json.dumps(dataset))
    (folder / "plans.json").write_text(json.dumps(plans))
    for fold in folds:
        (folder / f"fold_{fold}").mkdir()
        checkpoint = {"network_weights": network.state_dict(), "trainer_name": trainer_name,
                      "init_args": {"plans": plans, "configuration": "2d", "fold": fold, "dataset_json": dataset},
                      "inference_allowed_mirroring_axes": (0, 1), "current_epoch": 2}
        torch.save(checkpoint, folder / f"fold_{fold}" / "checkpoint_final.pth")
    return folder


def _inference_copy(network: torch.nn.Module) -> torch.nn.Module:
    copied = copy.deepcopy(network).eval()
    copied.deep_supervision = False
    return copied


@pytest.mark.parametrize("bits, size_limit", [(8, 0.26), (4, 0.14)])
def test_export_of_qat_model_reproduces_its_predictions(tmp_path, bits, size_limit, capsys):
    torch.manual_seed(bits)
    float_network = _build_network()
    qat_network = copy.deepcopy(float_network)
    prepare_qat(qat_network.encoder, bits)
    _move_away_from_init(qat_network)
    folder = _write_model_folder(tmp_path, qat_network, f"PhyJointTrainer_INT{bits}")

    report = export_model_folder(folder, bits, tmp_path / "exported")
    printed = capsys.readouterr().out
    assert "FP32 encoder weights" in printed and f"INT{bits} packed" in printed

    network, info = load_exported_network(tmp_path / "exported", 0)
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        expected = _inference_copy(qat_network)(x)
        got = network(x)
        float_output = _inference_copy(float_network)(x)
    assert torch.allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(got, float_output, atol=1e-3)  # the export is not just the float model

    sizes = report["folds"]["0"]
    assert sizes["ratio"] <= size_limit
    encoder_file = tmp_path / "exported" / "fold_0" / f"encoder_int{bits}.safetensors"
    assert encoder_file.stat().st_size <= size_limit * sizes["fp32_weight_bytes"]
    assert info["bits"] == bits and info["trainer_name"] == f"PhyJointTrainer_INT{bits}"
    assert info["configuration"] == "2d" and info["plans_identifier"] == "PhyJointPlans"
    assert info["inference_allowed_mirroring_axes"] == [0, 1] and info["fold"] == 0
    assert info["trained_with_fake_quantization"] is True


def test_float_checkpoint_is_quantized_after_training(tmp_path):
    torch.manual_seed(0)
    network = _build_network()
    _move_away_from_init(network)
    folder = _write_model_folder(tmp_path, network, "PhyJointTrainer", folds=(0, 1))
    report = export_model_folder(folder, 4, tmp_path / "out", verbose=False)
    assert sorted(report["folds"]) == ["0", "1"]

    loaded, info = load_exported_network(tmp_path / "out", 1)
    reference = _inference_copy(network)
    prepare_qat(reference.encoder, 4)
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        assert torch.allclose(loaded(x), reference(x), rtol=1e-5, atol=1e-6)
    assert info["trained_with_fake_quantization"] is False


def test_loading_an_export_never_unpickles(tmp_path, monkeypatch):
    network = _build_network()
    prepare_qat(network.encoder, 8)
    folder = _write_model_folder(tmp_path, network, "PhyJointTrainer_INT8")
    export_model_folder(folder, 8, tmp_path / "out", verbose=False)
    files = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert files == ["dataset.json", "fold_0/encoder_int8.safetensors", "fold_0/export.json",
                     "fold_0/rest.safetensors", "plans.json"]

    def refuse(*args, **kwargs):
        raise AssertionError("loading an exported model must not unpickle")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    loaded, _ = load_exported_network(tmp_path / "out", 0)
    assert not loaded.training


def test_qat_checkpoint_must_be_exported_at_its_own_bits(tmp_path):
    network = _build_network()
    prepare_qat(network.encoder, 4)
    folder = _write_model_folder(tmp_path, network, "PhyJointTrainer_INT4")
    with pytest.raises(ValueError, match="INT4 fake quantization.*--bits 4"):
        export_model_folder(folder, 8, tmp_path / "out", verbose=False)
    assert not (tmp_path / "out").exists()
    assert not any(p.name.startswith(".out.tmp") for p in tmp_path.iterdir())  # staging folder cleaned up


def test_cli_export_writes_folder_and_reports_errors(tmp_path, capsys):
    network = _build_network()
    folder = _write_model_folder(tmp_path, network, "PhyJointTrainer")
    out = tmp_path / "int8"
    assert phyjoint(["export", str(folder), "--bits", "8", "-o", str(out), "-f", "0"]) == 0
    assert "ratio" in capsys.readouterr().out
    assert (out / "fold_0" / "encoder_int8.safetensors").is_file()

    assert phyjoint(["export", str(folder), "--bits", "8", "-o", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert phyjoint(["export", str(folder), "--bits", "8", "-o", str(out), "-f", "3", "--overwrite"]) == 2
    assert "fold_3" in capsys.readouterr().err
    (folder / "plans.json").unlink()
    assert phyjoint(["export", str(folder), "--bits", "4", "-o", str(tmp_path / "x")]) == 2
    assert "plans.json not found" in capsys.readouterr().err


def test_export_round_trip_with_the_phyjoint_network(tmp_path):
    phyjoint_net = pytest.importorskip("nnunet_phyjoint.network.phyjoint_net")
    torch.manual_seed(0)
    network = phyjoint_net.PhyJointNet(1, 2, True, encoder_name="efficientnet_b0", encoder_weights=None)
    prepare_qat(network.encoder, 4)
    _move_away_from_init(network)
    folder = _write_model_folder(tmp_path, network, "PhyJointTrainer_INT4")
    plans = json.loads((folder / "plans.json").read_text())
    architecture = plans["configurations"]["2d"]["architecture"]
    architecture["network_class_name"] = "nnunet_phyjoint.network.phyjoint_net.PhyJointNet"
    (folder / "plans.json").write_text(json.dumps(plans))

    export_model_folder(folder, 4, tmp_path / "out", verbose=False)
    loaded, _ = load_exported_network(tmp_path / "out", 0)
    network.decoder.deep_supervision = False
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        expected_seg, expected_cls = network(x, return_class_logits=True)
        seg, cls = loaded(x, return_class_logits=True)
    assert torch.allclose(seg, expected_seg, rtol=1e-5, atol=1e-6)
    assert torch.allclose(cls, expected_cls, rtol=1e-5, atol=1e-6)
