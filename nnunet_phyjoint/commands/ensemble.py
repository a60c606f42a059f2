"""`phyjoint ensemble -i FOLDERS -o OUT`: nnUNetv2_ensemble plus averaged class probabilities.

Every case's inputs are checked first (``CASE.npz`` decodable and ``CASE.pkl`` present in every
folder, equal shapes, a classification row): a case with a problem is named, skipped and listed at
the end (exit status 3); ``--strict`` stops before any work instead. As ``phyjoint predict``, the
ensembled mask of a case diagnosed normal is emptied unless ``--no-gating``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def write_classifications(folders: list[Path], output: Path) -> Path:
    """Averaged ``classification.csv`` in ``output`` for the cases whose ensembled mask exists there."""
    import json

    from nnunet_phyjoint.evaluation.io import read_classification_csv, write_classification_csv
    from nnunet_phyjoint.inference.ensemble import ensemble_classifications

    out = ensemble_classifications(folders, output)
    ending = json.loads((folders[0] / "dataset.json").read_text())["file_ending"]
    rows = read_classification_csv(out)
    written = {c: p for c, p in rows.items() if (output / f"{c}{ending}").is_file()}
    if len(written) != len(rows):
        write_classification_csv(out, written)
    return out


def _run(args: argparse.Namespace) -> int:
    from nnunetv2.ensembling.ensemble import ensemble_folders

    from nnunet_phyjoint.inference.input_check import (
        EXIT_SKIPPED, check_ensemble_folders, log_checks, strict_error, summary,
    )
    from nnunet_phyjoint.inference.input_staging import ensemble_inputs

    try:
        report = check_ensemble_folders(args.i)
    except (FileNotFoundError, ValueError) as e:
        print(f"phyjoint ensemble: error: {e}", file=sys.stderr)
        return 1
    log_checks(report)
    if args.strict and report.skipped:
        print(strict_error(report, "phyjoint ensemble"), file=sys.stderr)
        return 1
    if report.usable:
        with ensemble_inputs(report, args.i) as folders:
            try:
                ensemble_folders([str(f) for f in folders], args.o, args.save_npz, args.np)
            except BaseException:
                if Path(args.o).is_dir():  # a later case failed: keep the diagnosis of every mask written
                    write_classifications(folders, Path(args.o))
                raise
            out = write_classifications(folders, Path(args.o))
        print(f"averaged class probabilities of {len(args.i)} folders -> {out}")
        if not args.no_gating:
            import json

            from nnunet_phyjoint.inference.normal_gating import gate_prediction_folder, gating_off_reason

            dataset_json = json.loads((Path(args.i[0]) / "dataset.json").read_text())
            off = gating_off_reason(dataset_json=dataset_json)
            if off:
                print(off, flush=True)
            else:
                gate_prediction_folder(args.o, dataset_json["file_ending"])
    print(summary(report, "ensembled"), flush=True)
    return EXIT_SKIPPED if report.skipped else 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ensemble", help="nnUNetv2_ensemble with the same arguments; also averages classification.csv",
                       description=__doc__)
    p.add_argument("-i", nargs="+", required=True, help="prediction folders (made with --save_probabilities)")
    p.add_argument("-o", required=True, help="output folder")
    p.add_argument("-np", type=int, default=2, help="processes for nnU-Net's ensembling")
    p.add_argument("--save_npz", action="store_true", help="also store the merged probabilities as .npz")
    p.add_argument("--strict", action="store_true", help="stop before any work when an input has a problem")
    p.add_argument("--no-gating", action="store_true",
                   help="keep the raw masks of cases diagnosed normal (default: their masks are emptied)")
    p.set_defaults(func=_run)
