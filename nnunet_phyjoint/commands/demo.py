"""`phyjoint demo`: the main job end to end on simulated multi-scanner ultrasound (CPU-sized)."""
from __future__ import annotations

import argparse
from pathlib import Path

from nnunet_phyjoint.encoders import CPU_ENCODER


def _run(args: argparse.Namespace) -> int:
    from nnunet_phyjoint.demo import DemoConfig, run_demo

    run_demo(DemoConfig(workdir=Path(args.workdir), n_train=args.n, n_test=args.n_test, scanners=args.scanners,
                        size=args.size, encoder=args.encoder,
                        encoder_weights=args.encoder_weights, batch_size=args.batch_size, trainer=args.trainer,
                        fold=args.fold, seed=args.seed, device=args.device))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="simulate -> convert -> plan -> preprocess -> train -> predict -> evaluate",
                       description=__doc__)
    p.add_argument("--workdir", default="phyjoint_work")
    p.add_argument("--n", type=int, default=400, help="simulated training images")
    p.add_argument("--n-test", type=int, default=100, help="simulated test images (independent seed)")
    p.add_argument("--scanners", type=int, default=4)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--encoder", default=CPU_ENCODER,
                   help=f"timm encoder (default {CPU_ENCODER}: ImageNet weights, also offline from a registry package)")
    p.add_argument("--encoder-weights", default="auto", help="'auto', 'imagenet', 'none' or a weights file")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--trainer", default="PhyJointTrainer_demo")
    p.add_argument("--fold", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=_run)
