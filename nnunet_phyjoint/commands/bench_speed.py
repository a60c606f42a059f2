"""`phyjoint bench-speed -d ID`: PhyJoint vs stock nnU-Net speed and memory on the same preprocessed cases.

Inference: nnU-Net's predictor at batch 1, with and without mirroring. Training: the trainers' own
train_step (real loss and optimizer) at their planned batch size, data loading excluded. Peak
memory: CUDA max_memory_allocated, or the CPU peak resident set. Trained weights are used when
fold F's checkpoint_final.pth exists, random weights otherwise (reported).

``--onnx EXPORT`` adds the deployment rows (PyTorch FP32, ONNX Runtime FP32 and INT8 of fold F's
network: batch-1 latency and images/s at ``--threads``, file size, lesion-only DSC and macro F1 on
fold F's validation images); ``--onnx-only`` measures those rows alone
(:mod:`nnunet_phyjoint.benchmark.onnx_speed`).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _run_onnx(args: argparse.Namespace, name: str) -> dict | None:
    """The deployment rows (printed); None after printing the error when they cannot be measured."""
    from nnunet_phyjoint.benchmark.onnx_speed import format_deployment_table, measure_deployment

    print(f"[bench-speed] ONNX export {args.onnx}: fold {args.fold}, {args.threads} threads", flush=True)
    try:
        result = measure_deployment(Path(args.onnx), name, fold=args.fold, threads=args.threads,
                                    repeats=args.onnx_repeats, batch=args.onnx_batch,
                                    accuracy_cases=args.onnx_cases)
    except (FileNotFoundError, ValueError) as e:
        print(f"phyjoint bench-speed: error: {e}", file=sys.stderr)
        return None
    print(format_deployment_table(result))
    return result


def _run(args: argparse.Namespace) -> int:
    import torch

    if args.onnx_only:
        from nnunet_phyjoint.evaluation.io import write_json
        from nnunet_phyjoint.paths import find_dataset_name

        if not args.onnx:
            print("phyjoint bench-speed: error: --onnx-only needs --onnx EXPORT_FOLDER", file=sys.stderr)
            return 2
        try:
            name = find_dataset_name(args.dataset_id)
        except (FileNotFoundError, RuntimeError, KeyError) as e:
            print(f"phyjoint bench-speed: error: {e}", file=sys.stderr)
            return 1
        result = _run_onnx(args, name)
        if result is None:
            return 1
        if args.out:
            write_json(Path(args.out), {"dataset": name, "onnx": result})
            print(f"written: {args.out}")
        return 0

    from nnunet_phyjoint.benchmark import runner
    from nnunet_phyjoint.benchmark.speed import (
        ModelSpec, format_speed_table, load_cases, measure_inference, measure_training, validation_case_ids,
    )
    from nnunet_phyjoint.evaluation.io import write_json
    from nnunet_phyjoint.paths import find_dataset_name, preprocessed_dir

    try:
        name = find_dataset_name(args.dataset_id)
        # beside the plans those commands write, not in whatever folder the user happens to be in
        log_dir = Path(args.log_dir) if args.log_dir else preprocessed_dir() / name / "bench_speed_logs"
        runner.ensure_preprocessed(name, args.plans, log_dir)
        runner.ensure_stock_plans(name, log_dir)
        runner.ensure_preprocessed(name, args.stock_plans, log_dir)
    except (FileNotFoundError, RuntimeError, KeyError) as e:
        print(f"phyjoint bench-speed: error: {e}", file=sys.stderr)
        return 1
    device = torch.device(args.device)
    cases = validation_case_ids(name, args.fold, args.n)
    specs = {"PhyJoint": ModelSpec(name, args.plans, args.trainer), "nnU-Net": ModelSpec(name, args.stock_plans,
                                                                                         args.stock_trainer)}
    results = {}
    for label, spec in specs.items():
        ckpt = runner.model_folder(name, spec.trainer_name, spec.plans_name) / f"fold_{args.fold}" / "checkpoint_final.pth"
        spec.checkpoint = ckpt if ckpt.is_file() else None
        print(f"[bench-speed] {label}: {spec.trainer_name} on {spec.plans_name}, "
              f"{'trained weights ' + str(ckpt) if spec.checkpoint else 'RANDOM weights (no trained fold found)'}",
              flush=True)
        images = load_cases(spec.data_folder(), cases)
        results[label] = {
            "trainer": spec.trainer_name, "plans": spec.plans_name, "input_shape": list(images[0].shape),
            "trained_weights": spec.checkpoint is not None,
            "inference_mirror": measure_inference(spec, images, device, mirroring=True),
            "inference_plain": measure_inference(spec, images, device, mirroring=False),
            "training": measure_training(spec, device, steps=args.steps, fold=args.fold),
        }
    print(f"\n{len(cases)} cases of fold {args.fold}'s validation set, device {device}, "
          f"{torch.get_num_threads()} torch threads")
    for label, r in results.items():
        print(f"  {label}: input {r['input_shape']} ({'trained' if r['trained_weights'] else 'random'} weights), "
              f"optimizer {r['training']['optimizer']}")
    if device.type == "cpu" and not all(r["training"]["peak_reset"] for r in results.values()):
        print("  note: the CPU peak could not be reset between measurements; memory is the process peak so far")
    print(format_speed_table(results, ("PhyJoint", "nnU-Net")))
    onnx = _run_onnx(args, name) if args.onnx else None
    if args.onnx and onnx is None:
        return 1
    if args.out:
        write_json(Path(args.out), {"dataset": name, "cases": cases, "device": str(device), "results": results,
                                    **({"onnx": onnx} if onnx else {})})
        print(f"written: {args.out}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench-speed", help="inference latency, training throughput and memory: PhyJoint vs nnU-Net",
                       description=__doc__)
    p.add_argument("-d", "--dataset-id", required=True, help="dataset id or DatasetXXX_NAME")
    p.add_argument("-p", "--plans", default="PhyJointPlans", help="PhyJoint plans (default PhyJointPlans)")
    p.add_argument("--trainer", default="PhyJointTrainer", help="PhyJoint trainer (default PhyJointTrainer)")
    p.add_argument("--stock-plans", default="nnUNetPlans", help="stock plans (default nnUNetPlans; made if missing)")
    p.add_argument("--stock-trainer", default="nnUNetTrainer", help="stock trainer (default nnUNetTrainer)")
    p.add_argument("-n", type=int, default=8, help="number of preprocessed cases (default 8)")
    p.add_argument("--steps", type=int, default=3, help="timed training steps per model (default 3)")
    p.add_argument("--fold", type=int, default=0, help="fold whose validation cases (and checkpoint) are used")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda", "mps"))
    p.add_argument("-o", "--out", default=None, help="also write the measurements as JSON to this file")
    onnx = p.add_argument_group("deployment rows (ONNX Runtime)")
    onnx.add_argument("--onnx", default=None, metavar="EXPORT",
                      help="folder of `phyjoint export --format onnx [--bits 8]`: adds PyTorch FP32 / ONNX FP32 / "
                           "ONNX INT8 rows for fold --fold")
    onnx.add_argument("--onnx-only", action="store_true", help="measure the deployment rows only")
    onnx.add_argument("--threads", type=int, default=2, help="intra-op threads of every deployment row (default 2)")
    onnx.add_argument("--onnx-repeats", type=int, default=20, help="timed batch-1 passes per row (default 20)")
    onnx.add_argument("--onnx-batch", type=int, default=8, help="batch size of the images/s column (default 8)")
    onnx.add_argument("--onnx-cases", type=int, default=None,
                      help="validation cases for DSC/F1 (default: all of the fold; 0: timing only)")
    p.add_argument("--log-dir", default=None,
                   help="logs of any planning/preprocessing it runs (default $nnUNet_preprocessed/DATASET/bench_speed_logs)")
    p.set_defaults(func=_run)
