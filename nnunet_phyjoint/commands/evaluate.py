"""`phyjoint evaluate GT_FOLDER PRED_FOLDER -o OUT`: segmentation and diagnosis metrics with 95% CIs, report and figures."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _run(args: argparse.Namespace) -> int:
    from nnunet_phyjoint.evaluation import evaluate_folders, format_summary_table

    try:
        case_folds = None
        if args.splits is not None:
            from nnunet_phyjoint.evaluation.io import list_pngs
            from nnunet_phyjoint.splits import validation_folds

            case_folds = validation_folds(args.splits)
            outside = sorted(set(list_pngs(args.gt_folder)) - set(case_folds))
            if outside:
                raise ValueError(f"{args.splits}: {len(outside)} case(s) of {args.gt_folder} are in no validation "
                                 f"fold: {outside[:5]}")
        metrics = evaluate_folders(
            args.gt_folder, args.pred_folder, classification_csv=args.classification,
            dataset_json=args.dataset_json, out_dir=args.output, spacing_mm=args.spacing_mm,
            n_bootstrap=args.bootstrap, seed=args.seed, figures=not args.no_figures, images_dir=args.images,
            case_folds=case_folds,
        )
    except (FileNotFoundError, ValueError, KeyError) as e:
        print(f"phyjoint evaluate: error: {e.args[0] if isinstance(e, KeyError) and e.args else e}", file=sys.stderr)
        return 1
    print(format_summary_table(metrics))
    if metrics["extra_predictions"]:
        print(f"\n{len(metrics['extra_predictions'])} prediction(s) without ground truth were ignored.")
    if metrics["classification"] is None:
        print(f"\n{metrics['classification_note']}")
    print(f"\nReport: {Path(args.output) / 'metrics.md'}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate", help="DSC, Jaccard, HD95, accuracy, F1, AUC with bootstrap CIs; JSON/Markdown report and figures",
        description="Evaluate nnU-Net prediction PNGs (and classification.csv) against labelsTr-style ground truth. "
                    "Writes OUT/metrics.json, OUT/metrics.md, OUT/per_case.csv and OUT/figures/*.png.")
    p.add_argument("gt_folder", type=Path, help="ground-truth label PNGs (CASE.png, values 0/1), e.g. labelsTr")
    p.add_argument("pred_folder", type=Path, help="predicted label PNGs with the same case ids")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUT", help="output folder")
    p.add_argument("--classification", type=Path, default=None, metavar="CSV",
                   help="class predictions CSV (default PRED_FOLDER/classification.csv if present)")
    p.add_argument("--dataset-json", type=Path, default=None, metavar="F",
                   help="dataset.json with the phyjoint case metadata (default GT_FOLDER/../dataset.json)")
    p.add_argument("--images", type=Path, default=None, metavar="DIR",
                   help="images for the overlays (CASE_0000.png; default GT_FOLDER/../imagesTr)")
    p.add_argument("--spacing-mm", type=float, nargs=2, metavar=("SY", "SX"), default=None,
                   help="pixel spacing (row, column) in mm for every case; HD95 is then also given in mm")
    p.add_argument("--splits", type=Path, default=None, metavar="JSON",
                   help="nnU-Net's splits_final.json: for pooled cross-validation predictions, also score each fold's "
                        "validation cases on their own (metrics.md 'By fold', figures/by_fold.png)")
    p.add_argument("--bootstrap", type=int, default=1000, metavar="N", help="bootstrap resamples (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    p.set_defaults(func=_run)
