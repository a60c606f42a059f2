"""Classic ultrasound physics augmentations (the comparison set of the paper's Fig. 3) as
batchgeneratorsv2 transforms: gain, time-gain compensation, speckle re-synthesis, dynamic range.

Each acts per sample on ``data_dict['image']`` (C, H, W), with probability ``p``, and never on
the segmentation. Our images are grey B-mode, z-scored by nnU-Net; every channel is mapped to
the display domain u in [0, 1] by its own min-max, read as log-compressed echo amplitude A
with an assumed displayed dynamic range of ``dynamic_range_db`` (60 dB):

    u = 1 + 20 log10(A) / DR        (u = 0: -DR dB, the display floor)

the physical change is made there, the result clipped to the display range [0, 1] and mapped
back with the same affine map, so the image stays in nnU-Net's z-score frame (like
batchgeneratorsv2's other intensity transforms, no re-normalisation). Pixels at the
channel minimum carry no signal (letterbox padding, outside the scan sector) and keep it.
Depth runs along the first spatial axis (image rows, transducer at row 0). Put these
transforms before nnU-Net's SpatialTransform, whose fill value (0) is not the no-signal level.
"""
from __future__ import annotations

import math

import torch
from batchgeneratorsv2.helpers.scalar_type import RandomScalar, sample_scalar
from batchgeneratorsv2.transforms.base.basic_transform import BasicTransform, ImageOnlyTransform

DEFAULT_DYNAMIC_RANGE_DB = 60.0


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Blur (C, H, W) with reflection padding (torchvision), kernel clipped to what the image allows."""
    from torchvision.transforms.functional import gaussian_blur

    if sigma <= 0:
        return x
    k = 2 * math.ceil(3 * sigma) + 1
    k_h = min(k, 2 * (x.shape[-2] // 2) - 1 if x.shape[-2] > 2 else 1)
    k_w = min(k, 2 * (x.shape[-1] // 2) - 1 if x.shape[-1] > 2 else 1)
    return gaussian_blur(x, [max(1, k_w), max(1, k_h)], [sigma, sigma])


class DisplayDomainTransform(ImageOnlyTransform):
    """Base: map each channel to the display domain [0, 1], change it there, map back."""

    def __init__(self, p: float = 1.0, dynamic_range_db: float = DEFAULT_DYNAMIC_RANGE_DB) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must lie in [0, 1], got {p}")
        if dynamic_range_db <= 0:
            raise ValueError(f"dynamic_range_db must be positive, got {dynamic_range_db}")
        self.p = float(p)
        self.dynamic_range_db = float(dynamic_range_db)

    def get_parameters(self, **data_dict) -> dict:
        if torch.rand(1).item() >= self.p:
            return {"apply": False}
        return {"apply": True, **self.sample(data_dict["image"])}

    def sample(self, img: torch.Tensor) -> dict:
        """Random parameters for one sample."""
        return {}

    def display_change(self, u: torch.Tensor, **params) -> torch.Tensor:
        """The physical change on (C, H, W) display values in [0, 1] (unclipped result)."""
        raise NotImplementedError

    def _apply_to_image(self, img: torch.Tensor, **params) -> torch.Tensor:
        if not params.pop("apply"):
            return img
        if img.ndim != 3:
            raise ValueError(f"{type(self).__name__} expects 2D images (C, H, W), got shape {tuple(img.shape)}")
        x = img.float()
        lo = x.amin(dim=(-2, -1), keepdim=True)
        span = (x.amax(dim=(-2, -1), keepdim=True) - lo).clamp_min(1e-8)
        u = (x - lo) / span
        no_signal = x <= lo
        u_new = self.display_change(u, **params).clamp(0.0, 1.0).masked_fill(no_signal, 0.0)
        return (lo + u_new * span).to(img.dtype)


class GainTransform(DisplayDomainTransform):
    """Overall receiver gain: ``gain_db`` dB added to every echo (saturating at the display range)."""

    def __init__(self, gain_db: RandomScalar = (-6.0, 6.0), p: float = 1.0, dynamic_range_db: float = DEFAULT_DYNAMIC_RANGE_DB):
        super().__init__(p, dynamic_range_db)
        self.gain_db = gain_db

    def sample(self, img: torch.Tensor) -> dict:
        return {"gain_db": float(sample_scalar(self.gain_db))}

    def display_change(self, u: torch.Tensor, gain_db: float) -> torch.Tensor:
        return u + gain_db / self.dynamic_range_db


class TGCCurveTransform(DisplayDomainTransform):
    """Time-gain compensation: a smooth depth-dependent gain curve.

    ``n_knots`` gains drawn from ``gain_db`` at evenly spaced depths (surface to bottom) are
    interpolated linearly over the rows, as the slider bank of a scanner's TGC panel does.
    """

    def __init__(self, gain_db: RandomScalar = (-6.0, 6.0), n_knots: int = 4, p: float = 1.0,
                 dynamic_range_db: float = DEFAULT_DYNAMIC_RANGE_DB):
        super().__init__(p, dynamic_range_db)
        if n_knots < 2:
            raise ValueError(f"a TGC curve needs at least 2 knots, got {n_knots}")
        self.gain_db = gain_db
        self.n_knots = int(n_knots)

    def sample(self, img: torch.Tensor) -> dict:
        return {"knots_db": [float(sample_scalar(self.gain_db)) for _ in range(self.n_knots)]}

    def curve(self, depth: int, knots_db: list[float]) -> torch.Tensor:
        """Gain in dB for each of ``depth`` rows."""
        knots = torch.tensor(knots_db, dtype=torch.float32)[None, None]
        return torch.nn.functional.interpolate(knots, size=depth, mode="linear", align_corners=True)[0, 0]

    def display_change(self, u: torch.Tensor, knots_db: list[float]) -> torch.Tensor:
        gain = self.curve(u.shape[-2], knots_db).to(u.device)
        return u + gain[:, None] / self.dynamic_range_db


class SpeckleResynthesisTransform(DisplayDomainTransform):
    """Multiplicative speckle re-synthesis with Rayleigh-distributed amplitude.

    The local echogenicity (mean amplitude, Gaussian-smoothed with ``smooth_sigma`` pixels) is
    multiplied by fresh fully developed speckle R = |X + iY| / E|X + iY| (X, Y Gaussian fields
    correlated over ``grain_sigma`` pixels, so R is Rayleigh with mean 1), and blended with the
    original in the log (display) domain by ``strength`` (1 = the new speckle only).
    """

    def __init__(self, strength: RandomScalar = (0.3, 1.0), grain_sigma: RandomScalar = (0.5, 1.5),
                 smooth_sigma: float = 3.0, p: float = 1.0, dynamic_range_db: float = DEFAULT_DYNAMIC_RANGE_DB):
        super().__init__(p, dynamic_range_db)
        self.strength = strength
        self.grain_sigma = grain_sigma
        self.smooth_sigma = float(smooth_sigma)

    def sample(self, img: torch.Tensor) -> dict:
        return {"strength": float(sample_scalar(self.strength)), "grain_sigma": float(sample_scalar(self.grain_sigma))}

    def rayleigh_field(self, shape: torch.Size, grain_sigma: float, device: torch.device) -> torch.Tensor:
        """Unit-mean Rayleigh speckle of ``shape`` (C, H, W) with grain ``grain_sigma``."""
        xy = _gaussian_blur(torch.randn((2 * shape[0], *shape[1:]), device=device), grain_sigma)
        xy = xy / xy.std(dim=(-2, -1), keepdim=True).clamp_min(1e-8)  # unit-variance real/imaginary parts
        x, y = xy[: shape[0]], xy[shape[0] :]
        return torch.sqrt(x * x + y * y) / math.sqrt(math.pi / 2)

    def display_change(self, u: torch.Tensor, strength: float, grain_sigma: float) -> torch.Tensor:
        dr = self.dynamic_range_db
        amplitude = torch.pow(10.0, (u - 1.0) * dr / 20.0)
        echogenicity = _gaussian_blur(amplitude, self.smooth_sigma)
        speckled = echogenicity * self.rayleigh_field(u.shape, grain_sigma, u.device)
        u_new = 1.0 + 20.0 * torch.log10(speckled.clamp_min(1e-12)) / dr
        return (1.0 - strength) * u + strength * u_new


class DynamicRangeTransform(DisplayDomainTransform):
    """Change of log-compression: the displayed dynamic range becomes ``factor`` times the assumed one.

    u' = 1 + (u - 1) / factor: a wider range (factor > 1) lifts weak echoes and flattens
    contrast, a narrower one (factor < 1) steepens it and sends weak echoes to black.
    """

    def __init__(self, factor: RandomScalar = (0.7, 1.4), p: float = 1.0, dynamic_range_db: float = DEFAULT_DYNAMIC_RANGE_DB):
        super().__init__(p, dynamic_range_db)
        self.factor = factor

    def sample(self, img: torch.Tensor) -> dict:
        factor = float(sample_scalar(self.factor))
        if factor <= 0:
            raise ValueError(f"dynamic-range factor must be positive, got {factor}")
        return {"factor": factor}

    def display_change(self, u: torch.Tensor, factor: float) -> torch.Tensor:
        return 1.0 + (u - 1.0) / factor


PHYSICS_TRANSFORMS: dict[str, type[DisplayDomainTransform]] = {
    "gain": GainTransform,
    "tgc": TGCCurveTransform,
    "speckle": SpeckleResynthesisTransform,
    "dynamic_range": DynamicRangeTransform,
}


def classic_physics_transform(name: str, p: float = 0.3, **kwargs) -> BasicTransform:
    """One of ``gain``, ``tgc``, ``speckle``, ``dynamic_range`` (or ``all``: each in turn, each with ``p``)."""
    if name == "all":
        from batchgeneratorsv2.transforms.utils.compose import ComposeTransforms

        return ComposeTransforms([cls(p=p, **kwargs) for cls in PHYSICS_TRANSFORMS.values()])
    try:
        return PHYSICS_TRANSFORMS[name](p=p, **kwargs)
    except KeyError:
        raise ValueError(f"unknown physics transform {name!r}; choose one of {[*PHYSICS_TRANSFORMS, 'all']}") from None
