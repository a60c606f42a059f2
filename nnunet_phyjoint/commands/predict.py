"""`phyjoint predict`: nnUNetv2_predict with the same arguments, plus per-case diagnosis.

Writes the masks exactly as ``nnUNetv2_predict`` does and ``classification.csv`` beside them
(case_id, predicted_class, prob_normal, prob_benign, prob_malignant), averaged over mirrors,
tiles and folds. With ``-m MODEL_FOLDER`` instead of ``-d/-tr/-p/-c`` it takes the arguments of
``nnUNetv2_predict_from_modelfolder``; MODEL_FOLDER may be a folder written by ``phyjoint export``.
"""
from __future__ import annotations

import argparse
import sys


def run_nnunet_predict(argv: list[str]) -> None:
    """Run nnU-Net's own predict entry point with our predictor in place of nnUNetPredictor."""
    import nnunetv2.inference.predict_from_raw_data as pfr

    from nnunet_phyjoint.inference.predictor import PhyJointPredictor

    original_cls, original_argv = pfr.nnUNetPredictor, sys.argv
    pfr.nnUNetPredictor = PhyJointPredictor
    sys.argv = ["phyjoint predict", *argv]
    entry = pfr.predict_entry_point_modelfolder if "-m" in argv else pfr.predict_entry_point
    try:
        entry()
    finally:
        pfr.nnUNetPredictor, sys.argv = original_cls, original_argv


def _run(args: argparse.Namespace) -> int:
    run_nnunet_predict(args.nnunet_args)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict", add_help=False, prefix_chars="\0",
        help="nnUNetv2_predict with the same arguments; also writes classification.csv",
        description=__doc__)
    # every argument goes to nnU-Net's own parser (so `phyjoint predict -h` shows nnU-Net's help)
    p.add_argument("nnunet_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=_run)
