"""Latent feature augmentation: minority rule, which samples change, lambda range, partners, eval identity."""
from __future__ import annotations

import pytest
import torch

from nnunet_phyjoint.latent_augmentation import LatentFeatureAugmentation, minority_classes_from_counts


def test_minority_classes_follow_the_fold_counts() -> None:
    assert minority_classes_from_counts({0: 133, 1: 437, 2: 210}) == [0, 2]  # BUSI normal/benign/malignant
    assert minority_classes_from_counts([419, 174, 90]) == [1, 2]
    assert minority_classes_from_counts([100, 90, 80]) == []
    assert minority_classes_from_counts([100, 90, 80], ratio=1.2) == [2]
    assert minority_classes_from_counts({}) == []
    assert minority_classes_from_counts([0, 1014, 392]) == [2]  # BUS-BRA: no normal case, none to augment
    with pytest.raises(ValueError):
        minority_classes_from_counts([1, 2], ratio=0.5)


def batch(labels: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    return torch.randn(len(labels), 8, 4, 4) * 3 + 1, torch.tensor(labels)


def test_only_minority_samples_change_and_input_is_untouched() -> None:
    z, labels = batch([0, 1, 2, 1, 0, 2, 1, 1])
    original = z.clone()
    aug = LatentFeatureAugmentation([0, 2], noise_std=0.1, mix_prob=0.5).train()
    torch.manual_seed(1)
    out = aug(z, labels)
    assert out is not z and torch.equal(z, original)
    minority = torch.isin(labels, torch.tensor([0, 2]))
    for i in range(len(labels)):
        same = torch.equal(out[i], z[i])
        assert same != bool(minority[i]), f"sample {i} (class {labels[i]})"
    assert torch.equal(aug.last_augmented, minority)


def test_mixing_uses_a_same_class_partner_and_lambda_in_range() -> None:
    z, labels = batch([0, 1, 0, 2, 2, 0, 1, 2])
    aug = LatentFeatureAugmentation([0, 2], noise_std=0.0, mix_prob=1.0).train()
    lambdas = []
    for seed in range(20):
        torch.manual_seed(seed)
        out = aug(z, labels)
        for i in torch.nonzero(aug.last_augmented).flatten().tolist():
            j, lam = int(aug.last_partners[i]), float(aug.last_lambdas[i])
            assert j != i and labels[j] == labels[i]
            assert 0.3 <= lam <= 0.7
            assert torch.allclose(out[i], lam * z[i] + (1 - lam) * z[j], atol=1e-6)
            lambdas.append(lam)
    assert min(lambdas) < 0.4 and max(lambdas) > 0.6  # the whole range is sampled


def test_noise_scales_with_feature_std_and_lonely_samples_get_noise_only() -> None:
    z, labels = batch([2, 1, 1, 1])
    aug = LatentFeatureAugmentation([2], noise_std=0.1, mix_prob=1.0).train()
    torch.manual_seed(0)
    out = aug(z, labels)
    assert int(aug.last_partners[0]) == -1 and torch.isnan(aug.last_lambdas[0])  # no other class-2 sample
    ratio = float((out[0] - z[0]).std() / z[0].std())
    assert 0.05 < ratio < 0.2


def test_probability_and_eval_mode() -> None:
    z, labels = batch([0, 0, 0, 0])
    aug = LatentFeatureAugmentation([0], p=0.0).train()
    assert torch.equal(aug(z, labels), z)
    aug = LatentFeatureAugmentation([0]).eval()
    assert aug(z, labels) is z
    assert LatentFeatureAugmentation([]).train()(z, labels) is z


def test_gradients_flow_and_bind_works_with_the_network_hook() -> None:
    z, labels = batch([0, 0, 1])
    z.requires_grad_(True)
    aug = LatentFeatureAugmentation([0], mix_prob=1.0).train()
    out = aug.bind(labels)(z)
    out.sum().backward()
    assert z.grad is not None and torch.isfinite(z.grad).all()


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="lambda_range"):
        LatentFeatureAugmentation([0], lambda_range=(0.8, 0.2))
    with pytest.raises(ValueError, match="mix_prob"):
        LatentFeatureAugmentation([0], mix_prob=2)
    z, _ = batch([0, 1])
    with pytest.raises(ValueError, match="labels"):
        LatentFeatureAugmentation([0]).train()(z, torch.tensor([0, 1, 1]))
