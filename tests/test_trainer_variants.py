"""Every PhyJoint trainer is found by nnU-Net through trainers/, the user's variants apart from the ablation history."""
from __future__ import annotations

import importlib
import pkgutil

import pytest

pytest.importorskip("nnunetv2")

from nnunet_phyjoint.training import ablation_variants, budget_variants, variants  # noqa: E402
from nnunet_phyjoint.training.phyjoint_trainer import PhyJointTrainer  # noqa: E402


def _public_trainers(module) -> set[str]:
    return {name for name, obj in vars(module).items()
            if isinstance(obj, type) and issubclass(obj, PhyJointTrainer) and obj.__module__ == module.__name__
            and not name.startswith("_")}


def test_every_variant_is_exported_and_the_two_lists_do_not_overlap():
    assert set(variants.__all__) == _public_trainers(variants)
    assert set(ablation_variants.__all__) == _public_trainers(ablation_variants)
    assert not set(variants.__all__) & set(ablation_variants.__all__)
    assert "PhyJointTrainer_headFanIn" in ablation_variants.__all__ and "PhyJointTrainer_INT8" in variants.__all__


def test_nnunet_finds_every_phyjoint_trainer_through_the_trainers_folder(monkeypatch):
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    from nnunet_phyjoint.paths import trainers_dir

    folder = trainers_dir()
    reachable = set()
    for info in pkgutil.iter_modules([str(folder)]):
        module = importlib.import_module(f"nnunet_phyjoint.trainers.{info.name}")
        reachable |= {k for k, v in vars(module).items() if isinstance(v, type) and issubclass(v, PhyJointTrainer)}
    wanted = {"PhyJointTrainer"} | set(variants.__all__) | set(ablation_variants.__all__)
    assert wanted <= reachable, sorted(wanted - reachable)
    # the benchmark's equal-budget versions of the ablation rows as well
    assert set(ablation_variants.__all__) <= set(budget_variants.BASE_TRAINERS)
    monkeypatch.setenv("nnUNet_extTrainer", str(folder))
    for name in ("PhyJointTrainer_noHeadPrior", "PhyJointTrainer_noPhyAug_batchDice", "PhyJointTrainer_prior05",
                 budget_variants.budget_trainer_name("PhyJointTrainer_lr3e3_newLr1e2", budget_variants.EPOCH_BUDGETS[0])):
        assert issubclass(recursive_find_trainer_class_by_name(name), PhyJointTrainer), name
