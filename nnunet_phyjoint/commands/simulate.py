"""`phyjoint simulate OUT`: a multi-scanner breast-ultrasound dataset in the PRECISE layout."""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path


def _run(args: argparse.Namespace) -> int:
    from nnunet_phyjoint.simulator import simulate_dataset

    started = time.perf_counter()
    try:
        out = simulate_dataset(
            Path(args.out), n=args.n, scanners=args.scanners, seed=args.seed, size=tuple(args.size),
            malignant_fraction=args.malignant_fraction, normal_fraction=args.normal_fraction, preview=args.preview,
            multi_image_fraction=args.multi_image_fraction, overwrite=args.overwrite,
        )
    except (FileExistsError, ValueError) as e:
        print(f"phyjoint simulate: error: {e}", file=sys.stderr)
        return 1
    seconds = time.perf_counter() - started
    record = json.loads((out / "simulation.json").read_text())
    cases = record["cases"]
    by_class = Counter(c["label"] for c in cases)
    by_scanner = Counter(c["scanner"] for c in cases)
    subjects = Counter(c["subject"] for c in cases)
    print(f"wrote {len(cases)} images of {len(subjects)} patients to {out} in {seconds:.1f} s")
    print("  classes:  " + ", ".join(f"{k} {by_class[k]}" for k in ("normal", "benign", "malignant")))
    print("  scanners: " + ", ".join(f"{k} {v}" for k, v in sorted(by_scanner.items())))
    print(f"  patients with two images: {sum(1 for v in subjects.values() if v > 1)}")
    if args.preview:
        print(f"  preview: {args.preview}")
    print(f"convert with: phyjoint convert precise {out} -d ID")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "simulate", help="simulate a multi-scanner breast-ultrasound dataset (PRECISE layout)",
        description="Physically motivated B-mode simulation: tissue layers, speckle through a scanner PSF, "
                    "attenuation and TGC, log compression; benign/malignant lesions with masks; several "
                    "scanner profiles. Output: OUT/{normal,benign,malignant}/PACE_<subject>_<code>_<scanner>.png.",
    )
    p.add_argument("out", help="output folder (must not exist or be empty, unless --overwrite)")
    p.add_argument("--n", type=int, default=400, help="number of images (default 400)")
    p.add_argument("--scanners", type=int, default=4, help="number of scanner profiles (default 4)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0); same seed, same dataset")
    p.add_argument("--size", type=int, nargs=2, default=(256, 256), metavar=("H", "W"), help="image size (default 256 256)")
    p.add_argument("--malignant-fraction", type=float, default=0.18, help="share of malignant images (default 0.18)")
    p.add_argument("--normal-fraction", type=float, default=0.2, help="share of normal images (default 0.2)")
    p.add_argument("--multi-image-fraction", type=float, default=0.25,
                   help="share of lesion images from patients with two images (default 0.25)")
    p.add_argument("--preview", metavar="FILE.png", help="also write a grid of examples by class and scanner")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty OUT")
    p.set_defaults(func=_run)
