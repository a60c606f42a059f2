"""`phyjoint export-submission PRED_FOLDER -o OUT`: predictions in the PRECISE 2025 challenge layout."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _run(args: argparse.Namespace) -> int:
    from nnunet_phyjoint.evaluation import export_submission

    try:
        out = export_submission(args.pred_folder, args.output, cases_json=args.cases_json,
                                classification_csv=args.classification, source_dir=args.source_dir,
                                check_size=not args.no_size_check, overwrite=args.overwrite)
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        print(f"phyjoint export-submission: error: {e}", file=sys.stderr)
        return 1
    n = len(list((out / "segmentation").glob("*_mask.png")))
    print(f"wrote {out / 'classification.csv'} and {n} masks in {out / 'segmentation'}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export-submission", help="write predictions in the PRECISE challenge format (classification.csv + masks)",
        description="Write OUT/classification.csv (image_id,label with Normal/Benign/Malignant) and "
                    "OUT/segmentation/<image_id>_mask.png (0/255, input size) from an nnU-Net prediction folder "
                    "holding CASE.png masks and classification.csv.")
    p.add_argument("pred_folder", type=Path, help="prediction folder (CASE.png masks, classification.csv)")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUT", help="submission folder to create")
    p.add_argument("--cases-json", type=Path, default=None, metavar="F",
                   help="case id -> original file (from `phyjoint convert images`): image_id = original file stem, "
                        "and mask sizes are checked against the originals")
    p.add_argument("--classification", type=Path, default=None, metavar="CSV",
                   help="class predictions CSV (default PRED_FOLDER/classification.csv)")
    p.add_argument("--source-dir", type=Path, default=None, metavar="DIR", help="folder the original files in cases.json are under")
    p.add_argument("--no-size-check", action="store_true", help="do not open the original images to check sizes")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    p.set_defaults(func=_run)
