"""Atomic writes end with the permissions a plain write would give (mkstemp/mkdtemp alone make them private)."""
from __future__ import annotations

import os
import stat

import pytest

from nnunet_phyjoint.atomic_io import atomic_folder, atomic_path, atomic_write_text, write_json_atomic


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_atomic_files_get_the_umask_mode_not_mkstemps_0600(tmp_path, umask_022):
    atomic_write_text(tmp_path / "a.txt", "x")
    write_json_atomic(tmp_path / "b.json", {"k": 1})
    with atomic_path(tmp_path / "c.png") as tmp:
        tmp.write_bytes(b"png")
    for name in ("a.txt", "b.json", "c.png"):
        assert _mode(tmp_path / name) == 0o644, name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.json", "c.png"]


def test_atomic_folder_gets_the_umask_mode_and_a_failure_leaves_the_old_one(tmp_path, umask_022):
    target = tmp_path / "model"
    with atomic_folder(target) as staging:
        (staging / "w.bin").write_bytes(b"1")
    assert _mode(target) == 0o755 and (target / "w.bin").read_bytes() == b"1"
    with pytest.raises(RuntimeError):
        with atomic_folder(target) as staging:
            (staging / "w.bin").write_bytes(b"2")
            raise RuntimeError("interrupted")
    assert (target / "w.bin").read_bytes() == b"1"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_a_stricter_umask_is_respected(tmp_path):
    old = os.umask(0o077)
    try:
        atomic_write_text(tmp_path / "private.txt", "x")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "private.txt") == 0o600
