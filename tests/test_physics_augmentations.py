"""Classic physics augmentations: shape kept, segmentation untouched, intensities changed as designed."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nnunet_phyjoint.physics_augmentations import (
    PHYSICS_TRANSFORMS,
    DynamicRangeTransform,
    GainTransform,
    SpeckleResynthesisTransform,
    TGCCurveTransform,
    classic_physics_transform,
)

DR = 60.0


def _sample(h: int = 48, w: int = 40, seed: int = 0) -> dict:
    """A z-scored-looking image: letterbox rows at the minimum, a ramp of echoes, and a mask."""
    g = torch.Generator().manual_seed(seed)
    img = torch.rand(1, h, w, generator=g) * 0.5 + torch.linspace(0, 1, w)[None, None]
    img[:, :4] = -3.0  # no-signal padding at the minimum
    seg = (torch.rand(1, h, w, generator=g) > 0.7).to(torch.int16)
    return {"image": img, "segmentation": seg}


def _display(img: torch.Tensor) -> torch.Tensor:
    lo, hi = img.amin(), img.amax()
    return (img - lo) / (hi - lo)


@pytest.mark.parametrize("name", [*PHYSICS_TRANSFORMS, "all"])
def test_shape_kept_segmentation_untouched_and_image_changed(name):
    torch.manual_seed(0)
    np.random.seed(0)
    d = _sample()
    image, seg = d["image"].clone(), d["segmentation"].clone()
    out = classic_physics_transform(name, p=1.0)(**d)
    assert out["image"].shape == image.shape and out["image"].dtype == image.dtype
    assert torch.equal(out["segmentation"], seg)
    assert not torch.allclose(out["image"], image)
    assert torch.isfinite(out["image"]).all()
    # no-signal padding stays at the minimum, and nothing leaves the original intensity range
    assert torch.equal(out["image"][:, :4], image[:, :4])
    assert out["image"].min() >= image.min() - 1e-5 and out["image"].max() <= image.max() + 1e-5


def test_probability_zero_is_identity_and_rate_follows_p():
    d = _sample()
    image = d["image"].clone()
    assert torch.equal(GainTransform(p=0.0)(**d)["image"], image)
    torch.manual_seed(1)
    np.random.seed(1)
    t = GainTransform(gain_db=(3.0, 6.0), p=0.3)
    changed = sum(not torch.equal(t(**_sample())["image"], image) for _ in range(400))
    assert abs(changed - 120) < 4 * math.sqrt(400 * 0.3 * 0.7)
    with pytest.raises(ValueError):
        classic_physics_transform("bogus")


def test_gain_adds_decibels_in_the_display_domain():
    d = _sample()
    u = _display(d["image"])
    out = GainTransform(gain_db=-6.0, p=1.0)(**{"image": d["image"].clone()})
    u_out = _display_with(out["image"], d["image"])
    signal = u > 0
    expected = (u - 6.0 / DR).clamp(0, 1)
    torch.testing.assert_close(u_out[signal], expected[signal], atol=1e-5, rtol=0)


def _display_with(img: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Display values of ``img`` in the affine frame of ``reference`` (the transforms keep that frame)."""
    lo, hi = reference.amin(), reference.amax()
    return (img - lo) / (hi - lo)


def test_tgc_follows_a_depth_curve():
    img = torch.full((1, 40, 8), 0.5)
    img[:, 0, 0], img[:, 0, 1] = 0.0, 1.0  # fix the display range
    t = TGCCurveTransform(p=1.0)
    out = t._apply_to_image(img.clone(), apply=True, knots_db=[-6.0, 6.0])
    u = _display_with(out, img)[0, 1:, 4]  # one column, below the range-fixing row
    expected = 0.5 + torch.linspace(-6.0, 6.0, 40)[1:] / DR
    torch.testing.assert_close(u, expected, atol=1e-5, rtol=0)
    assert (u.diff() > 0).all()  # gain rises with depth


def test_dynamic_range_rescales_log_compression():
    img = torch.linspace(0.0, 1.0, 40).expand(1, 48, 40).clone()  # echoes from the floor to full scale
    u = _display(img)
    out = DynamicRangeTransform(p=1.0)._apply_to_image(img.clone(), apply=True, factor=0.5)
    u_out = _display_with(out, img)
    signal = u > 0
    expected = (1 + (u - 1) / 0.5).clamp(0, 1)
    torch.testing.assert_close(u_out[signal], expected[signal], atol=1e-5, rtol=0)
    assert (u_out[signal] == 0).sum() > 0  # the weakest echoes fall below the narrower range


def test_speckle_is_rayleigh_in_a_homogeneous_region():
    from scipy import stats

    torch.manual_seed(0)
    img = torch.full((1, 96, 96), 0.8)
    img[:, :4] = 0.0  # padding at the minimum
    img[:, 50, 0] = 1.0  # fixes the display range
    t = SpeckleResynthesisTransform(smooth_sigma=2.0, p=1.0)
    out = t._apply_to_image(img.clone(), apply=True, strength=1.0, grain_sigma=0.0)
    u = _display_with(out, img)[0, 20:44, 20:76]  # interior, away from the padding and the range pixel
    ratio = torch.pow(10.0, (u - 0.8) * DR / 20.0).flatten().numpy()  # amplitude / local echogenicity
    assert abs(ratio.mean() - 1) < 0.05
    assert abs(ratio.std() / ratio.mean() - math.sqrt(4 / math.pi - 1)) < 0.05  # Rayleigh: 0.523
    assert stats.kstest(ratio, stats.rayleigh(scale=math.sqrt(2 / math.pi)).cdf).pvalue > 1e-3
    # strength 0 leaves the image alone
    same = t._apply_to_image(img.clone(), apply=True, strength=0.0, grain_sigma=1.0)
    torch.testing.assert_close(same, img, atol=1e-6, rtol=0)
