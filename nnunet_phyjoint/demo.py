"""The main job end to end on the built-in simulated data, through nnU-Net's own commands.

simulate (train + independent test set) -> convert -> plan + split -> phyjoint preprocess ->
nnUNetv2_train PhyJointTrainer -> phyjoint predict (masks + diagnosis) on the test set ->
phyjoint evaluate -> result table.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from nnunet_phyjoint.encoders import CPU_ENCODER

TRAIN_ID, TEST_ID = 801, 802


@dataclass
class DemoConfig:
    workdir: Path = Path("phyjoint_work")
    n_train: int = 400
    n_test: int = 100
    scanners: int = 4
    size: int = 128
    encoder: str = CPU_ENCODER  # ImageNet weights from the offline-weights extra when nothing else has them
    encoder_weights: str = "auto"
    batch_size: int = 16
    trainer: str = "PhyJointTrainer_demo"
    fold: int = 0
    seed: int = 0
    device: str = "cpu"
    timings: dict[str, float] = field(default_factory=dict)


def _scripts_dir() -> Path:
    return Path(sys.executable).parent


def _run(cmd: list[str]) -> None:
    exe = _scripts_dir() / cmd[0]
    full = [str(exe) if exe.exists() else cmd[0], *cmd[1:]]
    print("\n$ " + " ".join(full), flush=True)
    subprocess.run(full, check=True)


def _step(cfg: DemoConfig, title: str, fn, *args, **kwargs):
    print(f"\n=== {title} ===", flush=True)
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    cfg.timings[title] = time.perf_counter() - t
    return out


def set_work_environment(workdir: Path) -> None:
    """Point nnU-Net (this process and its children) at folders under ``workdir``."""
    from nnunet_phyjoint.commands.env import env_lines

    for line in env_lines(workdir):
        key, value = line[len("export "):].split("=", 1)
        os.environ[key] = value.strip("'")
    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        Path(os.environ[var]).mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("nnUNet_n_proc_DA", "2")
    os.environ.setdefault("nnUNet_compile", "f")


def weight_sources(encoder: str, encoder_weights: str) -> str:
    """Where the encoder's and the VGG-19 descriptor's weights will come from (nothing is loaded here)."""
    from nnunet_phyjoint.network.encoder_weights import encoder_steps
    from nnunet_phyjoint.style_shift.vgg_weights import vgg_steps
    from nnunet_phyjoint.weight_resolution import AUTO, IMAGENET, normalise_request, survey

    lines = []
    request = normalise_request(encoder_weights)
    for label, steps, asked in ((f"encoder {encoder}", encoder_steps(encoder), request), ("VGG-19", vgg_steps(), AUTO)):
        if asked not in (AUTO, IMAGENET):
            lines.append(f"weights of {label}: {asked}")
            continue
        step, candidate, _ = survey(steps)
        found = f"{step}: {candidate.description}" if candidate else "none found: random (see `phyjoint weights list`)"
        lines.append(f"weights of {label}: {found}")
    return "\n".join(lines)


def run_demo(cfg: DemoConfig) -> dict:
    """Run every step; returns the evaluation metrics (also written under ``workdir/evaluation``)."""
    from dataset_conversion.precise import convert_precise
    from nnunet_phyjoint.evaluation.report import format_summary_table
    from nnunet_phyjoint.evaluation import evaluate_folders
    from nnunet_phyjoint.planning import describe_plans, plan_dataset
    from nnunet_phyjoint.simulator import simulate_dataset

    cfg.workdir = cfg.workdir.resolve()
    set_work_environment(cfg.workdir)
    start = time.perf_counter()
    source = cfg.workdir / "simulated"
    _step(cfg, "simulate", simulate_dataset, source / "train", n=cfg.n_train, scanners=cfg.scanners, seed=cfg.seed,
          size=(cfg.size, cfg.size), preview=cfg.workdir / "simulated_preview.png", overwrite=True)
    _step(cfg, "simulate test set", simulate_dataset, source / "test", n=cfg.n_test, scanners=cfg.scanners,
          seed=cfg.seed + 1000, size=(cfg.size, cfg.size), overwrite=True)
    train_ds = _step(cfg, "convert", convert_precise, source / "train", TRAIN_ID, name="SimulatedUS", overwrite=True)
    test_ds = _step(cfg, "convert test set", convert_precise, source / "test", TEST_ID, name="SimulatedUSTest",
                    overwrite=True)
    plans = _step(cfg, "plan + split", plan_dataset, TRAIN_ID, encoder=cfg.encoder, size=cfg.size,
                  batch_size=cfg.batch_size, encoder_weights=cfg.encoder_weights)
    print(describe_plans(plans))
    print(weight_sources(cfg.encoder, cfg.encoder_weights))
    _step(cfg, "preprocess", _run, ["phyjoint", "preprocess", "-d", str(TRAIN_ID), "-plans_name", "PhyJointPlans",
                                    "-np", "2"])
    _step(cfg, "train", _run, ["nnUNetv2_train", str(TRAIN_ID), "2d", str(cfg.fold), "-tr", cfg.trainer,
                               "-p", "PhyJointPlans", "-device", cfg.device])
    pred = cfg.workdir / "predictions_test"
    _step(cfg, "predict", _run, ["phyjoint", "predict", "-i", str(test_ds / "imagesTr"), "-o", str(pred),
                                 "-d", str(TRAIN_ID), "-c", "2d", "-tr", cfg.trainer, "-p", "PhyJointPlans",
                                 "-f", str(cfg.fold), "-device", cfg.device, "-npp", "1", "-nps", "1"])
    metrics = _step(cfg, "evaluate", evaluate_folders, test_ds / "labelsTr", pred,
                    dataset_json=test_ds / "dataset.json", out_dir=cfg.workdir / "evaluation")
    total = time.perf_counter() - start
    print("\n=== result on the independent simulated test set "
          f"({cfg.n_test} images, fold {cfg.fold} model, {cfg.encoder} at {cfg.size}x{cfg.size}) ===")
    print(format_summary_table(metrics))
    print("\nstep times: " + ", ".join(f"{k} {v:.0f} s" for k, v in cfg.timings.items()) + f"; total {total:.0f} s")
    print(f"figures: {cfg.workdir / 'evaluation' / 'figures'}; training curves: "
          f"{os.environ['nnUNet_results']}/{train_ds.name}/{cfg.trainer}__PhyJointPlans__2d/fold_{cfg.fold}/progress.png")
    return metrics
