"""PhyJointNet and its parts: shapes, deep supervision, attention, weights loading, counts."""
from __future__ import annotations

import json
import logging

import pytest
import torch

timm = pytest.importorskip("timm")

from nnunet_phyjoint.network.cbam import CBAM  # noqa: E402
from nnunet_phyjoint.network.classification_head import ClassificationHead  # noqa: E402
from nnunet_phyjoint.network.encoder import TimmEncoder, find_cached_pretrained_weights  # noqa: E402
from nnunet_phyjoint.network.phyjoint_net import PhyJointNet  # noqa: E402
from nnunet_phyjoint.network.unetpp_decoder import default_decoder_channels  # noqa: E402

ENCODERS = ["efficientnet_b0", "resnet18", "mobilenetv3_small_100"]
SIZE = 64


def tiny_net(encoder: str = "mobilenetv3_small_100", deep_supervision: bool = True, **kw) -> PhyJointNet:
    torch.manual_seed(0)
    return PhyJointNet(kw.pop("input_channels", 3), kw.pop("num_classes", 2), deep_supervision,
                       encoder_name=encoder, encoder_weights=kw.pop("encoder_weights", None), **kw)


@pytest.mark.parametrize("layout", ["nested", "levels"])
@pytest.mark.parametrize("encoder", ENCODERS)
def test_deep_supervision_outputs_and_single_output_in_inference(encoder: str, layout: str) -> None:
    net = tiny_net(encoder, deep_supervision_layout=layout).train()
    x = torch.randn(2, 3, SIZE, SIZE)
    outs = net(x)
    reductions = timm.create_model(encoder, features_only=True).feature_info.reduction()
    if layout == "nested":  # UNet++: one output per level-0 node, all at full resolution
        assert net.output_strides == [1] * (len(reductions) - 1)
    else:
        assert net.output_strides == [1, *reductions[1:-1]]
    assert isinstance(outs, list) and len(outs) == len(net.output_strides)
    for out, stride in zip(outs, net.output_strides):
        assert out.shape == (2, 2, SIZE // stride, SIZE // stride)
    sizes = [o.shape[-1] for o in outs]
    assert sizes == sorted(sizes, reverse=True)  # highest resolution first

    net.eval()
    net.decoder.deep_supervision = False  # what nnU-Net's set_deep_supervision_enabled does
    with torch.no_grad():
        out = net(x)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 2, SIZE, SIZE)
    assert torch.allclose(out, net.eval()(x))


@pytest.mark.parametrize("encoder", ENCODERS[:2])
def test_forward_joint_and_classify(encoder: str) -> None:
    net = tiny_net(encoder, deep_supervision=False, num_classes=3, num_diagnosis_classes=3).eval()
    x = torch.randn(3, 3, SIZE, SIZE)
    with torch.no_grad():
        seg, logits = net.forward_joint(x)
        assert seg.shape == (3, 3, SIZE, SIZE) and logits.shape == (3, 3)
        assert torch.allclose(logits, net.classify(x), atol=1e-6)
        assert torch.allclose(seg, net(x), atol=1e-6)
        seg2, logits2 = net(x, return_class_logits=True)  # the form DDP/compiled wrappers see
        assert torch.equal(seg2, seg) and torch.equal(logits2, logits)


def test_latent_augment_reaches_the_classifier_only() -> None:
    net = tiny_net(deep_supervision=False).eval()
    x = torch.randn(2, 3, SIZE, SIZE)
    seen = []

    def shift(z: torch.Tensor) -> torch.Tensor:
        seen.append(z.shape)
        return z + 1.0

    with torch.no_grad():
        seg, logits = net.forward_joint(x)
        seg_aug, logits_aug = net(x, return_class_logits=True, latent_augment=shift)
    deepest = net.encoder.channels[-1]
    assert seen == [torch.Size([2, deepest, SIZE // 32, SIZE // 32])]
    assert torch.equal(seg, seg_aug)
    assert not torch.allclose(logits, logits_aug)


def test_channels_come_from_feature_info_and_grey_input() -> None:
    net = tiny_net("resnet18", input_channels=1, deep_supervision=False)
    info = timm.create_model("resnet18", features_only=True).feature_info
    assert net.encoder.channels == info.channels() and net.encoder.reductions == info.reduction()
    assert net.decoder.decoder_channels == default_decoder_channels(info.channels())
    assert net.cbam.channel_attention.mlp[0].in_features == info.channels()[-1]
    assert net.classification_head.mlp[1].in_features == info.channels()[-1]
    assert net.eval()(torch.randn(1, 1, SIZE, 96)).shape == (1, 2, SIZE, 96)


def test_custom_decoder_channels_and_wrong_length() -> None:
    net = tiny_net(decoder_channels=[8, 8, 8, 8, 8], deep_supervision=False)
    assert all(h.in_channels == 8 for h in net.decoder.seg_heads)
    with pytest.raises(ValueError, match="one width per encoder level"):
        tiny_net(decoder_channels=[8, 8])


def test_input_not_divisible_by_32_is_rejected() -> None:
    net = tiny_net(deep_supervision=False).eval()
    with pytest.raises(ValueError, match="divisible by 32"):
        net(torch.randn(1, 3, 64, 80))


def test_cbam_applies_channel_then_spatial_attention() -> None:
    torch.manual_seed(0)
    cbam = CBAM(32, reduction=4).eval()
    z = torch.randn(2, 32, 6, 5)
    mc = cbam.channel_attention(z)
    assert mc.shape == (2, 32, 1, 1) and ((mc > 0) & (mc < 1)).all()
    ms = cbam.spatial_attention(z * mc)
    assert ms.shape == (2, 1, 6, 5) and ((ms > 0) & (ms < 1)).all()
    out = cbam(z)
    assert out.shape == z.shape
    assert torch.allclose(out, z * mc * ms)
    assert not torch.allclose(out, z)


def test_classification_head_pools_globally() -> None:
    torch.manual_seed(0)
    head = ClassificationHead(16, hidden=8, num_classes=3).eval()
    z = torch.randn(4, 16, 1, 1)
    assert head(z).shape == (4, 3)
    assert torch.allclose(head(z.expand(4, 16, 5, 7)), head(z), atol=1e-6)


def test_no_initialize_method_and_json_kwargs_build_through_nnunet() -> None:
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    kwargs = json.loads(json.dumps({"encoder_name": "mobilenetv3_small_100", "encoder_weights": None,
                                    "decoder_channels": None, "head_dropout": 0.1}))
    net = get_network_from_plans("nnunet_phyjoint.network.phyjoint_net.PhyJointNet", kwargs, [], 3, 2,
                                 deep_supervision=False)
    assert isinstance(net, PhyJointNet) and not hasattr(net, "initialize")
    assert net.decoder.deep_supervision is False


def _encoder_tensors_equal(a: TimmEncoder, b: TimmEncoder) -> bool:
    sa, sb = a.model.state_dict(), b.model.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_encoder_weights_from_explicit_files(tmp_path) -> None:
    from safetensors.torch import save_file

    torch.manual_seed(1)
    source = TimmEncoder("resnet18", 3, weights=None)
    pth, st = tmp_path / "enc.pth", tmp_path / "enc.safetensors"
    torch.save(source.model.state_dict(), pth)
    save_file({k: v.contiguous() for k, v in source.model.state_dict().items()}, str(st))
    for f in (pth, st):
        torch.manual_seed(2)
        loaded = TimmEncoder("resnet18", 3, weights=str(f))
        assert loaded.weights_source == str(f)
        assert _encoder_tensors_equal(source, loaded)

    # a whole PhyJointNet checkpoint: only its encoder part is used
    net = tiny_net("resnet18", deep_supervision=False)
    torch.save({"network_weights": net.state_dict()}, tmp_path / "net.pth")
    assert _encoder_tensors_equal(net.encoder, TimmEncoder("resnet18", 3, weights=str(tmp_path / "net.pth")))

    # a full timm classifier (fc ignored), adapted to one input channel
    full = timm.create_model("resnet18")
    torch.save(full.state_dict(), tmp_path / "full.pth")
    grey = TimmEncoder("resnet18", 1, weights=str(tmp_path / "full.pth"))
    assert torch.allclose(grey.model.conv1.weight, full.conv1.weight.sum(dim=1, keepdim=True))
    assert torch.equal(grey.model.layer4[1].conv2.weight, full.layer4[1].conv2.weight)


def test_encoder_weights_with_flattened_stage_names(tmp_path) -> None:
    full = timm.create_model("convnext_atto")
    torch.save(full.state_dict(), tmp_path / "convnext.pth")
    enc = TimmEncoder("convnext_atto", 3, weights=str(tmp_path / "convnext.pth"))
    assert torch.equal(enc.model.stages_3.blocks[0].conv_dw.weight, full.stages[3].blocks[0].conv_dw.weight)


def test_encoder_weights_mismatch_is_a_clear_error(tmp_path) -> None:
    torch.save(timm.create_model("mobilenetv3_small_100", features_only=True).state_dict(), tmp_path / "m.pth")
    with pytest.raises(ValueError, match=r"m\.pth does not match encoder resnet18"):
        TimmEncoder("resnet18", 3, weights=str(tmp_path / "m.pth"))
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        TimmEncoder("resnet18", 3, weights=str(tmp_path / "nope.pth"))
    (tmp_path / "junk.pth").write_text("not a checkpoint")
    with pytest.raises(ValueError, match="junk.pth"):
        TimmEncoder("resnet18", 3, weights=str(tmp_path / "junk.pth"))


def test_auto_weights_use_the_local_cache_only(tmp_path, monkeypatch, caplog) -> None:
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the chain's download step must not fetch resnet18

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    old_hub = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "torch_hub"))
    try:
        assert find_cached_pretrained_weights("resnet18") is None
        with caplog.at_level(logging.WARNING, logger="nnunet_phyjoint.network.encoder"):
            enc = TimmEncoder("resnet18", 3, weights="auto")
        assert enc.weights_source == "random"
        assert len([r for r in caplog.records if "random initialisation" in r.getMessage()]) == 1

        # a file where torch hub would have downloaded timm's weights is picked up
        url = timm.models.get_pretrained_cfg("resnet18").url
        cached = tmp_path / "torch_hub" / "checkpoints" / url.rsplit("/", 1)[-1]
        cached.parent.mkdir(parents=True)
        torch.manual_seed(3)
        full = timm.create_model("resnet18")
        torch.save(full.state_dict(), cached)
        assert find_cached_pretrained_weights("resnet18") == cached
        enc = TimmEncoder("resnet18", 3, weights="auto")
        assert enc.weights_source == str(cached)
        assert torch.equal(enc.model.conv1.weight, full.conv1.weight)
    finally:
        torch.hub.set_dir(old_hub)


def test_model_info_from_plans_and_cli(nnunet_env, capsys) -> None:
    from nnunet_phyjoint.cli import main
    from nnunet_phyjoint.network.model_info import count_parameters, model_info_from_plans

    ds = nnunet_env["nnUNet_preprocessed"] / "Dataset901_Tiny"
    ds.mkdir()
    kwargs = {"encoder_name": "mobilenetv3_small_100", "encoder_weights": "auto", "decoder_channels": None}
    plans = {"dataset_name": ds.name, "plans_name": "PhyJointPlans", "label_manager": "LabelManager",
             "configurations": {"2d": {"patch_size": [64, 96], "architecture": {
                 "network_class_name": "nnunet_phyjoint.network.phyjoint_net.PhyJointNet",
                 "arch_kwargs": kwargs, "_kw_requires_import": []}}}}
    (ds / "PhyJointPlans.json").write_text(json.dumps(plans))
    (ds / "dataset.json").write_text(json.dumps({"channel_names": {"0": "grey"},
                                                 "labels": {"background": 0, "lesion": 1}}))
    info = model_info_from_plans(ds / "PhyJointPlans.json")
    assert info["input_shape"] == [1, 1, 64, 96] and info["encoder"] == "mobilenetv3_small_100"
    net = PhyJointNet(1, 2, False, encoder_name="mobilenetv3_small_100", encoder_weights=None)
    assert info["parameters"]["total"] == count_parameters(net)
    p = info["parameters"]
    assert p["total"] == p["encoder"] + p["cbam"] + p["decoder"] + p["classification_head"]
    assert info["macs"] > 0

    assert main(["model-info", "-d", "901", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["parameters"] == p
    with pytest.raises(KeyError, match="3d_fullres"):
        model_info_from_plans(ds / "PhyJointPlans.json", "3d_fullres")


def test_efficientnet_b6_matches_the_paper_figures() -> None:
    from nnunet_phyjoint.network.model_info import model_info_for_encoder

    info = model_info_for_encoder("efficientnet_b6", 256)
    assert info["encoder_channels"] == [32, 40, 72, 200, 576]
    assert abs(info["parameters"]["total"] / 41.48e6 - 1) < 0.03
    assert abs(info["macs"] / 4.56e9 - 1) < 0.05
    # the encoder alone is timm's B6 feature extractor: 39.40 M parameters
    assert abs(info["parameters"]["encoder"] / 39.40e6 - 1) < 0.005


@pytest.mark.slow
def test_torch_compile_traces_without_graph_breaks() -> None:
    net = tiny_net(deep_supervision=False).eval()
    x = torch.randn(1, 3, SIZE, SIZE)
    with torch.no_grad():
        compiled = torch.compile(net, backend="eager", fullgraph=True)
        assert torch.allclose(compiled(x), net(x), atol=1e-5)


def test_nested_outputs_are_distinct_decoding_depths_and_the_first_is_the_inference_output() -> None:
    net = tiny_net("mobilenetv3_small_100").eval()
    x = torch.randn(1, 3, SIZE, SIZE)
    with torch.no_grad():
        outs = net(x)
        net.decoder.deep_supervision = False
        single = net(x)
    assert torch.allclose(outs[0], single)
    assert not any(torch.allclose(outs[0], o) for o in outs[1:])


def test_seg_head_prior_initialisation() -> None:
    net = tiny_net("mobilenetv3_small_100", seg_head_prior=0.01).eval()
    with torch.no_grad():
        p = torch.softmax(net(torch.randn(2, 3, SIZE, SIZE))[0], 1)[:, 1]
    assert 0.003 < float(p.mean()) < 0.03
    with pytest.raises(ValueError):
        tiny_net("mobilenetv3_small_100", seg_head_prior=1.5)
    with pytest.raises(ValueError):
        tiny_net("mobilenetv3_small_100", deep_supervision_layout="sideways")


def test_prediction_rebuild_skips_pretrained_weights(monkeypatch) -> None:
    """The predictor rebuilds the network and loads the checkpoint: 'imagenet' in the plans must not be resolved."""
    from nnunet_phyjoint.network.encoder_weights import weights_from_checkpoint

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(Exception, match="(?i)imagenet|pretrained|weights"):
        tiny_net("mobilenetv3_small_050", encoder_weights="imagenet")
    with weights_from_checkpoint():
        net = tiny_net("mobilenetv3_small_050", encoder_weights="imagenet")
    assert not net.encoder.weights_resolution.pretrained
    assert "checkpoint" in net.encoder.weights_report
