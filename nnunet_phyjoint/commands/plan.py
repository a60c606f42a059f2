"""`phyjoint plan -d ID`: write PhyJoint plans (whole image at ~256x256, network named in the plans)."""
from __future__ import annotations

import argparse
import sys

from nnunet_phyjoint.encoders import CPU_ENCODER, DEFAULT_ENCODER
from nnunet_phyjoint.input_scaling import DEFAULT_SCALING, SCALINGS


def _run(args: argparse.Namespace) -> int:
    from nnunet_phyjoint.planning import describe_plans, plan_dataset
    from nnunet_phyjoint.weight_resolution import validate_request

    try:
        args.encoder_weights = validate_request(args.encoder_weights)
    except FileNotFoundError as e:
        print(f"phyjoint plan: error: --encoder-weights: {e}", file=sys.stderr)
        return 2
    plans_file = plan_dataset(
        args.dataset_id, encoder=args.encoder, size=args.size, batch_size=args.batch_size,
        plans_name=args.plans_name, encoder_weights=args.encoder_weights,
        decoder_channels=args.decoder_channels, n_folds=args.folds, split_seed=args.seed,
        num_processes=args.np, verify=args.verify_dataset_integrity, scaling=args.scaling)
    print(describe_plans(plans_file))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plan", help="write PhyJoint plans for a converted dataset (then run phyjoint preprocess)",
                       description=__doc__)
    p.add_argument("-d", "--dataset-id", required=True, help="dataset id (e.g. 501) or DatasetXXX_NAME")
    p.add_argument("--encoder", default=DEFAULT_ENCODER,
                   help=f"any timm model that supports features_only (default {DEFAULT_ENCODER}, the paper's "
                        f"EfficientNet-B6 with ImageNet weights; {CPU_ENCODER} for CPUs)")
    p.add_argument("--encoder-weights", default="auto",
                   help="'auto' (local cache, else timm's download, else an offline registry package, else random "
                        "with a warning), 'imagenet' (the same, but an error instead of random), 'none', or a "
                        "weights file; the plans record this request, the training log what was loaded "
                        "(see `phyjoint weights list`)")
    p.add_argument("--size", type=int, default=256, help="network input side in pixels (multiple of 32)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--scaling", choices=SCALINGS, default=DEFAULT_SCALING,
                   help="how each image becomes the square input: 'letterbox' resizes every image so that its own "
                        "long side spans --size (the paper's way); 'single-spacing' uses one spacing for all, "
                        "chosen so that the largest image spans --size (smaller images use less of the input). "
                        f"Default {DEFAULT_SCALING}. Letterbox plans need `phyjoint preprocess` and "
                        "`phyjoint predict` (nnU-Net's own commands would see single-spacing inputs)")
    p.add_argument("--decoder-channels", type=int, nargs="+", default=None,
                   help="UNet++ decoder widths per level (default: derived from the encoder)")
    p.add_argument("--plans-name", default="PhyJointPlans")
    p.add_argument("--folds", type=int, default=4, help="folds of the patient-wise split written when none exists")
    p.add_argument("--seed", type=int, default=0, help="seed of that split")
    p.add_argument("-np", type=int, default=2, help="processes for nnU-Net's fingerprint extraction")
    p.add_argument("--verify_dataset_integrity", action="store_true")
    p.set_defaults(func=_run)
