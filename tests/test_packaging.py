"""Packaging: the wheel's package list is complete, and trainers/ is installed as nnunet_phyjoint.trainers.

The wheel itself is built, installed into a fresh environment and used for training and prediction
by .ci/wheel_smoke.sh (CI runs it after `make test`).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _setuptools_config() -> dict:
    tomllib = pytest.importorskip("tomllib")
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_package_is_listed_and_trainers_is_mapped():
    cfg = _setuptools_config()
    on_disk = {".".join(p.parent.relative_to(REPO).parts)
               for top in ("nnunet_phyjoint", "dataset_conversion") for p in (REPO / top).rglob("__init__.py")
               if "__pycache__" not in p.parts}
    assert set(cfg["packages"]) == on_disk | {"nnunet_phyjoint.trainers"}, \
        "a package folder is missing from [tool.setuptools] packages in pyproject.toml (the wheel would lack it)"
    assert cfg["package-dir"] == {"nnunet_phyjoint.trainers": "trainers"}
    assert (REPO / "trainers" / "__init__.py").is_file()


def test_trainers_dir_is_the_installed_package_and_comes_first(monkeypatch):
    from nnunet_phyjoint.paths import ensure_trainers_on_ext_path, ext_trainer_value, trainers_dir

    folder = trainers_dir()
    assert (folder / "phyjoint_trainers.py").is_file() and (folder / "stock_trainers.py").is_file()
    other = "/somewhere/else"
    value = ext_trainer_value(os.pathsep.join([other, str(folder)]))
    assert value.split(os.pathsep) == [str(folder), other]  # ours first, no duplicate, the rest kept
    monkeypatch.delenv("nnUNet_extTrainer", raising=False)
    ensure_trainers_on_ext_path()
    assert os.environ["nnUNet_extTrainer"] == str(folder)


def test_env_lines_point_nnunet_at_the_trainers(tmp_path, monkeypatch):
    from nnunet_phyjoint.commands.env import env_lines
    from nnunet_phyjoint.paths import trainers_dir

    monkeypatch.delenv("nnUNet_extTrainer", raising=False)
    lines = env_lines(tmp_path)
    assert lines[-1] == f"export nnUNet_extTrainer={trainers_dir()}"
    assert lines[0] == f"export nnUNet_raw={tmp_path.resolve() / 'nnUNet_raw'}"


def test_nnunet_finds_our_trainer_through_the_folder(monkeypatch):
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    from nnunet_phyjoint.paths import trainers_dir
    from nnunet_phyjoint.training.phyjoint_trainer import PhyJointTrainer

    monkeypatch.setenv("nnUNet_extTrainer", str(trainers_dir()))
    cls = recursive_find_trainer_class_by_name("PhyJointTrainer_1epoch")
    assert issubclass(cls, PhyJointTrainer)
