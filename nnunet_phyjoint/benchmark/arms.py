"""The arms of the benchmark: which trainer on which plans, and which of them can run here.

An arm names a *base* trainer; the benchmark trains its equal-budget version: with N epochs
``nnUNetTrainer_onePass_{N}epochs`` for stock nnU-Net and ``{base}_{N}ep`` for PhyJoint trainers,
with M minutes per fold ``nnUNetTrainer_onePass_{M}min`` and ``{base}_{M}min`` (see
:mod:`.budget`, :mod:`nnunet_phyjoint.training.stock_variants` and
:mod:`~nnunet_phyjoint.training.budget_variants`). Arms whose trainer does not exist (yet) are
reported as skipped.
"""
from __future__ import annotations

from dataclasses import dataclass

from nnunet_phyjoint.benchmark.budget import Budget, BudgetLike, as_budget

PHYJOINT_PLANS = "PhyJointPlans"
STOCK_PLANS = "nnUNetPlans"
STOCK_ON_PHYJOINT_INPUT_PLANS = "nnUNetPlans_PhyJointInput"
#: nnU-Net's residual-encoder M preset (``nnUNetv2_plan_experiment -pl nnUNetPlannerResEncM``)
RESENC_M_PLANS = "nnUNetResEncUNetMPlans"
RESENC_M_PLANNER = "nnUNetPlannerResEncM"
#: plans made by one of nnU-Net's own planners: plans name -> ``-pl`` planner class
STOCK_PLANNERS: dict[str, str] = {STOCK_PLANS: "ExperimentPlanner", RESENC_M_PLANS: RESENC_M_PLANNER}
STOCK_BASE = "nnUNetTrainer_onePass"


@dataclass(frozen=True)
class Arm:
    """One row of the benchmark table."""

    name: str
    base_trainer: str
    plans: str
    description: str
    export_bits: int | None = None  # INT8/INT4 arms also report the packed export size

    @property
    def is_stock(self) -> bool:
        """Stock nnU-Net trainer (segmentation only, no diagnosis head)."""
        return self.base_trainer == STOCK_BASE

    def trainer(self, budget: BudgetLike) -> str:
        """Class name of this arm's trainer with ``budget`` (a :class:`Budget`; an int means epochs)."""
        return as_budget(budget).trainer_name(self.base_trainer, self.is_stock)

    def model_folder_name(self, budget: BudgetLike) -> str:
        """nnU-Net's results folder name ``Trainer__Plans__2d``."""
        return f"{self.trainer(budget)}__{self.plans}__2d"


def _phyjoint_arm(name: str, base: str, description: str, bits: int | None = None) -> Arm:
    return Arm(name, base, PHYJOINT_PLANS, description, bits)


ARMS: tuple[Arm, ...] = (
    Arm("nnunet", STOCK_BASE, STOCK_PLANS, "stock nnU-Net (PlainConvUNet, SGD, DC+CE) on nnU-Net's default 2d plans"),
    Arm("nnunet_phyjoint_plans", STOCK_BASE, STOCK_ON_PHYJOINT_INPUT_PLANS,
        "stock nnU-Net network and trainer on the PhyJoint input (whole image letterboxed)"),
    Arm("resenc_m", STOCK_BASE, RESENC_M_PLANS,
        "stock nnU-Net ResEnc M preset (ResidualEncoderUNet, nnUNetPlannerResEncM plans on nnU-Net's "
        "default preprocessed data)"),
    _phyjoint_arm("phyjoint", "PhyJointTrainer", "PhyJointNet, full method (AdamW8bit)"),
    _phyjoint_arm("no_phyaug", "PhyJointTrainer_noPhyAug", "ablation: no physics style shift"),
    _phyjoint_arm("no_latent", "PhyJointTrainer_noLatentAug", "ablation: no latent feature augmentation"),
    _phyjoint_arm("int8", "PhyJointTrainer_INT8", "encoder weights fake-quantized to INT8 during training", 8),
    _phyjoint_arm("int4", "PhyJointTrainer_INT4", "encoder weights fake-quantized to INT4 during training", 4),
    _phyjoint_arm("adamw32", "PhyJointTrainer_AdamW", "torch's 32-bit AdamW instead of AdamW8bit"),
)


def known_arms() -> dict[str, Arm]:
    """The fixed arms plus one arm per other PhyJoint trainer found (e.g. classic physics strategies).

    A discovered trainer ``PhyJointTrainer_X`` becomes arm ``X`` (e.g. ``physGain``).
    """
    from nnunet_phyjoint.training import budget_variants

    arms = {a.name: a for a in ARMS}
    covered = {a.base_trainer for a in ARMS}
    for base in budget_variants.BASE_TRAINERS:
        if base not in covered:
            name = base.removeprefix("PhyJointTrainer_")
            cls = getattr(budget_variants, budget_variants.budget_trainer_name(base, 1)).__mro__[1]
            doc = (cls.__doc__ or "").strip().splitlines()
            arms.setdefault(name, _phyjoint_arm(name, base, doc[0] if doc else base))
    return arms


def trainer_exists(name: str) -> bool:
    """Whether nnU-Net will find a trainer class of this name in our trainer modules."""
    from nnunet_phyjoint.training import budget_variants, stock_variants

    return hasattr(budget_variants, name) or hasattr(stock_variants, name)


def resolve_arms(requested: list[str] | None, budget: BudgetLike) -> tuple[list[Arm], list[tuple[str, str]]]:
    """(arms to run, [(arm, reason skipped)]) for ``--arms`` (``None``: every known arm).

    ``budget`` is a :class:`Budget` (an int means epochs); a budget without trainer classes is a
    ValueError. An entry may also be a PhyJoint trainer class name (``PhyJointTrainer_Something``):
    it becomes an ad-hoc arm on the PhyJoint plans. Unknown names that are not trainer names are an error.
    """
    budget = as_budget(budget).validate()
    arms = known_arms()
    chosen: list[Arm] = []
    for name in requested or list(arms):
        if name in arms:
            arm = arms[name]
        elif name.startswith("PhyJointTrainer"):
            arm = _phyjoint_arm(name, name, f"{name} (named on the command line)")
        else:
            raise ValueError(f"unknown arm {name!r}; known arms: {', '.join(arms)} "
                             "(or give a PhyJointTrainer* class name)")
        if arm not in chosen:
            chosen.append(arm)
    runnable, skipped = [], []
    for arm in chosen:
        if trainer_exists(arm.trainer(budget)):
            runnable.append(arm)
        else:
            skipped.append((arm.name, f"trainer class {arm.base_trainer} not found "
                                      f"(no {arm.trainer(budget)} in trainers/stock_trainers.py)"))
    return runnable, skipped
