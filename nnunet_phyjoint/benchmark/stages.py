"""Stages shared by both benchmark protocols: the config, plans + preprocessing, training every arm x fold.

Both :mod:`.pipeline` (cross-validation) and :mod:`.loso` (leave one scanner out) call these; neither
protocol module imports the other's internals, so calls flow pipeline → loso → stages.
"""
from __future__ import annotations

import contextlib
import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from nnunet_phyjoint.benchmark import runner
from nnunet_phyjoint.benchmark.arms import (
    PHYJOINT_PLANS, STOCK_ON_PHYJOINT_INPUT_PLANS, STOCK_PLANNERS, Arm,
)
from nnunet_phyjoint.benchmark.budget import Budget
from nnunet_phyjoint.input_scaling import DEFAULT_SCALING
from nnunet_phyjoint.training.early_stopping import PATIENCE_ENV

#: set for every benchmark training run. Early stopping off: each arm trains its whole budget (stock
#: nnU-Net never stops early, so equal epochs and equal wall clock stay equal), and the fold early
#: stopping would watch is the fold (or held-out scanner) the arm is then scored on.
BENCHMARK_TRAINING_ENV = {PATIENCE_ENV: "0"}


@dataclass
class BenchmarkConfig:
    """What ``phyjoint benchmark`` runs. The budget is ``epochs`` unless ``minutes_per_fold`` is set."""

    dataset: str
    out: Path
    folds: list[int] = field(default_factory=lambda: [0, 1, 2, 3])
    epochs: int = 10
    arms: list[str] | None = None
    device: str = "cpu"
    encoder: str = "tf_efficientnet_b6"
    size: int = 256
    batch_size: int = 16
    phyjoint_plans: str = PHYJOINT_PLANS
    num_processes: int = 1
    n_bootstrap: int = 1000
    n_speed_images: int = 4
    leave_one_scanner_out: bool = False
    loso_dataset_id: int | None = None
    loso_min_cases: int = 1  # scanners with fewer images are never held out (they stay in training)
    loso_held_out: list[str] | None = None  # only these held-out scanners (case-insensitive substrings); None: all
    minutes_per_fold: int | None = None  # equal wall-clock budget instead of equal epochs
    postprocessing: bool = True  # also score each arm after nnU-Net's own determine_postprocessing
    test_dataset: str | None = None  # independent test set (raw dataset id/name) scored by each arm's fold ensemble
    repeat: int = 1  # k-th independent training run of every arm (k > 1: its own nnUNet_results/repeat_k)
    jobs: int = 1  # nnUNetv2_train runs side by side (never two of one fold), cores shared out among them
    scaling: str = DEFAULT_SCALING  # input scaling of PhyJoint plans made by the benchmark (input_scaling)

    @property
    def budget(self) -> Budget:
        """The training budget of every arm: ``minutes_per_fold`` when set, else ``epochs``."""
        if self.minutes_per_fold is not None:
            return Budget.minutes(self.minutes_per_fold)
        return Budget.epochs(self.epochs)


REPEAT_FOLDER = "repeat_{k}"


def budget_context(cfg: BenchmarkConfig) -> str:
    """The first context line of a benchmark report: the budget, and the repeat when it is not the first."""
    budget = cfg.budget
    line = f"budget: {budget.describe()} (`{budget.option}`)"
    return line + (f"; independent run (repeat) {cfg.repeat}" if cfg.repeat > 1 else "")


@contextlib.contextmanager
def results_of_repeat(repeat: int) -> Iterator[Path]:
    """``nnUNet_results`` of the ``repeat``-th independent run, set for this process and its nnU-Net commands.

    Repeat 1 is ``$nnUNet_results`` itself (what a plain ``nnUNetv2_train`` writes); repeat k > 1 is
    ``$nnUNet_results/repeat_k``, so that the same trainer on the same plans and folds trains afresh:
    nnU-Net does not seed its training, so repeats differ in initialisation, batch order and
    augmentation, which is the run-to-run variation a difference between arms has to exceed.
    """
    from nnunet_phyjoint.paths import results_dir

    if repeat < 1:
        raise ValueError(f"repeat must be 1 or more, got {repeat}")
    base = results_dir()
    if repeat == 1:
        yield base
        return
    root = base / REPEAT_FOLDER.format(k=repeat)
    root.mkdir(parents=True, exist_ok=True)
    os.environ["nnUNet_results"] = str(root)
    try:
        yield root
    finally:
        os.environ["nnUNet_results"] = str(base)


def machine_info() -> dict[str, Any]:
    """Platform, Python, torch and device facts recorded with every result."""
    import torch

    return {"platform": platform.platform(), "python": sys.version.split()[0], "torch": torch.__version__,
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def stock_on_phyjoint_input_plans(phyjoint_plans: str) -> str:
    """Plans name of stock nnU-Net on the input of ``phyjoint_plans`` (one per PhyJoint plans, never shared)."""
    if phyjoint_plans == PHYJOINT_PLANS:
        return STOCK_ON_PHYJOINT_INPUT_PLANS
    return f"nnUNetPlans_on_{phyjoint_plans}"


def plans_of(arm: Arm, cfg: BenchmarkConfig) -> str:
    """The plans name an arm trains on (the PhyJoint arms and the same-input stock arm follow ``cfg.phyjoint_plans``)."""
    if arm.plans == PHYJOINT_PLANS:
        return cfg.phyjoint_plans
    if arm.plans == STOCK_ON_PHYJOINT_INPUT_PLANS:
        return stock_on_phyjoint_input_plans(cfg.phyjoint_plans)
    return arm.plans


def prepare(cfg: BenchmarkConfig, dataset_name: str, arms: list[Arm], log_dir: Path) -> None:
    """Plans and preprocessed data for every plans file the arms use (each step only if missing)."""
    plans_used = {a.plans for a in arms}
    runner.ensure_phyjoint_plans(dataset_name, cfg.phyjoint_plans, cfg.encoder, cfg.size, cfg.batch_size,
                                 cfg.num_processes, scaling=cfg.scaling)
    runner.ensure_preprocessed(dataset_name, cfg.phyjoint_plans, log_dir, cfg.num_processes, phyjoint=True)
    # nnU-Net's own planners (nnUNetPlans; nnUNetResEncUNetMPlans, whose 2d data is nnUNetPlans_2d as well)
    for plans_name, planner in STOCK_PLANNERS.items():
        if plans_name in plans_used:
            runner.ensure_stock_plans(dataset_name, log_dir, plans_name, planner)
            runner.ensure_preprocessed(dataset_name, plans_name, log_dir, cfg.num_processes)
    if STOCK_ON_PHYJOINT_INPUT_PLANS in plans_used:
        runner.ensure_stock_on_phyjoint_input_plans(dataset_name, cfg.phyjoint_plans,
                                                    stock_on_phyjoint_input_plans(cfg.phyjoint_plans))


def train_all(cfg: BenchmarkConfig, dataset_name: str, arms: list[Arm], folds: list[int], log_dir: Path,
              runs_file: Path) -> dict[str, Any]:
    """Every arm x fold through ``nnUNetv2_train`` (done folds skipped); run records kept in ``runs_file``.

    Every run gets :data:`BENCHMARK_TRAINING_ENV` (early stopping off) and is scored with its last
    epoch's weights.

    With ``cfg.jobs`` > 1 that many run side by side, each with its share of the cores (see
    :mod:`.parallel`); a failed fold does not stop the others, and all failures are raised together
    once every other fold has run.
    """
    import threading

    from nnunet_phyjoint.benchmark.parallel import job_environment, run_exclusive, threads_per_job
    from nnunet_phyjoint.evaluation.io import write_json

    runs = json.loads(runs_file.read_text()) if runs_file.is_file() else {}
    items = [(arm, fold) for arm in arms for fold in folds]
    jobs_env = job_environment(cfg.jobs)
    overrides = {**jobs_env, **BENCHMARK_TRAINING_ENV}
    print(f"[benchmark] early stopping off ({PATIENCE_ENV}=0): every arm trains its whole budget and is scored "
          "with its last epoch's weights", flush=True)
    if cfg.jobs > 1:
        print(f"[benchmark] {cfg.jobs} training jobs side by side, {threads_per_job(cfg.jobs)} CPU thread(s) each "
              f"({', '.join(f'{k}={v}' for k, v in jobs_env.items())}); never two of one fold", flush=True)
    lock = threading.Lock()
    start = time.perf_counter()

    def train(item: tuple[Arm, int]) -> dict[str, Any]:
        arm, fold = item
        trainer = arm.trainer(cfg.budget)
        label = (f"{items.index(item) + 1}/{len(items)} {arm.name} fold {fold}, "
                 f"{time.perf_counter() - start:.0f} s elapsed")
        record = runner.train_fold(dataset_name, trainer, plans_of(arm, cfg), fold, cfg.device, log_dir, label,
                                   env_overrides=overrides)
        with lock:
            previous = runs.get(f"{arm.name}/{fold}")
            if record["status"] != "done before" or previous is None or previous.get("trainer") != trainer:
                runs[f"{arm.name}/{fold}"] = {"trainer": trainer, "plans": plans_of(arm, cfg),
                                              "budget": cfg.budget.label, **record,
                                              **({"jobs": cfg.jobs} if cfg.jobs > 1 else {})}
                write_json(runs_file, runs)
        return record

    runner.CANCEL.clear()
    outcomes = run_exclusive(items, cfg.jobs, group_of=lambda item: item[1], work=train, cancel=runner.CANCEL)
    failed = [o for o in outcomes if o.error is not None]
    if failed:
        if len(failed) == 1:
            raise failed[0].error
        raise RuntimeError(f"{len(failed)} of {len(items)} training runs failed:\n" + "\n".join(
            f"- {o.item[0].name} fold {o.item[1]}: {o.error}" for o in failed))
    return runs
