"""`phyjoint ensemble -i FOLDERS -o OUT`: nnUNetv2_ensemble plus averaged class probabilities."""
from __future__ import annotations

import argparse


def _run(args: argparse.Namespace) -> int:
    from nnunetv2.ensembling.ensemble import ensemble_folders

    from nnunet_phyjoint.inference.ensemble import ensemble_classifications

    ensemble_folders(args.i, args.o, args.save_npz, args.np)
    out = ensemble_classifications(args.i, args.o)
    print(f"averaged class probabilities of {len(args.i)} folders -> {out}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ensemble", help="nnUNetv2_ensemble with the same arguments; also averages classification.csv",
                       description=__doc__)
    p.add_argument("-i", nargs="+", required=True, help="prediction folders (made with --save_probabilities)")
    p.add_argument("-o", required=True, help="output folder")
    p.add_argument("-np", type=int, default=2, help="processes for nnU-Net's ensembling")
    p.add_argument("--save_npz", action="store_true", help="also store the merged probabilities as .npz")
    p.set_defaults(func=_run)
