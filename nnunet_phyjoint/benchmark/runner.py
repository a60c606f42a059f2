"""Run nnU-Net's own console scripts for the benchmark, skipping whatever is already done.

Every step is the command a user would type (``nnUNetv2_plan_experiment``, ``nnUNetv2_preprocess``,
``nnUNetv2_train``); its output goes to a log file under ``OUT/logs`` and a failure raises with the
log's tail. A fold counts as done when ``fold_X/checkpoint_final.pth`` and
``fold_X/validation/summary.json`` exist; an interrupted fold (``checkpoint_latest.pth``) is resumed
with ``--c``.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from nnunet_phyjoint.paths import preprocessed_dir, raw_dir, results_dir

EPOCH_LINE = re.compile(r"Epoch (\d+)\s*$", re.M)
# set when the benchmark is interrupted while several commands run in worker threads (see .parallel)
CANCEL = threading.Event()


def script(name: str) -> str:
    """Path of an installed console script beside this interpreter (else the bare name, for PATH)."""
    exe = Path(sys.executable).parent / name
    return str(exe) if exe.exists() else name


def subprocess_env(**overrides: str) -> dict[str, str]:
    """This process's environment with our trainers folder on ``nnUNet_extTrainer``."""
    from nnunet_phyjoint.commands.env import trainers_dir

    env = dict(os.environ)
    ext = str(trainers_dir())
    paths = [p for p in env.get("nnUNet_extTrainer", "").split(os.pathsep) if p]
    if ext not in paths:
        env["nnUNet_extTrainer"] = os.pathsep.join([ext, *paths])
    env.update(overrides)
    return env


def say(message: str) -> None:
    """One progress line, written in one call so that lines of parallel jobs (see .parallel) never interleave."""
    sys.stdout.write(message + "\n")
    sys.stdout.flush()


def run_logged(cmd: list[str], log_file: Path, label: str, env: dict[str, str] | None = None) -> float:
    """Run ``cmd`` with its output in ``log_file``; print progress (epoch, elapsed); return seconds."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    say(f"[{label}] $ {' '.join(cmd)}\n[{label}]   log: {log_file}")
    start = time.perf_counter()
    last_report, epoch = start, None
    with open(log_file, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env or subprocess_env())
        try:
            while proc.poll() is None:
                time.sleep(1.0)
                if CANCEL.is_set():
                    raise KeyboardInterrupt(f"[{label}] cancelled")
                if time.perf_counter() - last_report >= 30:
                    found = EPOCH_LINE.findall(log_file.read_text(errors="replace"))
                    epoch = found[-1] if found else epoch
                    where = f"epoch {epoch}, " if epoch is not None else ""
                    say(f"[{label}]   ... {where}{time.perf_counter() - start:.0f} s")
                    last_report = time.perf_counter()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        tail = log_file.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"[{label}] {' '.join(cmd)} failed with exit code {proc.returncode} "
                           f"(full log: {log_file}):\n{tail}")
    say(f"[{label}]   done in {seconds:.1f} s")
    return seconds


# ---------------------------------------------------------------------------------------- data preparation
def raw_case_ids(dataset_name: str) -> list[str]:
    """Case ids of ``$nnUNet_raw/<dataset>/imagesTr`` (single-channel ``CASE_0000<ending>``)."""
    folder = raw_dir() / dataset_name
    dj = json.loads((folder / "dataset.json").read_text())
    suffix = f"_0000{dj.get('file_ending', '.png')}"
    ids = sorted(p.name[: -len(suffix)] for p in (folder / "imagesTr").iterdir() if p.name.endswith(suffix))
    if not ids:
        raise FileNotFoundError(f"no images *{suffix} in {folder / 'imagesTr'}")
    return ids


def read_plans(dataset_name: str, plans_name: str) -> dict[str, Any]:
    path = preprocessed_dir() / dataset_name / f"{plans_name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found")
    return json.loads(path.read_text())


def ensure_phyjoint_plans(dataset_name: str, plans_name: str, encoder: str, size: int, batch_size: int,
                          num_processes: int = 1, scaling: str | None = None) -> Path:
    """PhyJoint plans (and patient-wise splits when none exist); planned only if missing.

    Existing plans are kept as they are, except that a ``scaling`` they do not have is an error (one
    plans name per input scaling, so that results of the two never mix in one model folder).
    """
    from nnunet_phyjoint.input_scaling import DEFAULT_SCALING, scaling_of

    scaling = scaling or DEFAULT_SCALING
    path = preprocessed_dir() / dataset_name / f"{plans_name}.json"
    if path.is_file():
        existing = scaling_of(json.loads(path.read_text())["configurations"]["2d"])
        if existing != scaling:
            raise ValueError(f"{path} exists with input scaling {existing!r}, not {scaling!r}: pass --scaling "
                             f"{existing} to use it, or --plans with another plans name for {scaling!r}")
        print(f"[prepare] {path.name} exists (its encoder/size/batch size are kept; input scaling {existing})",
              flush=True)
        return path
    from nnunet_phyjoint.planning import describe_plans, plan_dataset

    print(f"[prepare] planning {plans_name}: encoder {encoder}, size {size}, batch {batch_size}", flush=True)
    path = plan_dataset(dataset_name, encoder=encoder, size=size, batch_size=batch_size, plans_name=plans_name,
                        num_processes=num_processes, scaling=scaling)
    print(describe_plans(path), flush=True)
    return path


def ensure_preprocessed(dataset_name: str, plans_name: str, log_dir: Path, num_processes: int = 1,
                        phyjoint: bool = False) -> None:
    """``nnUNetv2_preprocess -c 2d`` unless every case already has its preprocessed file.

    ``phyjoint``: PhyJoint plans, preprocessed by ``phyjoint preprocess`` (the same, with the plans' input
    scaling).
    """
    plans = read_plans(dataset_name, plans_name)
    data = preprocessed_dir() / dataset_name / plans["configurations"]["2d"]["data_identifier"]
    missing = [c for c in raw_case_ids(dataset_name) if not (data / f"{c}.pkl").is_file()]
    if not missing:
        return
    command = [script("phyjoint"), "preprocess"] if phyjoint else [script("nnUNetv2_preprocess")]
    run_logged([*command, "-d", dataset_name[7:10], "-plans_name", plans_name, "-c", "2d",
                "-np", str(num_processes)], log_dir / f"preprocess_{plans_name}.log", "prepare")


def ensure_stock_plans(dataset_name: str, log_dir: Path, plans_name: str = "nnUNetPlans",
                       planner: str = "ExperimentPlanner") -> Path:
    """Plans of one of nnU-Net's own planners (``nnUNetv2_plan_experiment -pl PLANNER``), only if missing.

    Default: nnU-Net's default ``nnUNetPlans``; ``plans_name="nnUNetResEncUNetMPlans",
    planner="nnUNetPlannerResEncM"`` is the residual-encoder M preset. Planning reads the dataset
    fingerprint and writes only ``<plans_name>.json`` (never ``splits_final.json``), so every
    plans file shares the folds.
    """
    path = preprocessed_dir() / dataset_name / f"{plans_name}.json"
    if not path.is_file():
        cmd = [script("nnUNetv2_plan_experiment"), "-d", dataset_name[7:10]]
        if planner != "ExperimentPlanner":
            cmd += ["-pl", planner]
        # nnU-Net's VRAM estimate calls torch.set_num_threads(nnUNet_n_proc_DA), which fails for 0
        n_da = os.environ.get("nnUNet_n_proc_DA", "1")
        run_logged(cmd, log_dir / f"plan_{plans_name}.log", "prepare",
                   env=subprocess_env(nnUNet_n_proc_DA=n_da if n_da.strip() != "0" else "1"))
        if not path.is_file():
            raise RuntimeError(f"nnUNetv2_plan_experiment -pl {planner} did not write {path} "
                               f"(log: {log_dir / f'plan_{plans_name}.log'})")
    return path


def ensure_stock_on_phyjoint_input_plans(dataset_name: str, phyjoint_plans: str, plans_name: str) -> Path:
    """Plans for nnU-Net's PlainConvUNet on the PhyJoint input, sharing the PhyJoint preprocessed data.

    The ``2d`` configuration is the PhyJoint one (same ``data_identifier``, spacing, patch and batch
    size, normalisation: no second preprocessing), with the architecture and ``batch_dice`` that
    nnU-Net's ``ExperimentPlanner`` plans for that spacing and patch size.
    """
    from nnunet_phyjoint.evaluation.io import write_json

    path = preprocessed_dir() / dataset_name / f"{plans_name}.json"
    source = read_plans(dataset_name, phyjoint_plans)
    cfg = source["configurations"]["2d"]
    if path.is_file():
        existing = json.loads(path.read_text())
        if existing["configurations"]["2d"]["data_identifier"] == cfg["data_identifier"]:
            return path
    planned = plan_stock_architecture(dataset_name, cfg["spacing"], cfg["patch_size"], cfg["data_identifier"])
    new_cfg = dict(cfg)
    new_cfg["architecture"] = planned["architecture"]
    # ExperimentPlanner.plan_experiment sets batch_dice=True for the 2d configuration after planning it
    new_cfg["batch_dice"] = planned.get("batch_dice", True)
    plans = dict(source)
    plans["plans_name"] = plans_name
    plans["configurations"] = {"2d": new_cfg}
    plans["phyjoint"] = {"derived_from": phyjoint_plans,
                         "note": "stock nnU-Net architecture planned for the PhyJoint input; same preprocessed data",
                         "planner_patch_size": list(planned["patch_size"])}
    write_json(path, plans)
    print(f"[prepare] wrote {path}", flush=True)
    return path


def plan_stock_architecture(dataset_name: str, spacing: list[float], patch_size: list[int],
                            data_identifier: str) -> dict[str, Any]:
    """What nnU-Net's default ``ExperimentPlanner`` plans for a 2d configuration at this spacing and size."""
    from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import ExperimentPlanner
    from nnunetv2.utilities.json_export import recursive_fix_for_json_export

    planner = ExperimentPlanner(dataset_name)
    saved = os.environ.get("nnUNet_n_proc_DA")
    if saved is not None and saved.strip() == "0":  # see ensure_stock_plans
        os.environ["nnUNet_n_proc_DA"] = "1"
    try:
        n_voxels = float(len(raw_case_ids(dataset_name))) * float(patch_size[0] * patch_size[1])
        planned = planner.get_plans_for_configuration(spacing, patch_size, data_identifier, n_voxels, {})
    finally:
        if saved is not None:
            os.environ["nnUNet_n_proc_DA"] = saved
    recursive_fix_for_json_export(planned)
    return planned


# ---------------------------------------------------------------------------------------- training
def model_folder(dataset_name: str, trainer: str, plans: str) -> Path:
    return results_dir() / dataset_name / f"{trainer}__{plans}__2d"


def fold_done(folder: Path, fold: int) -> bool:
    """A finished fold: final checkpoint and a complete final validation (``validation/summary.json``).

    Every trainer writes ``summary.json`` last; a PhyJoint trainer sets nnU-Net's aside until its
    ``classification.csv`` and gated masks are written (``PhyJointTrainer.perform_actual_validation``).
    """
    fd = folder / f"fold_{fold}"
    return (fd / "checkpoint_final.pth").is_file() and (fd / "validation" / "summary.json").is_file()


def train_fold(dataset_name: str, trainer: str, plans: str, fold: int, device: str, log_dir: Path,
               label: str, env_overrides: dict[str, str] | None = None) -> dict[str, Any]:
    """``nnUNetv2_train`` one fold unless done (``env_overrides`` on top of :func:`subprocess_env`);
    returns ``{status, seconds}``."""
    folder = model_folder(dataset_name, trainer, plans)
    if fold_done(folder, fold):
        say(f"[{label}] fold {fold} already trained: {folder / f'fold_{fold}'}")
        return {"status": "done before", "seconds": None}
    cmd = [script("nnUNetv2_train"), dataset_name[7:10], "2d", str(fold), "-tr", trainer, "-p", plans,
           "-device", device]
    trained = (folder / f"fold_{fold}" / "checkpoint_final.pth").is_file()
    resumed = not trained and (folder / f"fold_{fold}" / "checkpoint_latest.pth").is_file()
    if trained:  # the final validation was interrupted: run it again, not the training
        say(f"[{label}] fold {fold} trained but its final validation is incomplete: nnUNetv2_train --val")
        cmd.append("--val")
    elif resumed:
        cmd.append("--c")
    seconds = run_logged(cmd, log_dir / f"train_{trainer}__{plans}_fold{fold}.log", label,
                         env=subprocess_env(**(env_overrides or {})))
    if not fold_done(folder, fold):
        raise RuntimeError(f"[{label}] nnUNetv2_train finished but {folder / f'fold_{fold}'} lacks "
                           "checkpoint_final.pth or a complete validation/ (summary.json)")
    return {"status": "validated" if trained else "resumed" if resumed else "trained", "seconds": seconds}
