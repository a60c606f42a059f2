"""`phyjoint preprocess -d ID`: nnU-Net's preprocessing of the PhyJoint plans, with their input scaling.

Use it instead of ``nnUNetv2_preprocess -d ID -plans_name PhyJointPlans -c 2d``: it is the same command
(nnU-Net's DefaultPreprocessor: crop, normalise, resample), and with plans made by
``phyjoint plan --scaling letterbox`` it also letterboxes every image to the input size, which nnU-Net's
own command cannot (it finds preprocessors only inside nnunetv2).
"""
from __future__ import annotations

import argparse
import sys


def _run(args: argparse.Namespace) -> int:
    from nnunet_phyjoint.preprocessing import preprocess

    try:
        preprocess(args.dataset_id, args.plans_name, args.configuration, num_processes=args.np,
                   verbose=args.verbose)
    except (FileNotFoundError, ValueError) as e:
        print(f"phyjoint preprocess: error: {e}", file=sys.stderr)
        return 1
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("preprocess", help="nnU-Net's preprocessing with the plans' input scaling (letterbox)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-d", "--dataset-id", required=True, help="dataset id (e.g. 501) or DatasetXXX_NAME")
    p.add_argument("-plans_name", "--plans-name", dest="plans_name", default="PhyJointPlans")
    p.add_argument("-c", "--configuration", default="2d")
    p.add_argument("-np", type=int, default=2, help="worker processes (default 2)")
    p.add_argument("--verbose", action="store_true")
    p.set_defaults(func=_run)
