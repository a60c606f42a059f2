"""`phyjoint split -d ID`: patient-wise, class-stratified folds written as nnU-Net's splits_final.json."""
from __future__ import annotations

import argparse
import json
import sys
import warnings


def _run(args: argparse.Namespace) -> int:
    from nnunet_phyjoint.metadata import load_case_metadata
    from nnunet_phyjoint.splits import SplitWarning, format_fold_balance, load_raw_dataset_json, write_splits

    try:
        with warnings.catch_warnings(record=True) as issued:
            warnings.simplefilter("always", SplitWarning)
            path = write_splits(args.dataset_id, n_folds=args.folds, seed=args.seed, overwrite=args.overwrite,
                                leave_one_scanner_out=args.leave_one_scanner_out,
                                partition_csv=args.bus_bra_partition)
        for w in issued:
            if issubclass(w.category, SplitWarning):
                print(f"phyjoint split: warning: {w.message}", file=sys.stderr)
            else:  # not ours: hand it back to Python's own display
                warnings.showwarning(w.message, w.category, w.filename, w.lineno)
        _, _, dataset_json = load_raw_dataset_json(args.dataset_id)
    except (FileNotFoundError, FileExistsError, ValueError, KeyError, RuntimeError) as e:
        # KeyError carries its explanation as the first argument; str() would add quotes
        print(f"phyjoint split: error: {e.args[0] if isinstance(e, KeyError) and e.args else e}", file=sys.stderr)
        return 1
    splits = json.loads(path.read_text())
    print(format_fold_balance(splits, load_case_metadata(dataset_json)))
    print(f"\nwrote {path} ({len(splits)} folds; train/predict with -f {' '.join(map(str, range(len(splits))))})")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "split", help="write patient-wise stratified cross-validation folds (splits_final.json)",
        description="Folds stratified by class and grouped by patient (joined by duplicate groups), "
                    "written to $nnUNet_preprocessed/DatasetXXX_NAME/splits_final.json.",
    )
    p.add_argument("-d", "--dataset-id", required=True, help="dataset id (e.g. 501) or full DatasetXXX_NAME")
    p.add_argument("--folds", type=int, default=4, help="number of folds (default 4, as in the paper)")
    p.add_argument("--seed", type=int, default=0, help="shuffling seed (default 0)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing, different splits_final.json")
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--leave-one-scanner-out", action="store_true",
                      help="one fold per scanner instead (val = that scanner's cases); ignores --folds/--seed")
    kind.add_argument("--bus-bra-partition", metavar="CSV", default=None,
                      help="BUS-BRA's published folds instead (its 5-fold-cv.csv or 10-fold-cv.csv): fold k validates "
                           "on the authors' test set k and trains on all other images; ignores --folds/--seed")
    p.set_defaults(func=_run)
