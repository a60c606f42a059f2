"""The standalone predictor runs where torch, nnU-Net, timm, scipy, scikit-image (and the rest of the
training stack) cannot be imported: onnxruntime, numpy and Pillow are all it needs."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from onnx_tiny_model import tiny_model

pytest.importorskip("onnxruntime", reason="needs the onnx extra (pip install -e '.[onnx]')")

BLOCKED = ("torch", "torchvision", "nnunetv2", "timm", "scipy", "skimage", "sklearn", "SimpleITK", "onnx",
           "batchgenerators", "batchgeneratorsv2", "acvl_utils", "dynamic_network_architectures", "bitsandbytes",
           "safetensors", "pandas", "matplotlib", "imagehash", "openpyxl")

# run as `python blocked.py ARGS`: any import of a blocked package fails, as on a machine without it
BLOCKING_RUNNER = textwrap.dedent(f"""
    import importlib.abc, runpy, sys

    BLOCKED = {BLOCKED!r}

    class Blocker(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {{name!r}} (blocked: not on this machine)")
            return None

    sys.meta_path.insert(0, Blocker())
    sys.argv = ["python -m nnunet_phyjoint.onnx_predict", *sys.argv[1:]]
    try:
        runpy.run_module("nnunet_phyjoint.onnx_predict", run_name="__main__", alter_sys=True)
    finally:
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
        print("blocked modules loaded:", loaded)
""")


def test_predicts_without_torch_or_nnunet(tmp_path_factory, tmp_path):
    from nnunet_phyjoint.onnx_predict.__main__ import main

    tiny = tiny_model(tmp_path_factory)
    runner = tmp_path / "blocked.py"
    runner.write_text(BLOCKING_RUNNER)
    args = ["-i", str(tiny["test_images"]), "-m", str(tiny["export"]), "--threads", "1"]
    proc = subprocess.run([sys.executable, str(runner), *args, "-o", str(tmp_path / "standalone")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "blocked modules loaded: []" in proc.stdout

    # the same files as the predictor run inside this (full) environment
    assert main([*args, "-o", str(tmp_path / "in_process")]) == 0
    masks = sorted(p.name for p in (tmp_path / "in_process").glob("*.png"))
    assert masks == sorted(p.name for p in (tmp_path / "standalone").glob("*.png")) and len(masks) == 4
    for name in masks:
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "standalone" / name)),
                                      np.asarray(Image.open(tmp_path / "in_process" / name)))
    assert (tmp_path / "standalone" / "classification.csv").read_text() == \
        (tmp_path / "in_process" / "classification.csv").read_text()


def test_package_init_imports_nothing_heavy():
    code = ("import sys, nnunet_phyjoint, nnunet_phyjoint.onnx_predict, nnunet_phyjoint.onnx_predict.folder; "
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {BLOCKED!r}))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
