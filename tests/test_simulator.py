"""The ultrasound simulator: PRECISE layout, determinism, class mix, masks, scanner differences, lesion physics."""
from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nnunet_phyjoint.cli import main as cli_main
from nnunet_phyjoint.simulator import render_image, scanner_profiles, simulate_dataset
from nnunet_phyjoint.simulator.anatomy import TissueMaps
from nnunet_phyjoint.simulator.cohort import CODE_CLASSES, PRECISE_NAME, ImageSpec, class_counts
from nnunet_phyjoint.simulator.grid import grid_for
from nnunet_phyjoint.simulator.lesions import mask_shape_stats, paint_lesion, sample_lesion

SMALL = (64, 64)


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sim") / "precise_sim"
    simulate_dataset(out, n=40, scanners=4, seed=11, size=SMALL, progress=False)
    return out


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.png"))}


def test_layout_parses_as_precise(small_dataset):
    images = [p for p in small_dataset.rglob("*.png") if not p.name.endswith("_mask.png")]
    assert len(images) == 40
    for img in images:
        m = PRECISE_NAME.match(img.name)
        assert m and not m["mask"], img.name
        assert img.parent.name == CODE_CLASSES[m["code"]]
        assert m["source"].isalnum() and m["source"].startswith("SIM")
        mask_path = img.with_name(img.stem + "_mask.png")
        assert mask_path.is_file()
        image, mask = Image.open(img), Image.open(mask_path)
        assert image.mode == "L" and mask.mode == "L" and image.size == mask.size == SMALL[::-1]
        values = set(np.unique(np.asarray(mask)).tolist())
        assert values <= {0, 255}
        # masks are non-empty exactly for lesion classes
        assert (255 in values) == (img.parent.name != "normal"), img.name
    record = json.loads((small_dataset / "simulation.json").read_text())
    assert record["seed"] == 11 and record["parameters"]["n"] == 40
    assert sorted(record["scanner_profiles"]) == ["SIMA", "SIMB", "SIMC", "SIMD"]
    assert len(record["cases"]) == 40
    assert not list(small_dataset.parent.glob(".*tmp*"))  # staging folder renamed away


def test_class_fractions(small_dataset, tmp_path):
    counts = {d: len([p for p in (small_dataset / d).glob("*.png") if "_mask" not in p.name])
              for d in ("normal", "benign", "malignant")}
    assert counts == class_counts(40, 0.18, 0.2) == {"normal": 8, "benign": 25, "malignant": 7}
    out = simulate_dataset(tmp_path / "mix", n=20, scanners=2, seed=0, size=(32, 32), malignant_fraction=0.5,
                           normal_fraction=0.0, progress=False)
    assert len(list((out / "malignant").glob("*_mask.png"))) == 10
    assert not list((out / "normal").iterdir())


def test_written_masks_keep_lesion_orientation(small_dataset):
    """In pixels, as a network sees them: benign wider than tall, malignant taller than wide, on average."""
    aspect = defaultdict(list)
    for label in ("benign", "malignant"):
        for p in (small_dataset / label).glob("*_mask.png"):
            aspect[label].append(mask_shape_stats(np.asarray(Image.open(p)) > 0)["aspect"])
    assert np.mean(aspect["benign"]) < 0.85 and np.mean(aspect["malignant"]) > 1.0, aspect


def test_multi_image_patients(small_dataset):
    by_subject = defaultdict(list)
    for p in small_dataset.rglob("*.png"):
        m = PRECISE_NAME.match(p.name)
        if not m["mask"]:
            by_subject[m["subject"]].append((m["code"], m["source"]))
    multi = {s: v for s, v in by_subject.items() if len(v) > 1}
    assert len(multi) >= 2
    for images in multi.values():
        codes = sorted(c for c, _ in images)
        assert codes in (["001", "100"], ["002", "101"])
        assert len({s for _, s in images}) == 1  # one patient, one scanner


def test_deterministic_for_a_seed(small_dataset, tmp_path):
    again = simulate_dataset(tmp_path / "again", n=40, scanners=4, seed=11, size=SMALL, progress=False)
    assert _files(again) == _files(small_dataset)
    assert (again / "simulation.json").read_text() == (small_dataset / "simulation.json").read_text()
    other = simulate_dataset(tmp_path / "other", n=40, scanners=4, seed=12, size=SMALL, progress=False)
    assert _files(other) != _files(small_dataset)


def _lateral_correlation_length(image: np.ndarray) -> float:
    """Lag (pixels) at which the row autocorrelation of the speckle falls below 1/2."""
    x = image.astype(float) - image.mean(axis=1, keepdims=True)
    spectrum = np.abs(np.fft.rfft(x, axis=1)) ** 2
    acf = np.fft.irfft(spectrum, axis=1).mean(axis=0)
    acf /= acf[0]
    return float(np.argmax(acf < 0.5))


def test_scanners_differ_measurably():
    """The same breast on the four scanners: brightness, contrast or speckle size clearly differ."""
    stats = {}
    for profile in scanner_profiles(4):
        image, _, _ = render_image(ImageSpec(3, "normal", profile.tag, False), profile, seed=5, size=(128, 128))
        stats[profile.tag] = (image.mean(), image.std(), _lateral_correlation_length(image))
    tags = sorted(stats)
    for i, a in enumerate(tags):
        for b in tags[i + 1:]:
            (ma, sa, la), (mb, sb, lb) = stats[a], stats[b]
            assert abs(ma - mb) > 8 or abs(sa - sb) > 6 or abs(la - lb) / min(la, lb) > 0.3, (a, b, stats)


def _lesion_mask(label: str, seed: int) -> np.ndarray:
    profile = scanner_profiles(1)[0]
    grid = grid_for(profile, (128, 128), (1, 1))
    maps = TissueMaps(*(np.zeros(grid.shape, np.float32) for _ in range(3)))
    lesion = sample_lesion(np.random.default_rng(seed), label)
    return grid.crop(paint_lesion(maps, lesion, grid, (profile.depth_mm / 2, 0.0))), grid.output_pixel_mm


def test_lesion_shape_statistics():
    shapes = {label: [mask_shape_stats(*_lesion_mask(label, s)) for s in range(30)] for label in ("benign", "malignant")}
    aspect = {k: np.mean([s["aspect"] for s in v]) for k, v in shapes.items()}
    solidity = {k: np.mean([s["solidity"] for s in v]) for k, v in shapes.items()}
    assert aspect["benign"] < 0.8 < 1.0 < aspect["malignant"], aspect  # wider than tall vs taller than wide
    assert solidity["malignant"] < solidity["benign"] - 0.05, solidity
    assert solidity["benign"] > 0.93


def _posterior_ratio(image: np.ndarray, mask: np.ndarray) -> float:
    """Mean grey below the lesion over mean grey at the same depths beside it."""
    ys, xs = np.nonzero(mask)
    left, right = xs.min(), xs.max()
    core = slice(left + (right - left) // 4, right - (right - left) // 4 + 1)
    rows = slice(ys.max() + 2, min(image.shape[0], ys.max() + 2 + (ys.max() - ys.min())))
    beside = np.ones(image.shape[1], bool)
    beside[max(0, left - 3): right + 4] = False
    return float(image[rows, core].mean() / max(image[rows][:, beside].mean(), 1.0))


def test_malignant_posterior_region_darker_than_benign():
    profiles = scanner_profiles(4)
    ratios = defaultdict(list)
    for subject in range(1, 9):
        for label in ("benign", "malignant"):
            profile = profiles[subject % 4]
            image, mask, info = render_image(ImageSpec(subject, label, profile.tag, False), profile, seed=2,
                                             size=(96, 96))
            assert info["lesion"]["label"] == label
            ratios[label].append(_posterior_ratio(image, mask > 0))
    assert np.mean(ratios["malignant"]) < 0.75 * np.mean(ratios["benign"]), ratios
    assert np.mean(ratios["malignant"]) < 0.8


def test_follow_up_shows_the_same_lesion():
    profile = scanner_profiles(1)[0]
    _, _, first = render_image(ImageSpec(4, "benign", "SIMA", False), profile, seed=1, size=(64, 64))
    _, _, second = render_image(ImageSpec(4, "benign", "SIMA", True), profile, seed=1, size=(64, 64))
    assert first["lesion"]["kind"] == second["lesion"]["kind"]
    assert first["anatomy"] == second["anatomy"]
    ratio = second["lesion"]["half_width_mm"] / first["lesion"]["half_width_mm"]
    assert 0.9 < ratio < 1.3


def test_bad_parameters_and_existing_output(tmp_path):
    with pytest.raises(ValueError, match="exceeds 1"):
        simulate_dataset(tmp_path / "a", n=10, malignant_fraction=0.7, normal_fraction=0.5, progress=False)
    with pytest.raises(ValueError, match="n must be"):
        simulate_dataset(tmp_path / "b", n=0, progress=False)
    with pytest.raises(ValueError, match="too small"):
        simulate_dataset(tmp_path / "c", n=2, size=(8, 8), progress=False)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError, match="overwrite"):
        simulate_dataset(busy, n=2, size=(32, 32), progress=False)
    assert (busy / "keep.txt").exists()
    simulate_dataset(busy, n=2, size=(32, 32), progress=False, overwrite=True)
    assert not (busy / "keep.txt").exists() and (busy / "simulation.json").exists()


def test_interrupted_run_leaves_nothing(tmp_path, monkeypatch):
    import nnunet_phyjoint.simulator.dataset as ds

    calls = Counter()

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    real = ds.render_image
    monkeypatch.setattr(ds, "render_image", failing)
    with pytest.raises(KeyboardInterrupt):
        simulate_dataset(tmp_path / "out", n=10, size=(32, 32), progress=False)
    assert list(tmp_path.iterdir()) == []


def test_simulate_command_with_preview(tmp_path, capsys):
    out, preview = tmp_path / "cli", tmp_path / "preview.png"
    assert cli_main(["simulate", str(out), "--n", "12", "--scanners", "3", "--size", "48", "64",
                     "--seed", "4", "--preview", str(preview)]) == 0
    text = capsys.readouterr().out
    assert "12 images" in text and "SIMC" in text
    assert Image.open(preview).size[0] > 200
    sizes = {Image.open(p).size for p in out.rglob("*.png")}
    assert sizes == {(64, 48)}
    assert cli_main(["simulate", str(out), "--n", "2"]) == 1  # not empty, no --overwrite
    assert "overwrite" in capsys.readouterr().err
    assert cli_main(["simulate", str(tmp_path / "x"), "--malignant-fraction", "1.5"]) == 1
    assert "malignant_fraction" in capsys.readouterr().err
