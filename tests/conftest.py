"""Shared fixtures: nnU-Net folders in a temporary work dir, and the real sample in ../shared/data."""
from __future__ import annotations

import socket
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` beside the repository; the test is skipped with a reason when absent."""
    if not (SHARED_DATA / "precise_sample").is_dir():
        pytest.skip(f"real sample not found at {SHARED_DATA / 'precise_sample'} (expected ../shared/data beside the repo)")
    return SHARED_DATA


@pytest.fixture
def nnunet_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Fresh nnUNet_raw / nnUNet_preprocessed / nnUNet_results under tmp_path, exported to the environment."""
    dirs = {}
    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        d = tmp_path / var
        d.mkdir()
        monkeypatch.setenv(var, str(d))
        dirs[var] = d
    monkeypatch.setenv("nnUNet_extTrainer", str(REPO / "trainers"))
    monkeypatch.setenv("nnUNet_n_proc_DA", "0")
    monkeypatch.setenv("nnUNet_compile", "f")
    return dirs


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch):
    """Every socket name lookup or connection raises; yields the list of attempts."""
    from nnunet_phyjoint import downloads

    attempts: list[tuple] = []

    def forbidden(*args, **kwargs):
        attempts.append(args)
        raise OSError("network access is forbidden in this test")

    monkeypatch.setattr(socket, "getaddrinfo", forbidden)
    monkeypatch.setattr(socket, "create_connection", forbidden)
    monkeypatch.setattr(socket.socket, "connect", forbidden)
    downloads.clear_probe_cache()
    yield attempts
    downloads.clear_probe_cache()


def registry_file_or_skip(spec):
    """The weights file of an offline registry package, or skip the test saying which extra it needs."""
    from nnunet_phyjoint import registry_packages
    from nnunet_phyjoint.weight_resolution import Unavailable

    try:
        return registry_packages.find_package_file(spec)
    except Unavailable as e:
        pytest.skip(f"needs the offline-weights extra: {e}")
