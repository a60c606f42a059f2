#!/usr/bin/env bash
# CI: the wheel alone, as a user installs it. Builds the wheel, installs it (not editable) into a fresh
# virtual environment and, from there only, runs `phyjoint env`, one epoch of
# `nnUNetv2_train -tr PhyJointTrainer_1epoch` on tiny simulated data and `phyjoint predict` on a folder
# with two good images, an RGB one and a truncated one. Everything lives in one mktemp folder, removed
# at exit. About 7 min on 2 busy CPU cores: 3 of them installing torch and the other dependencies.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
WORK="$(cd "$(mktemp -d "${TMPDIR:-/tmp}/phyjoint_wheel_smoke.XXXXXX")" && pwd -P)"
trap 'rm -rf "$WORK"' EXIT
START=$(date +%s)
step() { echo "[wheel smoke] $(( $(date +%s) - START )) s: $*"; }
fail() { echo "[wheel smoke] FAILED: $*" >&2; exit 1; }
logged() {  # logged NAME CMD...: output to $WORK/NAME.log, shown (tail) only when CMD fails
    local log="$WORK/$1.log"; shift
    "$@" >"$log" 2>&1 || { tail -40 "$log" >&2; fail "$*"; }
}

step "building the wheel from a copy of the source tree"
# a copy: setuptools would leave build/ in the checkout, and a stale build/lib can leak old modules into wheels
mkdir "$WORK/src"
(cd "$REPO" && git ls-files -z --cached --others --exclude-standard) |
    (cd "$REPO" && while IFS= read -r -d '' f; do [ -f "$f" ] && printf '%s\0' "$f"; done) |
    (cd "$REPO" && xargs -0 cp --parents -t "$WORK/src")
"$PYTHON" -m venv "$WORK/venv"
V="$WORK/venv/bin"
# CPU machines here serve this torch/torchvision pair from local disk; first, so the wheel's deps find it installed
logged pip_torch "$V/pip" install torch==2.14.1 torchvision==0.29.1
logged pip_wheel "$V/pip" wheel --no-deps -w "$WORK/dist" "$WORK/src"
WHEEL="$(ls "$WORK"/dist/nnunet_phyjoint-*.whl)"
step "installing $(basename "$WHEEL") into a fresh environment"
logged pip_install "$V/pip" install "$WHEEL"
rm -rf "$WORK/src"

# from here on: only the fresh environment, run outside the checkout so that nothing is imported from it
cd "$WORK"
export PATH="$V:$PATH"
unset nnUNet_extTrainer PYTHONPATH
SITE="$("$V/python" -c 'import nnunet_phyjoint, pathlib; print(pathlib.Path(nnunet_phyjoint.__file__).resolve().parent)')"
case "$SITE" in "$WORK/venv/"*) ;; *) fail "nnunet_phyjoint imported from $SITE, not from the wheel";; esac

step "phyjoint env"
eval "$(phyjoint env "$WORK/nn")"
[ "$nnUNet_extTrainer" = "$SITE/trainers" ] || fail "nnUNet_extTrainer=$nnUNet_extTrainer, expected $SITE/trainers"
[ -f "$nnUNet_extTrainer/phyjoint_trainers.py" ] || fail "no trainer modules in $nnUNet_extTrainer"
export nnUNet_n_proc_DA=0 nnUNet_compile=f nnUNet_def_n_proc=1 OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
export PHYJOINT_STYLE_FIT_STEPS=5 PHYJOINT_ALLOW_RANDOM_VGG=1  # no ImageNet VGG-19 weights on CI machines

step "simulate, convert, plan, preprocess (16 images, 64x64)"
logged simulate phyjoint simulate "$WORK/sim" --n 16 --scanners 2 --size 64 64 --seed 3
logged convert phyjoint convert precise "$WORK/sim" -d 987 --name WheelSmoke
logged plan phyjoint plan -d 987 --encoder mobilenetv3_small_050 --size 64 --batch-size 4 --encoder-weights none --scaling letterbox -np 1
logged preprocess phyjoint preprocess -d 987 -plans_name PhyJointPlans -np 1

step "nnUNetv2_train 987 2d 0 -tr PhyJointTrainer_1epoch"
logged train nnUNetv2_train 987 2d 0 -tr PhyJointTrainer_1epoch -p PhyJointPlans -device cpu
MODEL="$nnUNet_results/Dataset987_WheelSmoke/PhyJointTrainer_1epoch__PhyJointPlans__2d"
[ -f "$MODEL/fold_0/checkpoint_final.pth" ] || fail "no checkpoint_final.pth in $MODEL/fold_0"

step "reinstalling the wheel; phyjoint predict with a stale nnUNet_extTrainer"
logged pip_reinstall "$V/pip" install --force-reinstall --no-deps "$WHEEL"
mkdir "$WORK/test_in"
"$V/python" - "$nnUNet_raw/Dataset987_WheelSmoke/imagesTr" "$WORK/test_in" <<'EOF'
import shutil, sys
from pathlib import Path
from PIL import Image
src, dst = Path(sys.argv[1]), Path(sys.argv[2])
files = sorted(src.glob("*_0000.png"))[:4]
for f, name in zip(files[:2], ("good1", "good2")):
    shutil.copy(f, dst / f"{name}_0000.png")
Image.open(files[2]).convert("RGB").save(dst / "colour_0000.png")  # BUSI ships RGB PNGs
data = files[3].read_bytes()
(dst / "broken_0000.png").write_bytes(data[: len(data) // 2])  # a truncated download
EOF
rc=0
nnUNet_extTrainer="$WORK/old_install/trainers" phyjoint predict -i "$WORK/test_in" -o "$WORK/pred" -d 987 -c 2d \
    -tr PhyJointTrainer_1epoch -p PhyJointPlans -f 0 -device cpu -npp 1 -nps 1 >"$WORK/predict.log" 2>&1 || rc=$?
[ "$rc" = 3 ] || { tail -40 "$WORK/predict.log"; fail "phyjoint predict exited with $rc, expected 3 (one skipped input)"; }
for c in good1 good2 colour; do [ -f "$WORK/pred/$c.png" ] || fail "no mask $c.png"; done
[ ! -e "$WORK/pred/broken.png" ] || fail "a mask for the truncated input"
rows="$(tail -n +2 "$WORK/pred/classification.csv" | cut -d, -f1 | sort | tr '\n' ' ')"
[ "$rows" = "colour good1 good2 " ] || fail "classification.csv rows: $rows"
grep -q "skipping broken_0000.png: unreadable or truncated image" "$WORK/predict.log" || fail "truncated file not named"
grep -q "3 cases predicted, 1 converted to grey, 1 skipped" "$WORK/predict.log" || fail "no summary"
tail -3 "$WORK/predict.log"
step "passed (removing $WORK)"
