"""`phyjoint export MODEL_FOLDER --bits {8,4} -o OUT`: pack the encoder of a trained model folder at INT8/INT4."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _run(args: argparse.Namespace) -> int:
    from nnunet_phyjoint.quantization.export import export_model_folder

    try:
        export_model_folder(Path(args.model_folder), args.bits, Path(args.output), folds=args.folds,
                            checkpoint_name=args.checkpoint, overwrite=args.overwrite)
    except (FileNotFoundError, FileExistsError, ValueError) as error:
        print(f"phyjoint export: error: {error}", file=sys.stderr)
        return 2
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export", help="pack a trained model's encoder weights at INT8/INT4 into a safetensors model folder",
        description="Writes OUT/{dataset.json, plans.json, fold_X/{encoder_intB.safetensors, rest.safetensors, "
                    "export.json}} and prints the FP32 size, the packed size and their ratio. A checkpoint trained "
                    "with fake quantization (PhyJointTrainer_INT8/INT4) must be exported at its own bits.")
    p.add_argument("model_folder", help="nnU-Net trained model folder (dataset.json, plans.json, fold_X/)")
    p.add_argument("--bits", type=int, choices=(8, 4), required=True, help="bits per encoder weight")
    p.add_argument("-o", "--output", required=True, help="output folder (must not exist unless --overwrite)")
    p.add_argument("-f", "--folds", nargs="+", default=None,
                   help="folds to export (integers or 'all'); default: every fold_X holding the checkpoint")
    p.add_argument("--checkpoint", default="checkpoint_final.pth",
                   help="checkpoint file name inside fold_X (default: checkpoint_final.pth)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    p.set_defaults(func=_run)
