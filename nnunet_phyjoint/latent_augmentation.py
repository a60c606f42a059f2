"""Latent feature augmentation for minority diagnosis classes (paper Sec. 3.4).

For a training sample of a minority class, the CBAM-refined features ``z_i`` are
(1) with probability ``mix_prob`` interpolated with the features of another sample ``j`` of the same
class in the batch, ``lambda * z_i + (1 - lambda) * z_j`` with ``lambda ~ U(lambda_range)``, and then
(2) perturbed by Gaussian noise whose standard deviation is ``noise_std`` times the standard deviation
of that sample's features (a scale-free setting: feature magnitudes differ between encoders and change
during training). Majority-class samples, and every sample in eval mode, pass through unchanged.

Which classes are minorities is derived from the training fold's class counts
(:func:`minority_classes_from_counts`), never hard-coded.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Callable

import torch
from torch import nn


def minority_classes_from_counts(counts: Mapping[int, int] | Sequence[int], ratio: float = 1.5) -> list[int]:
    """Classes whose count is below ``max(counts) / ratio``, sorted.

    ``counts`` maps class index to its number of training cases (a list is indexed by class). With the
    default ratio, BUSI's benign/malignant/normal = 437/210/133 gives malignant and normal, the classes
    the paper names. Balanced folds (every count within a factor ``ratio`` of the largest) give none. A
    class with no case (BUS-BRA's normal) is absent, not a minority: there is nothing of it to augment.
    """
    if ratio < 1:
        raise ValueError(f"ratio must be >= 1, got {ratio}")
    items = dict(counts) if isinstance(counts, Mapping) else dict(enumerate(counts))
    if not items:
        return []
    if any(int(n) < 0 for n in items.values()):
        raise ValueError(f"class counts must be >= 0, got {items}")
    largest = max(int(n) for n in items.values())
    return sorted(int(c) for c, n in items.items() if 0 < int(n) < largest / ratio)


class LatentFeatureAugmentation(nn.Module):
    """Noise and intra-class interpolation of (B, C, h, w) features for minority-class samples.

    ``forward(z, labels)`` returns a new tensor (``z`` itself in eval mode). ``p`` is the probability
    that a minority sample is augmented at all. After each training call, ``last_augmented`` (bool, B),
    ``last_partners`` (long, B; -1 = not mixed) and ``last_lambdas`` (float, B; NaN = not mixed)
    describe what was done.
    """

    def __init__(
        self,
        minority_classes: Sequence[int],
        noise_std: float = 0.1,
        mix_prob: float = 0.5,
        lambda_range: tuple[float, float] = (0.3, 0.7),
        p: float = 1.0,
    ) -> None:
        super().__init__()
        low, high = lambda_range
        if not 0.0 <= low <= high <= 1.0:
            raise ValueError(f"lambda_range must satisfy 0 <= low <= high <= 1, got {lambda_range}")
        for name, value in (("mix_prob", mix_prob), ("p", p)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if noise_std < 0:
            raise ValueError(f"noise_std must be >= 0, got {noise_std}")
        self.minority_classes = sorted(int(c) for c in minority_classes)
        self.noise_std = float(noise_std)
        self.mix_prob = float(mix_prob)
        self.lambda_range = (float(low), float(high))
        self.p = float(p)
        self.last_augmented: torch.Tensor | None = None
        self.last_partners: torch.Tensor | None = None
        self.last_lambdas: torch.Tensor | None = None

    def extra_repr(self) -> str:
        return (f"minority_classes={self.minority_classes}, noise_std={self.noise_std}, "
                f"mix_prob={self.mix_prob}, lambda_range={self.lambda_range}, p={self.p}")

    def bind(self, labels: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        """``z -> self(z, labels)``: the one-argument form ``PhyJointNet.forward_joint`` takes."""
        return lambda z: self(z, labels)

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if not self.training or not self.minority_classes:
            return z
        b = z.shape[0]
        labels = torch.as_tensor(labels).reshape(-1).to(z.device)
        if labels.numel() != b:
            raise ValueError(f"got {labels.numel()} labels for a batch of {b} feature maps")
        minority = torch.isin(labels, torch.tensor(self.minority_classes, device=z.device))
        augmented = minority & (torch.rand(b, device=z.device) < self.p)

        partners = torch.full((b,), -1, dtype=torch.long)
        lambdas = torch.full((b,), float("nan"))
        labels_cpu, augmented_cpu = labels.cpu(), augmented.cpu()
        for i in torch.nonzero(augmented_cpu).flatten().tolist():
            same = torch.nonzero((labels_cpu == labels_cpu[i]) & (torch.arange(b) != i)).flatten()
            if len(same) and torch.rand(()) < self.mix_prob:
                partners[i] = same[torch.randint(len(same), ())]
                lambdas[i] = torch.empty(()).uniform_(*self.lambda_range)

        mixed = partners >= 0
        lam = torch.where(mixed, lambdas, torch.ones(b)).to(device=z.device, dtype=z.dtype).view(b, 1, 1, 1)
        partner_z = z[torch.where(mixed, partners, torch.arange(b)).to(z.device)]
        out = lam * z + (1 - lam) * partner_z
        if self.noise_std > 0:
            scale = z.detach().flatten(1).std(dim=1, correction=0).view(b, 1, 1, 1) * self.noise_std
            out = out + torch.randn_like(z) * scale
        self.last_augmented, self.last_partners, self.last_lambdas = augmented_cpu, partners, lambdas
        # torch.where keeps untouched samples bit-identical (lam * z + 0 * z could differ by rounding)
        return torch.where(augmented.view(b, 1, 1, 1), out, z)
