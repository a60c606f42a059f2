"""`phyjoint predict`: nnUNetv2_predict with the same arguments, plus per-case diagnosis.

Writes the masks exactly as ``nnUNetv2_predict`` does and ``classification.csv`` beside them
(case_id, predicted_class, prob_normal, prob_benign, prob_malignant), averaged over mirrors,
tiles and folds. With ``-m MODEL_FOLDER`` instead of ``-d/-tr/-p/-c`` it takes the arguments of
``nnUNetv2_predict_from_modelfolder``; MODEL_FOLDER may be a folder written by ``phyjoint export``.
An ONNX export (``phyjoint export --format onnx``) runs on ONNX Runtime through the standalone
predictor :mod:`nnunet_phyjoint.onnx_predict` (same preprocessing, mirroring, fold ensembling and files).

Every input image is checked first (readable to the end, 2-D, one channel or convertible):
colour images are converted to grey as the converters do, unreadable ones are named, skipped
and listed at the end (exit status 3); ``--strict`` stops before predicting instead.

Masks are gated by the diagnosis: a case diagnosed *normal* gets an empty mask (the raw mask is kept
in ``OUT/ungated_masks``); ``--no-gating`` writes the raw masks only
(:mod:`nnunet_phyjoint.inference.normal_gating`).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

STRICT_FLAG = "--strict"
NO_GATING_FLAG = "--no-gating"


def run_nnunet_predict(argv: list[str]) -> None:
    """Run nnU-Net's own predict entry point with our predictor in place of nnUNetPredictor."""
    import nnunetv2.inference.predict_from_raw_data as pfr

    from nnunet_phyjoint.inference.predictor import PhyJointPredictor
    from nnunet_phyjoint.paths import ensure_trainers_on_ext_path

    ensure_trainers_on_ext_path()  # the model's trainer is found by name in the installed trainers folder
    original_cls, original_argv = pfr.nnUNetPredictor, sys.argv
    pfr.nnUNetPredictor = PhyJointPredictor
    sys.argv = ["phyjoint predict", *argv]
    entry = pfr.predict_entry_point_modelfolder if "-m" in argv else pfr.predict_entry_point
    try:
        entry()
    finally:
        pfr.nnUNetPredictor, sys.argv = original_cls, original_argv


def option_value(argv: list[str], flag: str, default: str | None = None) -> str | None:
    """The value after the exact token ``flag`` in nnU-Net's arguments (the last one wins, as in argparse)."""
    hits = [i for i, a in enumerate(argv[:-1]) if a == flag]
    return argv[hits[-1] + 1] if hits else default


def with_option(argv: list[str], flag: str, value: str) -> list[str]:
    """``argv`` with every value of ``flag`` replaced by ``value``."""
    out = list(argv)
    for i, a in enumerate(out[:-1]):
        if a == flag:
            out[i + 1] = value
    return out


def model_dataset_json(argv: list[str]) -> dict | None:
    """The model's dataset.json (file ending, channels), or None when the arguments do not name a model folder."""
    folder = option_value(argv, "-m")
    if folder is None:
        dataset, configuration = option_value(argv, "-d"), option_value(argv, "-c")
        if dataset is None or configuration is None:
            return None
        from nnunetv2.utilities.file_path_utilities import get_output_folder

        try:
            folder = get_output_folder(dataset, option_value(argv, "-tr", "nnUNetTrainer"),
                                       option_value(argv, "-p", "nnUNetPlans"), configuration)
        except (RuntimeError, FileNotFoundError):  # unknown dataset or nnUNet_results unset: nnU-Net says so itself
            return None
    path = Path(folder) / "dataset.json"
    return json.loads(path.read_text()) if path.is_file() else None


def predict_checked(argv: list[str], strict: bool = False, gating: bool = True) -> int:
    """Check the inputs, predict the usable ones, print the summary; 0, 3 (something skipped) or 1 (stopped)."""
    if gating:
        from nnunet_phyjoint.inference.normal_gating import gating_off_reason

        off = gating_off_reason(dataset_json=model_dataset_json(argv))
        if off:
            print(off, flush=True)
            gating = False
    model = option_value(argv, "-m")
    if model is not None:
        from nnunet_phyjoint.onnx_predict.manifest import is_onnx_export

        if is_onnx_export(model):
            return predict_onnx(argv, strict, gating)
    from nnunet_phyjoint.inference.input_check import (
        EXIT_SKIPPED, check_prediction_folder, log_checks, strict_error, summary,
    )
    from nnunet_phyjoint.inference.input_staging import prediction_inputs, restore_recorded_input

    source, output, dataset_json = option_value(argv, "-i"), option_value(argv, "-o"), model_dataset_json(argv)
    if source is None or output is None or dataset_json is None or {"-h", "--help"} & set(argv):
        run_nnunet_predict(argv)  # nnU-Net's parser reports what is missing (or prints its help)
        return 0
    try:
        report = check_prediction_folder(source, dataset_json.get("file_ending", ".png"),
                                         len(dataset_json.get("channel_names", {"0": ""})))
    except (NotADirectoryError, FileNotFoundError) as e:
        print(f"phyjoint predict: error: {e}", file=sys.stderr)
        return 1
    log_checks(report)
    if strict and report.skipped:
        print(strict_error(report, "phyjoint predict"), file=sys.stderr)
        return 1
    if report.usable:
        with prediction_inputs(report) as folder:
            try:
                run_nnunet_predict(with_option(argv, "-i", str(folder)))
            finally:
                restore_recorded_input(Path(output), folder, Path(source))
        if gating:
            from nnunet_phyjoint.inference.normal_gating import gate_prediction_folder

            gate_prediction_folder(output, dataset_json.get("file_ending", ".png"))
    print(summary(report, "predicted"), flush=True)
    return EXIT_SKIPPED if report.skipped else 0


# nnU-Net options that mean nothing for ONNX Runtime on the CPU (worker counts, device); the others it does not
# take (-chk: the checkpoint was chosen at export time) are refused by the ONNX predictor's parser
_ONNX_IGNORED = {"-npp": 1, "-nps": 1, "-device": 1, "--verbose": 0}


def predict_onnx(argv: list[str], strict: bool, gating: bool) -> int:
    """``phyjoint predict -m ONNX_EXPORT ...``: nnU-Net's option names, run by the standalone ONNX predictor."""
    from nnunet_phyjoint.onnx_predict.__main__ import main as onnx_main

    kept, i = [], 0
    while i < len(argv):
        if argv[i] in _ONNX_IGNORED:
            i += 1 + _ONNX_IGNORED[argv[i]]
            continue
        if argv[i] == "--save_probabilities":
            print("phyjoint predict: error: --save_probabilities is not available for ONNX exports "
                  "(nnU-Net's .npz/.pkl files need nnU-Net)", file=sys.stderr)
            return 2
        kept.append(argv[i])
        i += 1
    flags = (["--strict"] if strict else []) + ([] if gating else ["--no-gating"])
    return onnx_main([*kept, *flags], prog="phyjoint predict")


def _run(args: argparse.Namespace) -> int:
    argv = [a for a in args.nnunet_args if a not in (STRICT_FLAG, NO_GATING_FLAG)]
    return predict_checked(argv, strict=STRICT_FLAG in args.nnunet_args,
                           gating=NO_GATING_FLAG not in args.nnunet_args)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict", add_help=False, prefix_chars="\0",
        help="nnUNetv2_predict with the same arguments (plus --strict, --no-gating); also writes classification.csv",
        description=__doc__)
    # every argument but --strict goes to nnU-Net's own parser (so `phyjoint predict -h` shows nnU-Net's help)
    p.add_argument("nnunet_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=_run)
