#!/usr/bin/env bash
# The checks that need a GPU, as one script for a lent GPU machine (not part of CI, which has none):
#   1. the CUDA tests (tests/test_cuda.py, the CUDA test of tests/test_quantization.py): autocast fp16/bf16,
#      torch.compile, DDP's reducer, bitsandbytes' 8-bit AdamW;
#   2. a small nnUNetv2_train run of PhyJointTrainer on CUDA with nnU-Net's torch.compile on, then phyjoint predict;
#   3. the paper's configuration: simulated data at SIZE², the default encoder (EfficientNet-B6), the style decoder
#      fitted at the paper's relu4_1 (with its held-out quality), EPOCHS one-pass epochs of PhyJointTrainer on
#      fold 0, the ONNX FP32/INT8 export and its deployment rows (DSC/F1 of PyTorch FP32, ONNX FP32 and INT8 on
#      fold 0's validation images), and `phyjoint bench-speed --device cuda` (PhyJoint vs nnU-Net step times, memory).
# Usage on the GPU machine (repo root; .gpuwheels/ from .ci/gpu_wheels.sh carried along):
#   SETUP=1 bash .ci/gpu_checks.sh run        # everything; part 3 runs in its own session and survives the call
#   bash .ci/gpu_checks.sh collect             # waits for part 3 (until DEADLINE), then collects its results
# Results go to $OUT (the device tool's folder; /tmp/gpu_out otherwise): gpu_log.txt, cuda_tests.txt, results.tgz
# and the JSON files of part 3. Locally, a tiny dry run: DEVICE=cpu N=40 SIZE=64 ENCODER=efficientnet_lite0 ...
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
MODE=${1:-run}
OUT=${OUT:-/tmp/gpu_out}
W=${W:-/tmp/pj}
DEVICE=${DEVICE:-cuda}
N=${N:-400}
SIZE=${SIZE:-256}
ENCODER=${ENCODER:-tf_efficientnet_b6}
EPOCHS=${EPOCHS:-30}
BATCH=${BATCH:-16}
FIT_STEPS=${FIT_STEPS:-}             # empty: the device's default (accelerator: 1000 steps at relu4_1)
MEASURE=${MEASURE:-32}
THREADS=${THREADS:-16}               # ONNX/PyTorch CPU threads of the deployment rows' accuracy pass
SMALL_EPOCHS=${SMALL_EPOCHS:-2}
DEADLINE=${DEADLINE:-420}            # seconds from the start of this call to wait for part 3
START=$(date +%s)
mkdir -p "$OUT" "$W/logs"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 PHYJOINT_PROBE_TIMEOUT=2 MPLBACKEND=Agg

log() { echo "[$(date +%T) +$(( $(date +%s) - START ))s] $*" | tee -a "$OUT/gpu_log.txt"; }

setup() {
    if [ "${SETUP:-0}" = 1 ]; then
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
            .gpuwheels/whl/*.whl || return 1
        python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-cache-dir --upgrade --target /tmp/site . \
            || return 1
    fi
    if [ -d /tmp/site ]; then
        export PYTHONPATH="/tmp/site:$REPO/.gpuwheels/stub" PATH="/tmp/site/bin:$PATH"
    fi
    PY=$(command -v python3)
    [ -x "$REPO/.venv/bin/python" ] && [ ! -d /tmp/site ] && PY="$REPO/.venv/bin/python" && export PATH="$REPO/.venv/bin:$PATH"
    export PY
}

# step NAME CMD...: runs CMD with its output in $W/logs/NAME.log, logs rc and seconds, shows the tail on failure
step() {
    local name=$1; shift
    local t0=$(date +%s)
    log "START $name: $*"
    "$@" > "$W/logs/$name.log" 2>&1
    local rc=$?
    log "END $name rc=$rc $(( $(date +%s) - t0 ))s"
    [ $rc = 0 ] || tail -n 25 "$W/logs/$name.log" | tee -a "$OUT/gpu_log.txt"
    return $rc
}

environment() {
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | tee -a "$OUT/gpu_log.txt"
    "$PY" - <<'PY' 2>&1 | tee -a "$OUT/gpu_log.txt"
import importlib, platform
import torch
print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.version.cuda,
      "device", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none")
for m in ("timm", "nnunetv2", "bitsandbytes", "onnxruntime", "onnx", "numpy", "nnunet_phyjoint"):
    try:
        mod = importlib.import_module(m)
        print(m, getattr(mod, "__version__", "?"), mod.__file__)
    except Exception as e:
        print(m, "IMPORT FAILED:", e)
PY
}

paper_configuration() {  # part 3, in its own session
    set -uo pipefail
    eval "$(phyjoint env "$W/p")"
    export nnUNet_n_proc_DA=${DA:-8} nnUNet_compile=${COMPILE_PAPER:-f}
    local tr="PhyJointTrainer_${EPOCHS}ep" model
    step p_simulate phyjoint simulate "$W/sim" --n "$N" --scanners 4 --size "$SIZE" "$SIZE" || return 1
    step p_convert phyjoint convert precise "$W/sim" -d 631 --name SimGPU || return 1
    step p_plan phyjoint plan -d 631 --size "$SIZE" --encoder "$ENCODER" --batch-size "$BATCH" -np 8 || return 1
    step p_preprocess nnUNetv2_preprocess -d 631 -plans_name PhyJointPlans -c 2d -np 8 || return 1
    step p_model_info phyjoint model-info --encoder "$ENCODER" --size "$SIZE"
    step p_fit_style phyjoint fit-style -d 631 --fold 0 --device "$DEVICE" --measure "$MEASURE" \
        ${FIT_STEPS:+--steps $FIT_STEPS} || return 1
    find "$nnUNet_preprocessed" -name quality.json -exec cp {} "$OUT/style_quality.json" \;
    step p_train nnUNetv2_train 631 2d 0 -tr "$tr" -p PhyJointPlans -device "$DEVICE" || return 1
    model=$(ls -d "$nnUNet_results"/Dataset631_*/"${tr}__PhyJointPlans__2d")
    step p_export phyjoint export "$model" --format onnx --bits 8 -f 0 -o "$W/onnx8" || return 1
    step p_deploy phyjoint bench-speed -d 631 --onnx "$W/onnx8" --onnx-only --fold 0 --threads "$THREADS" \
        -o "$OUT/deployment_b6.json"
    step p_speed phyjoint bench-speed -d 631 --device "$DEVICE" --trainer "$tr" -o "$OUT/speed_cuda.json"
    log "paper configuration done"
}

small_compiled_run() {  # part 2: nnU-Net's CUDA default path (compile on) end to end on a tiny dataset
    eval "$(phyjoint env "$W/s")"
    export nnUNet_n_proc_DA=2 nnUNet_compile=t
    local tr="PhyJointTrainer_${SMALL_EPOCHS}ep"
    step s_simulate phyjoint simulate "$W/s_sim" --n 48 --scanners 4 --size 64 64 || return 1
    step s_convert phyjoint convert precise "$W/s_sim" -d 632 --name SimSmall || return 1
    step s_plan phyjoint plan -d 632 --size 64 --encoder efficientnet_lite0 --encoder-weights none --batch-size 8 || return 1
    step s_preprocess nnUNetv2_preprocess -d 632 -plans_name PhyJointPlans -c 2d -np 4 || return 1
    PHYJOINT_STYLE_FIT_STEPS=20 step s_train nnUNetv2_train 632 2d 0 -tr "$tr" -p PhyJointPlans -device "$DEVICE" || return 1
    grep -i "compil" "$W/logs/s_train.log" | head -3 | tee -a "$OUT/gpu_log.txt"
    step s_predict phyjoint predict -i "$nnUNet_raw/Dataset632_SimSmall/imagesTr" -o "$W/s_pred" -d 632 -c 2d -tr "$tr" \
        -p PhyJointPlans -f 0 -device "$DEVICE" -npp 1 -nps 1 || return 1
    log "small run: $(ls "$W/s_pred" | grep -c png) masks, $(($(wc -l < "$W/s_pred/classification.csv") - 1)) diagnoses"
}

collect() {
    log "collecting"
    local files=("$W/logs") model
    for model in "$W"/p/nnUNet_results/Dataset631_*/PhyJointTrainer_*; do
        [ -d "$model" ] || continue
        files+=("$model/plans.json")
        files+=($(ls "$model"/fold_0/*.txt "$model"/fold_0/*.json "$model"/fold_0/progress*.png \
                  "$model"/fold_0/validation/summary*.json "$model"/fold_0/validation/*.csv 2>/dev/null))
    done
    files+=($(ls "$W"/onnx8/*.json 2>/dev/null) $(find "$W/p/nnUNet_preprocessed" -name "*.json" -path "*style*" 2>/dev/null))
    tar czf "$OUT/results.tgz" "${files[@]}" 2>/dev/null
    ls -la "$OUT" | tee -a "$OUT/gpu_log.txt"
}

wait_paper() {
    while [ ! -f "$W/paper.done" ] && [ $(( $(date +%s) - START )) -lt "$DEADLINE" ]; do sleep 5; done
    [ -f "$W/paper.done" ] && log "part 3 finished" || log "part 3 still running after ${DEADLINE}s"
}

setup || { log "setup failed"; exit 1; }
case "$MODE" in
run)
    environment
    export -f log step paper_configuration
    export START OUT W DEVICE N SIZE ENCODER EPOCHS BATCH FIT_STEPS MEASURE THREADS
    setsid bash -c 'paper_configuration; touch "$W/paper.done"' > "$W/logs/paper.log" 2>&1 < /dev/null &
    step cuda_tests "$PY" -m pytest -q -p no:cacheprovider -m cuda tests/test_cuda.py tests/test_quantization.py
    cp "$W/logs/cuda_tests.log" "$OUT/cuda_tests.txt"
    tail -n 3 "$OUT/cuda_tests.txt" | tee -a "$OUT/gpu_log.txt"
    small_compiled_run
    wait_paper
    collect
    ;;
collect)
    wait_paper
    collect
    ;;
*)
    echo "usage: $0 run|collect" >&2; exit 2 ;;
esac
