"""Torch threads on CPU: the cores this process may use, not every core of the machine.

``nnUNetv2_train -device cpu`` sets ``torch.set_num_threads(multiprocessing.cpu_count())``, which
counts every core even when the process is confined to fewer (``taskset``, a container's CPU set, a
Slurm allocation) and ignores ``OMP_NUM_THREADS``. More threads than cores make each step slower,
and two confined runs side by side then fight over their cores.
"""
from __future__ import annotations

import os

import torch


def allowed_cpu_threads() -> int:
    """Cores this process may run on (its CPU affinity), capped by ``OMP_NUM_THREADS`` when that is set."""
    allowed = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    requested = os.environ.get("OMP_NUM_THREADS", "").strip()
    if requested.isdigit() and int(requested) > 0:
        allowed = min(allowed, int(requested))
    return max(1, allowed)


def limit_cpu_threads(device: torch.device) -> int | None:
    """On CPU, lower torch's thread count to :func:`allowed_cpu_threads`; returns the count (None off CPU)."""
    if device.type != "cpu":
        return None
    threads = allowed_cpu_threads()
    if torch.get_num_threads() > threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()
