"""Torch threads on CPU follow the process's CPU affinity and OMP_NUM_THREADS, not the machine's core count."""
import os

import pytest
import torch

from nnunet_phyjoint.training.cpu_threads import allowed_cpu_threads, limit_cpu_threads

pytestmark = pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="needs os.sched_getaffinity")


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_allowed_threads_follow_affinity_and_omp(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2})
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert allowed_cpu_threads() == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert allowed_cpu_threads() == 2
    monkeypatch.setenv("OMP_NUM_THREADS", "8")  # never more than the cores we may run on
    assert allowed_cpu_threads() == 3


def test_limit_lowers_nnunets_all_cores_setting(monkeypatch, restore_threads):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    torch.set_num_threads(4)  # what nnUNetv2_train -device cpu does on a bigger machine
    assert limit_cpu_threads(torch.device("cpu")) == 1
    assert torch.get_num_threads() == 1
    torch.set_num_threads(2)
    assert limit_cpu_threads(torch.device("cuda")) is None
    assert torch.get_num_threads() == 2
