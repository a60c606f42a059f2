"""`phyjoint benchmark -d ID`: stock nnU-Net vs PhyJoint variants on the same folds, with equal budgets.

Every arm gets the same budget: --epochs N (one pass over the training fold each) or
--minutes-per-fold M (training minutes per fold; each trainer plans its epoch count and LR decay
from its first epoch). Trains every arm's folds through nnUNetv2_train (skipping finished folds,
resuming interrupted ones), pools the cross-validation predictions, evaluates them with bootstrap
CIs, and writes OUT/table1.md, OUT/table1.json, OUT/fig3_arms.png and OUT/fig_learning_curves.png.
With --leave-one-scanner-out: one fold per held-out scanner on a copy of the dataset
(OUT/loso/table_loso.md, fig_loso.png). Use one OUT per budget. See docs/benchmark.md.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nnunet_phyjoint.encoders import CPU_ENCODER, DEFAULT_ENCODER
from nnunet_phyjoint.input_scaling import DEFAULT_SCALING, SCALINGS

def default_encoder(device: str) -> str:
    """The paper's B6 on an accelerator; the ImageNet Lite0 that CPUs can train in minutes otherwise."""
    return CPU_ENCODER if device == "cpu" else DEFAULT_ENCODER


# the budgets that exist as trainer classes (training.stock_variants; kept here so that --help imports no torch)
EPOCH_BUDGETS_HELP = "1, 2, 3, 5, 8, 10, 15, 20, 25, 30, 40, 50, 100, 200"
MINUTE_BUDGETS_HELP = "1, 2, 3, 5, 8, 10, 15, 20, 30, 45, 60, 90, 120"
DEFAULT_EPOCHS = 10


def _run(args: argparse.Namespace) -> int:
    from nnunet_phyjoint.benchmark.arms import known_arms
    from nnunet_phyjoint.benchmark.pipeline import BenchmarkConfig, run_benchmark

    if args.list_arms:
        for arm in known_arms().values():
            print(f"{arm.name:24s} {arm.base_trainer:30s} {arm.plans:28s} {arm.description}")
        return 0
    if args.dataset_id is None:
        print("phyjoint benchmark: error: -d/--dataset-id is required", file=sys.stderr)
        return 2
    cfg = BenchmarkConfig(
        dataset=args.dataset_id, out=Path(args.out), folds=args.folds,
        epochs=args.epochs if args.epochs is not None else DEFAULT_EPOCHS,
        minutes_per_fold=args.minutes_per_fold, arms=args.arms,
        device=args.device, encoder=args.encoder or default_encoder(args.device), size=args.size,
        batch_size=args.batch_size,
        phyjoint_plans=args.plans, num_processes=args.np, n_bootstrap=args.bootstrap,
        n_speed_images=args.speed_images, leave_one_scanner_out=args.leave_one_scanner_out,
        loso_dataset_id=args.loso_dataset_id, loso_min_cases=args.loso_min_cases, loso_held_out=args.held_out,
        postprocessing=not args.no_postprocessing,
        test_dataset=args.test_dataset, repeat=args.repeat, jobs=args.jobs, scaling=args.scaling)
    try:
        run_benchmark(cfg)
    except (ValueError, FileNotFoundError, FileExistsError, RuntimeError) as e:
        print(f"phyjoint benchmark: error: {e}", file=sys.stderr)
        return 1
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("benchmark", help="train and compare stock nnU-Net and PhyJoint variants (Table 1, Fig. 3)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-d", "--dataset-id", help="dataset id (e.g. 501) or DatasetXXX_NAME")
    p.add_argument("-o", "--out", default="benchmark", help="output folder (default ./benchmark)")
    p.add_argument("--folds", type=int, nargs="+", default=[0, 1, 2, 3], help="folds to train (default 0 1 2 3)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=int, default=None,
                        help=f"equal-epoch budget: epochs per arm and fold, each one pass over the training fold; "
                             f"one of {EPOCH_BUDGETS_HELP} (default {DEFAULT_EPOCHS})")
    budget.add_argument("--minutes-per-fold", type=int, default=None, metavar="M",
                        help="equal wall-clock budget: minutes of training per arm and fold (sum of epoch "
                             "durations; each trainer plans its epochs and LR decay from the first epoch); "
                             f"one of {MINUTE_BUDGETS_HELP}")
    p.add_argument("--arms", nargs="+", default=None,
                   help="arms to run (default: all that exist; see --list-arms); a PhyJointTrainer* class name "
                        "is accepted as an ad-hoc arm")
    p.add_argument("--no-postprocessing", action="store_true",
                   help="skip the second table: every arm after nnU-Net's determine_postprocessing (keep the largest "
                        "component when it raises the cross-validation Dice, as nnUNetv2_find_best_configuration "
                        "decides)")
    p.add_argument("--test-dataset", default=None, metavar="ID",
                   help="also score every arm on this independent raw dataset (e.g. simulated with another seed and "
                        "converted under its own id): the ensemble of the trained folds, as nnUNetv2_predict -f "
                        "ensembles them; imagesTs+labelsTs when present, else imagesTr+labelsTr")
    p.add_argument("--repeat", type=int, default=1, metavar="K",
                   help="K-th independent training run of every arm (default 1 = $nnUNet_results itself; K > 1 "
                        "trains into $nnUNet_results/repeat_K, give it its own -o): nnU-Net does not seed training, "
                        "so repeats measure run-to-run variation; `phyjoint benchmark-repeats` tabulates them")
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="nnUNetv2_train runs side by side (default 1), never two of the same fold; on CPU each gets "
                        "cores/N threads (OMP_NUM_THREADS) and, unless set, as many augmentation workers "
                        "(nnUNet_n_proc_DA) and final-validation export workers (nnUNet_def_n_proc). Keep the "
                        "budget's meaning in mind: with --minutes-per-fold every arm trains beside N-1 others, so give "
                        "every arm of one comparison the same --jobs")
    p.add_argument("--list-arms", action="store_true", help="print the known arms and exit")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda", "mps"))
    p.add_argument("--leave-one-scanner-out", action="store_true",
                   help="scanner-shift protocol: one fold per held-out scanner, on a copy of the dataset")
    p.add_argument("--loso-min-cases", type=int, default=1, metavar="N",
                   help="--leave-one-scanner-out holds out only scanners with at least N images; the others stay in "
                        "every training set (default 1: every scanner is held out once)")
    p.add_argument("--held-out", nargs="+", default=None, metavar="SCANNER",
                   help="--leave-one-scanner-out trains and tables only these held-out scanners (case-insensitive "
                        "part of the name, e.g. Toshiba), so that one scanner at a time fits a session; finished "
                        "runs are skipped, so a last run without --held-out tables them all")
    p.add_argument("--loso-dataset-id", type=int, default=None,
                   help="dataset id of that copy (default: ID + 100, or ID - 100 above 899)")
    p.add_argument("-p", "--plans", default="PhyJointPlans", help="PhyJoint plans name (default PhyJointPlans)")
    p.add_argument("--scaling", choices=SCALINGS, default=DEFAULT_SCALING,
                   help=f"input scaling of the PhyJoint plans (see `phyjoint plan --scaling`; default {DEFAULT_SCALING}); "
                        "existing plans must have it: use one --plans name per scaling. The stock arm "
                        "nnunet_phyjoint_plans sees the same pixels")
    p.add_argument("--encoder", default=None,
                   help=f"encoder for PhyJoint plans, if they do not exist yet (default: {CPU_ENCODER} with "
                        f"--device cpu, whose ImageNet weights ship in a registry package; {DEFAULT_ENCODER} otherwise); "
                        "its weights are resolved as for `phyjoint plan --encoder-weights auto`")
    p.add_argument("--size", type=int, default=256, help="input size for PhyJoint plans, if they do not exist yet")
    p.add_argument("--batch-size", type=int, default=16, help="batch size for PhyJoint plans, if they do not exist yet")
    p.add_argument("-np", type=int, default=1, help="processes for fingerprinting/preprocessing (default 1)")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the CIs (default 1000)")
    p.add_argument("--speed-images", type=int, default=4, help="images timed for inference ms/img (default 4)")
    p.set_defaults(func=_run)
