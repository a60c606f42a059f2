"""`phyjoint benchmark --jobs N`: training items side by side, never two of one fold, failures kept."""
from __future__ import annotations

import json
import threading
import time

import pytest

from nnunet_phyjoint.benchmark.parallel import job_environment, run_exclusive, threads_per_job


def test_threads_per_job_shares_the_cores():
    assert threads_per_job(1, cores=2) == 2
    assert threads_per_job(2, cores=2) == 1
    assert threads_per_job(3, cores=2) == 1  # never zero
    assert threads_per_job(2, cores=16) == 8
    with pytest.raises(ValueError, match="--jobs"):
        threads_per_job(0, cores=2)


def test_job_environment_caps_threads_and_keeps_the_users_worker_counts():
    assert job_environment(1, {}, cores=2) == {}  # one job: nnU-Net's own behaviour, untouched
    env = job_environment(2, {}, cores=4)
    assert env["OMP_NUM_THREADS"] == "2" and env["nnUNet_n_proc_DA"] == "2"
    assert env["nnUNet_def_n_proc"] == "2"  # nnU-Net's final validation would start 8 export workers
    users = job_environment(2, {"nnUNet_n_proc_DA": "0", "nnUNet_def_n_proc": "3"}, cores=4)
    assert "nnUNet_n_proc_DA" not in users and "nnUNet_def_n_proc" not in users


def _record_overlaps(n_items, jobs, groups):
    running: dict[str, int] = {}
    peak = {"total": 0}
    overlap_same_group = []
    lock = threading.Lock()

    def work(item):
        g = groups[item]
        with lock:
            if running.get(g):
                overlap_same_group.append(item)
            running[g] = running.get(g, 0) + 1
            peak["total"] = max(peak["total"], sum(running.values()))
        time.sleep(0.05)
        with lock:
            running[g] -= 1
        return item * 10

    outcomes = run_exclusive(list(range(n_items)), jobs, group_of=lambda i: groups[i], work=work)
    return outcomes, peak["total"], overlap_same_group


def test_run_exclusive_runs_every_item_in_parallel_but_never_two_of_one_group():
    # 3 arms x 4 folds, arm-major like train_all; group = fold
    groups = {i: f"fold{i % 4}" for i in range(12)}
    outcomes, peak, overlaps = _record_overlaps(12, 2, groups)
    assert [o.result for o in outcomes] == [i * 10 for i in range(12)]
    assert all(o.error is None for o in outcomes)
    assert overlaps == []
    assert peak == 2  # two workers really ran side by side


def test_run_exclusive_serialises_a_single_group_even_with_many_jobs():
    groups = {i: "fold0" for i in range(4)}
    outcomes, peak, overlaps = _record_overlaps(4, 3, groups)
    assert peak == 1 and overlaps == [] and len(outcomes) == 4


def test_one_failure_does_not_stop_the_others():
    def work(i):
        if i == 1:
            raise RuntimeError("fold 1 broke")
        return i

    outcomes = run_exclusive([0, 1, 2, 3], 2, group_of=lambda i: i, work=work)
    assert [o.result for o in outcomes] == [0, None, 2, 3]
    assert isinstance(outcomes[1].error, RuntimeError)


def test_train_all_with_two_jobs_trains_every_arm_and_fold_with_capped_threads(monkeypatch, tmp_path):
    from nnunet_phyjoint.benchmark import runner, stages
    from nnunet_phyjoint.benchmark.arms import known_arms

    calls = []
    lock = threading.Lock()

    def fake_train_fold(dataset, trainer, plans, fold, device, log_dir, label, env_overrides=None):
        with lock:
            calls.append((trainer, fold, dict(env_overrides or {})))
        if trainer.startswith("PhyJointTrainer_noPhyAug") and fold == 2:
            raise RuntimeError("no_phyaug fold 2 exploded")
        time.sleep(0.02)
        return {"status": "trained", "seconds": 1.5}

    monkeypatch.setattr(runner, "train_fold", fake_train_fold)
    arms = [known_arms()["phyjoint"], known_arms()["no_phyaug"]]
    cfg = stages.BenchmarkConfig(dataset="1", out=tmp_path, epochs=5, jobs=2)
    with pytest.raises(RuntimeError, match="no_phyaug fold 2 exploded"):
        stages.train_all(cfg, "Dataset001_X", arms, [0, 1, 2, 3], tmp_path, tmp_path / "runs.json")
    assert len(calls) == 8  # the failure did not cost the other seven
    assert all(env["OMP_NUM_THREADS"] == str(threads_per_job(2)) for _, _, env in calls)
    runs = json.loads((tmp_path / "runs.json").read_text())
    assert len(runs) == 7 and "no_phyaug/2" not in runs
    assert all(r["jobs"] == 2 and r["seconds"] == 1.5 for r in runs.values())


def test_benchmark_cli_accepts_jobs(monkeypatch, tmp_path):
    from nnunet_phyjoint.benchmark import pipeline
    from nnunet_phyjoint.cli import main

    seen = {}
    monkeypatch.setattr(pipeline, "run_benchmark", lambda cfg: seen.setdefault("cfg", cfg))
    assert main(["benchmark", "-d", "1", "--jobs", "2", "-o", str(tmp_path / "b")]) == 0
    assert seen["cfg"].jobs == 2


def test_a_cancelled_benchmark_kills_its_running_commands(tmp_path):
    import sys

    from nnunet_phyjoint.benchmark import runner

    runner.CANCEL.set()
    try:
        start = time.perf_counter()
        with pytest.raises(KeyboardInterrupt, match="cancelled"):
            runner.run_logged([sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / "x.log", "t")
        assert time.perf_counter() - start < 20
    finally:
        runner.CANCEL.clear()
