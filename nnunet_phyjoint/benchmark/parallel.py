"""Run the benchmark's training items side by side: ``--jobs N`` workers, never two of one fold at once.

Small 2d networks gain little from more CPU threads, so on a small CPU machine N jobs of
``cores // N`` threads each get through an arm x fold grid sooner than one job with every core. Items of the same fold never overlap because a fold's
first PhyJoint run fits and caches the style decoder that the fold's later arms reuse; two fits of
one fold at once would both spend the minutes and race on the cache.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Callable, Generic, Hashable, Sequence, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class Outcome(Generic[T, R]):
    """What became of one item: its result, or the exception that stopped it."""

    item: T
    result: R | None = None
    error: BaseException | None = None


def threads_per_job(jobs: int, cores: int | None = None) -> int:
    """CPU threads each of ``jobs`` parallel trainings gets: the usable cores shared out, at least one."""
    if jobs < 1:
        raise ValueError(f"--jobs must be 1 or more, got {jobs}")
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // jobs)


def job_environment(jobs: int, environ: dict[str, str] | None = None, cores: int | None = None) -> dict[str, str]:
    """Environment overrides for one of ``jobs`` parallel ``nnUNetv2_train`` runs (empty for one job).

    ``OMP_NUM_THREADS`` caps torch's threads (our trainers and their stock budget variants read it,
    see ``training.cpu_threads``); ``nnUNet_n_proc_DA`` (augmentation workers) and
    ``nnUNet_def_n_proc`` (the export workers of nnU-Net's final validation, 8 by default) get the
    same count unless the user set them, so that neither outnumbers the cores. Measured on 2 cores,
    100 validation cases at 64x64: 53 s with nnU-Net's 8 export workers, 15 s with one.
    """
    environ = os.environ if environ is None else environ
    if jobs == 1:
        return {}
    n = threads_per_job(jobs, cores)
    overrides = {"OMP_NUM_THREADS": str(n), "MKL_NUM_THREADS": str(n)}
    for name in ("nnUNet_n_proc_DA", "nnUNet_def_n_proc"):
        if not environ.get(name, "").strip():
            overrides[name] = str(n)
    return overrides


def run_exclusive(items: Sequence[T], jobs: int, group_of: Callable[[T], Hashable],
                  work: Callable[[T], R], cancel: threading.Event | None = None) -> list[Outcome[T, R]]:
    """Run ``work`` on every item with up to ``jobs`` threads; items of one group never run together.

    Items start in the given order, each as soon as a worker is free and no item of its group is
    running. A failing item does not stop the others; its exception is kept in its outcome. Returns
    one outcome per item, in the order of ``items``. An interrupt (Ctrl-C) of the waiting thread
    sets ``cancel`` (which ``work`` should watch, as ``runner.run_logged`` does), starts nothing
    more, waits for the running items to stop and re-raises.
    """
    if jobs < 1:
        raise ValueError(f"jobs must be 1 or more, got {jobs}")
    outcomes = [Outcome(item) for item in items]
    pending = list(range(len(items)))
    busy: set[Hashable] = set()
    cond = threading.Condition()

    def next_index() -> int | None:
        with cond:
            while True:
                if not pending:
                    return None
                for pos, idx in enumerate(pending):
                    group = group_of(items[idx])
                    if group not in busy:
                        busy.add(group)
                        return pending.pop(pos)
                cond.wait()

    def worker() -> None:
        while (idx := next_index()) is not None:
            try:
                outcomes[idx].result = work(items[idx])
            except BaseException as e:  # kept and reported with the others once every item has run
                outcomes[idx].error = e
            finally:
                with cond:
                    busy.discard(group_of(items[idx]))
                    cond.notify_all()

    if jobs == 1 or len(items) <= 1:
        worker()
        return outcomes
    threads = [threading.Thread(target=worker, name=f"benchmark-job-{k}", daemon=True)
               for k in range(min(jobs, len(items)))]
    for t in threads:
        t.start()
    try:
        for t in threads:
            while t.is_alive():
                t.join(timeout=0.5)
    except BaseException:
        with cond:
            pending.clear()
        if cancel is not None:
            cancel.set()
        for t in threads:
            t.join()
        raise
    return outcomes
