"""`phyjoint convert SOURCE_KIND SOURCE -d ID`: a public breast-ultrasound dataset -> nnU-Net raw format.

`phyjoint convert images SOURCE -o OUT` prepares unlabeled images for `nnUNetv2_predict`.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

_SOURCES = {
    "precise": "PRECISE 2025 / simulator output: benign|malignant|normal/PACE_<subject>_<code>_<tag>.png + _mask.png",
    "busi": "BUSI: Dataset_BUSI_with_GT/<class>/<class> (N).png + _mask.png, _mask_1.png ...",
    "curated-busi": "Curated BUSI: BUSI restricted to a 'class;id' keep-list (--keep-list)",
    "bus-uclm": "BUS-UCLM: images/, masks/ (green benign, red malignant), INFO.csv",
    "bus-bra": "BUS-BRA: Images/bus_*.png, Masks/mask_*.png, bus_data.csv",
    "breast": "BrEaST: flat folder caseNNN.png + _tumor/_other masks, xlsx metadata (or --metadata CSV)",
}


def _convert(args: argparse.Namespace) -> int:
    from dataset_conversion import CONVERTERS, ConversionError

    extra = {}
    if args.source_kind == "curated-busi":
        extra["keep_list"] = Path(args.keep_list)
    if args.source_kind == "breast" and args.metadata:
        extra["metadata"] = Path(args.metadata)
    try:
        CONVERTERS[args.source_kind](Path(args.source), args.dataset_id, name=args.name, overwrite=args.overwrite,
                                     strict=args.strict, duplicate_threshold=args.dup_threshold, **extra)
    except (ConversionError, RuntimeError) as e:  # RuntimeError: nnUNet_raw not set
        print(f"phyjoint convert {args.source_kind}: error: {e}", file=sys.stderr)
        return 1
    return 0


def _images(args: argparse.Namespace) -> int:
    """Check every image first (``--strict``: stop before writing anything), convert; 3 when files were skipped."""
    import json

    from dataset_conversion import ConversionError, convert_images
    from dataset_conversion.report import REPORT_NAME
    from dataset_conversion.unlabeled import candidate_images
    from nnunet_phyjoint.inference.input_check import EXIT_SKIPPED, check_files, log_checks, strict_error

    try:
        report = check_files(candidate_images(Path(args.source))[0], root=Path(args.source))
        log_checks(report)
        if args.strict and report.skipped:
            print(strict_error(report, "phyjoint convert images"), file=sys.stderr)
            return 1
        out = convert_images(Path(args.source), Path(args.out), overwrite=args.overwrite, strict=args.strict)
    except ConversionError as e:
        print(f"phyjoint convert images: error: {e}", file=sys.stderr)
        return 1
    return EXIT_SKIPPED if json.loads((out / REPORT_NAME).read_text())["skipped"] else 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.add_argument("--strict", action="store_true", help="make a bad file fatal instead of skipping it (nothing is written)")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("convert", help="convert a breast-ultrasound dataset to nnU-Net's raw format",
                            description="Writes $nnUNet_raw/DatasetXXX_NAME (imagesTr, labelsTr, dataset.json with "
                                        "per-case class/patient/scanner, conversion_report.json). Bad files are "
                                        "skipped and reported unless --strict.")
    kinds = parser.add_subparsers(dest="source_kind", metavar="SOURCE_KIND", required=True)
    for kind, help_text in _SOURCES.items():
        p = kinds.add_parser(kind, help=help_text, description=help_text)
        p.add_argument("source", metavar="SOURCE", help="the dataset folder as downloaded (never modified)")
        p.add_argument("-d", "--dataset-id", type=int, required=True, help="nnU-Net dataset id (1-999)")
        p.add_argument("--name", help="dataset name after DatasetXXX_ (default: the source's usual name)")
        _common(p)
        p.add_argument("--dup-threshold", type=int, default=10,
                       help="near-duplicate cut: max differing bits of the 64-bit perceptual hash (default 10)")
        if kind == "curated-busi":
            p.add_argument("--keep-list", required=True, metavar="CSV", help="the curators' 'class;id' list")
        if kind == "breast":
            p.add_argument("--metadata", metavar="FILE",
                           help="BrEaST's xlsx or a CSV export of it (default: the one in or beside SOURCE)")
        p.set_defaults(func=_convert)
    p = kinds.add_parser("images", help="unlabeled images -> OUT/CASE_0000.png + cases.json for nnUNetv2_predict",
                         description="Writes every image below SOURCE as single-channel OUT/<case>_0000.png and "
                                     "OUT/cases.json (case id -> original file relative to SOURCE).")
    p.add_argument("source", metavar="SOURCE_FOLDER")
    p.add_argument("-o", "--out", required=True, metavar="OUT_FOLDER")
    _common(p)
    p.set_defaults(func=_images)
