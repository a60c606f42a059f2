"""`phyjoint export MODEL_FOLDER --bits {8,4} -o OUT`: pack the encoder of a trained model folder at INT8/INT4.

`--format onnx [--bits 8]` writes ONNX graphs for ONNX Runtime instead (FP32, plus real INT8), for the
standalone predictor ``python -m nnunet_phyjoint.onnx_predict`` / ``phyjoint predict -m OUT``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _run(args: argparse.Namespace) -> int:
    try:
        if args.format == "onnx":
            from nnunet_phyjoint.onnx_export.folder import export_onnx_folder

            export_onnx_folder(Path(args.model_folder), Path(args.output), bits=args.bits, folds=args.folds,
                               checkpoint_name=args.checkpoint, overwrite=args.overwrite,
                               calibration_data=Path(args.calibration_data) if args.calibration_data else None,
                               calibration_images=args.calibration_images,
                               calibration_method=args.calibration_method,
                               keep_float=_keep_float(args.int8_keep_float))
            return 0
        if args.bits is None:
            print("phyjoint export: error: --bits is required for the packed format", file=sys.stderr)
            return 2
        from nnunet_phyjoint.quantization.export import export_model_folder

        export_model_folder(Path(args.model_folder), args.bits, Path(args.output), folds=args.folds,
                            checkpoint_name=args.checkpoint, overwrite=args.overwrite)
    except (FileNotFoundError, FileExistsError, ValueError) as error:
        print(f"phyjoint export: error: {error}", file=sys.stderr)
        return 2
    return 0


def _keep_float(entries: list[str] | None) -> tuple[str, ...]:
    """``--int8-keep-float`` as quantize_int8's ``keep_float``: default rule, ``none``, or rules/patterns."""
    from nnunet_phyjoint.onnx_export.int8 import DEFAULT_KEEP_FLOAT

    if entries is None:
        return DEFAULT_KEEP_FLOAT
    if entries == ["none"]:
        return ()
    return tuple(entries)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export", help="pack a trained model's encoder at INT8/INT4 (safetensors), or write ONNX graphs (FP32/INT8)",
        description="Packed (default): writes OUT/{dataset.json, plans.json, fold_X/{encoder_intB.safetensors, "
                    "rest.safetensors, export.json}} and prints the FP32 size, the packed size and their ratio. A "
                    "checkpoint trained with fake quantization (PhyJointTrainer_INT8/INT4) must be exported at its own "
                    "bits. --format onnx: writes OUT/{phyjoint_onnx.json, fold_X/model_fp32.onnx} (opset 17, dynamic "
                    "batch), with --bits 8 also fold_X/model_int8.onnx (ONNX Runtime static INT8, calibrated on the "
                    "fold's preprocessed training images), and prints ONNX Runtime's difference from PyTorch. INT4 "
                    "has no integer kernels in ONNX Runtime: it stays the packed storage format.")
    p.add_argument("model_folder", help="nnU-Net trained model folder (dataset.json, plans.json, fold_X/)")
    p.add_argument("--format", choices=("packed", "onnx"), default="packed",
                   help="packed safetensors (default) or ONNX graphs for ONNX Runtime")
    p.add_argument("--bits", type=int, choices=(8, 4), default=None,
                   help="bits per encoder weight (packed: required; onnx: 8 adds the INT8 graph)")
    p.add_argument("-o", "--output", required=True, help="output folder (must not exist unless --overwrite)")
    p.add_argument("-f", "--folds", nargs="+", default=None,
                   help="folds to export (integers or 'all'); default: every fold_X holding the checkpoint")
    p.add_argument("--checkpoint", default="checkpoint_final.pth",
                   help="checkpoint file name inside fold_X (default: checkpoint_final.pth)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    onnx = p.add_argument_group("ONNX INT8 calibration (--format onnx --bits 8)")
    onnx.add_argument("--calibration-data", default=None,
                      help="folder holding the preprocessed data folder and splits_final.json "
                           "(default: $nnUNet_preprocessed/<dataset of the plans>)")
    onnx.add_argument("--calibration-images", type=int, default=32,
                      help="preprocessed training images of the fold to calibrate on (default 32)")
    onnx.add_argument("--calibration-method", choices=("minmax", "entropy", "percentile"), default="minmax",
                      help="how activation ranges are chosen (default minmax)")
    onnx.add_argument("--int8-keep-float", nargs="+", default=None, metavar="RULE_OR_PATTERN",
                      help="parts of the graph that stay float besides the heads (mask head conv + resize, diagnosis "
                           "head's last layer, always float): rule 'encoder-early' (default: the encoder's stem "
                           "convolution and first two block stages, timm's conv_stem, blocks.0, blocks.1) and/or "
                           "substrings of ONNX node names, e.g. /network/decoder/x0_; 'none': everything else INT8")
    p.set_defaults(func=_run)
