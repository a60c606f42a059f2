"""`phyjoint model-info`: parameters and multiply-accumulates of PhyJointNet, from an encoder name or a plans file."""
from __future__ import annotations

import argparse
import json


def _run(args: argparse.Namespace) -> int:
    import warnings

    # importing timm trips a torch deprecation warning that says nothing about the model
    warnings.filterwarnings("ignore", message=".*torch.jit.interface.*", category=FutureWarning)
    from nnunet_phyjoint.network.model_info import format_model_info, model_info_for_encoder, model_info_from_plans

    if args.dataset is not None:
        from nnunet_phyjoint.paths import find_dataset_name, preprocessed_dir

        name = find_dataset_name(args.dataset)
        plans_file = preprocessed_dir() / name / f"{args.plans}.json"
        info = model_info_from_plans(plans_file, args.configuration)
    else:
        info = model_info_for_encoder(args.encoder, args.size, input_channels=args.input_channels,
                                      num_classes=args.num_classes)
    print(json.dumps(info, indent=2) if args.json else format_model_info(info))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "model-info",
        help="print PhyJointNet's parameters and multiply-accumulates (from an encoder name or a dataset's plans)",
        description="Either --encoder NAME [--size N] (no dataset needed) or -d ID [-p PLANS] [-c CONFIG] "
                    "(the network and patch size of $nnUNet_preprocessed/DatasetXXX/PLANS.json). "
                    "Encoder weights are never loaded.",
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--encoder", help="timm encoder name, e.g. tf_efficientnet_b6 (the default network's)")
    source.add_argument("-d", "--dataset", help="dataset id or DatasetXXX_NAME")
    p.add_argument("--size", type=int, default=256, help="square input size for --encoder (default 256)")
    p.add_argument("--input-channels", type=int, default=3, help="image channels for --encoder (default 3)")
    p.add_argument("--num-classes", type=int, default=2,
                   help="segmentation outputs for --encoder, background included (default 2)")
    p.add_argument("-p", "--plans", default="PhyJointPlans", help="plans name for -d (default PhyJointPlans)")
    p.add_argument("-c", "--configuration", default="2d", help="plans configuration for -d (default 2d)")
    p.add_argument("--json", action="store_true", help="print the numbers as JSON")
    p.set_defaults(func=_run)
