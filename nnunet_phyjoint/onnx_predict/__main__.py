"""``python -m nnunet_phyjoint.onnx_predict -i IN -o OUT -m EXPORT``: predict with an ONNX export, no torch."""
from __future__ import annotations

import argparse
import sys


def build_parser(prog: str = "python -m nnunet_phyjoint.onnx_predict") -> argparse.ArgumentParser:
    """The standalone predictor's arguments (nnU-Net's names where nnU-Net has the option)."""
    p = argparse.ArgumentParser(
        prog=prog, description="Predict lesion masks and normal/benign/malignant diagnoses with a folder written by "
                               "`phyjoint export --format onnx`; needs only onnxruntime, numpy and Pillow.")
    p.add_argument("-i", required=True, help="input folder: CASE_0000.png files (channel suffix as for nnU-Net)")
    p.add_argument("-o", required=True, help="output folder: CASE.png masks and classification.csv")
    p.add_argument("-m", required=True, help="export folder (holds phyjoint_onnx.json)")
    p.add_argument("-f", nargs="+", default=None, help="folds to ensemble (default: every fold of the export)")
    p.add_argument("--precision", choices=("fp32", "int8"), default=None,
                   help="graph to run (default: the export's default, int8 when it was exported with --bits 8)")
    p.add_argument("--threads", type=int, default=None, help="ONNX Runtime intra-op threads (default: all cores)")
    p.add_argument("-step_size", type=float, default=None, help="sliding-window step as a fraction of the patch "
                                                                "(default: the export's, 0.5 as nnU-Net)")
    p.add_argument("--disable_tta", action="store_true", help="no mirroring (faster, as nnU-Net's flag)")
    p.add_argument("--continue_prediction", action="store_true", help="skip cases whose mask already exists")
    p.add_argument("--strict", action="store_true", help="stop before any work if an input is unusable")
    p.add_argument("--no-gating", action="store_true", help="keep the raw masks of cases diagnosed normal")
    return p


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Parse ``argv``, predict; the exit status (0, 3 when inputs were skipped, 1 or 2 on errors)."""
    from nnunet_phyjoint.onnx_predict.folder import predict_folder

    parser = build_parser(prog) if prog else build_parser()
    args = parser.parse_args(argv)
    try:
        return predict_folder(args.m, args.i, args.o, folds=args.f, precision=args.precision, threads=args.threads,
                              use_mirroring=not args.disable_tta, tile_step_size=args.step_size, strict=args.strict,
                              gating=not args.no_gating, continue_prediction=args.continue_prediction,
                              command=parser.prog)
    except (FileNotFoundError, ValueError) as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
