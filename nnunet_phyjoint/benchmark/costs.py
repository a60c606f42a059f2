"""What an arm costs: parameters, MACs, model size (checkpoint and packed export), training time, inference time."""
from __future__ import annotations

import json
import os
import re
from datetime import datetime
from pathlib import Path
from typing import Any, Sequence

from nnunet_phyjoint.evaluation.io import write_json
from nnunet_phyjoint.paths import preprocessed_dir


def checkpoint_facts(path: Path) -> dict[str, Any]:
    """Weight bytes, epochs trained and training seconds (sum of nnU-Net's logged epoch durations)."""
    import torch

    # nnU-Net's own checkpoint pickle, written by its trainer; read the way nnU-Net reads it
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    weights = ckpt["network_weights"]
    log = ckpt.get("logging", {})
    starts, ends = log.get("epoch_start_timestamps", []), log.get("epoch_end_timestamps", [])
    seconds = sum(e - s for s, e in zip(starts, ends))
    # stock PlainConvUNet registers every conv twice (``conv`` and ``all_modules.0``): count each storage once
    storages = {}
    for t in weights.values():
        if hasattr(t, "untyped_storage"):
            storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
    return {"weight_bytes": int(sum(storages.values())),
            "epochs": len(ends), "train_seconds": float(seconds)}


def arm_costs(dataset_name: str, plans: str, trainer: str, model_folder: Path, folds: list[int],
              export_bits: int | None, export_dir: Path, device, n_speed_images: int = 4,
              timing_cache: Path | None = None, log_dirs: Sequence[Path] = ()) -> dict[str, Any]:
    """Costs of one trained arm (``folds`` all done); inference timed on fold ``folds[0]``'s validation cases.

    ``time``: each fold's total wall-clock time (:func:`time_per_fold`): the preprocessing (found in
    ``log_dirs``' ``preprocess_*.log`` or the preprocessed files), style-decoder fit, training and final
    validation.

    With ``timing_cache`` (a JSON file) the timing is reused while fold ``folds[0]``'s checkpoint,
    the device and the image count are unchanged, and stored after a new measurement.
    """
    from nnunet_phyjoint.benchmark.speed import ModelSpec, load_cases, measure_inference, validation_case_ids
    from nnunet_phyjoint.network.model_info import model_info_from_plans

    facts = [checkpoint_facts(model_folder / f"fold_{f}" / "checkpoint_final.pth") for f in folds]
    info = model_info_from_plans(preprocessed_dir() / dataset_name / f"{plans}.json", "2d")
    out: dict[str, Any] = {
        "params": info["parameters"]["total"], "macs": info["macs"], "input_shape": info["input_shape"],
        "checkpoint_mb": facts[0]["weight_bytes"] / 1e6,
        "epochs_trained": [f["epochs"] for f in facts],
        "train_seconds": sum(f["train_seconds"] for f in facts),
        "train_seconds_per_fold": [f["train_seconds"] for f in facts],
        "export_bits": export_bits, "packed_mb": None,
    }
    out["time"] = time_per_fold(
        {f: {**fold_times(model_folder / f"fold_{f}"), "train_seconds": fact["train_seconds"]}
         for f, fact in zip(folds, facts)},
        preprocessing_time(dataset_name, plans, log_dirs))
    if export_bits:
        from nnunet_phyjoint.quantization.export import export_model_folder

        report = export_model_folder(model_folder, export_bits, export_dir, folds=[folds[0]], overwrite=True,
                                     verbose=False)
        sizes = report["folds"][str(folds[0])]
        out["packed_mb"] = (sizes["encoder_file_bytes"] + sizes["rest_file_bytes"]) / 1e6
        out["export"] = sizes
    checkpoint = model_folder / f"fold_{folds[0]}" / "checkpoint_final.pth"
    key = {"checkpoint": str(checkpoint), "checkpoint_mtime_ns": checkpoint.stat().st_mtime_ns,
           "device": str(device), "n_images": n_speed_images}
    timing = _cached_timing(timing_cache, key)
    if timing is None:
        spec = ModelSpec(dataset_name, plans, trainer, checkpoint)
        cases = validation_case_ids(dataset_name, folds[0], n_speed_images)
        load_before = os.getloadavg()[0]
        timing = measure_inference(spec, load_cases(spec.data_folder(), cases), device, mirroring=True)
        timing["load_average_1min"] = [load_before, os.getloadavg()[0]]  # other jobs slow the clock down
        if timing_cache is not None:
            write_json(timing_cache, {"key": key, "timing": timing})
    out["inference_ms"] = timing["ms_per_image"]
    out["inference"] = timing
    return out


def _cached_timing(cache: Path | None, key: dict[str, Any]) -> dict[str, Any] | None:
    """The inference timing measured earlier for the same checkpoint, device and image count, if any.

    Re-running the benchmark to re-score finished arms must not re-time them: a later run often
    shares the machine with training jobs, and its timings would replace clean ones.
    """
    if cache is None or not cache.is_file():
        return None
    try:
        stored = json.loads(cache.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return stored.get("timing") if stored.get("key") == key else None


# ---------------------------------------------------------------------------------------- time per fold
# Everything below reads what the runs already wrote (nnU-Net's training logs, the style decoders'
# record.json, the benchmark's preprocessing logs, the preprocessed files), so that it also times runs
# that finished before it existed. A component that cannot be found is None (unknown), never 0.

_LOG_LINE = re.compile(r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d+)?): ?(.*)$")
_STYLE_LINE = re.compile(r"^physics style shift: .*decoder fitted with .*\(([^()]*)\)\s*$")
_TQDM_DONE = re.compile(r"(\d+)/(\d+) \[(?:(\d+):)?(\d+):(\d+)<")  # tqdm: "32/32 [01:02<00:00" or "[1:02:03<"
_LINE_PROGRESS_DONE = re.compile(r"(\d+)/(\d+) \(100%\), (\d+(?:\.\d+)?) s")  # nnunet_phyjoint.progress

STYLE_FITTED_IN_RUN = "fitted in this run"
STYLE_CACHED = "cached"  # fitted before this run (another arm, repeat or `phyjoint fit-style`) and reused
STYLE_NOT_USED = "not used"


def _parse_log(path: Path) -> dict[str, Any] | None:
    """Timestamps of one nnU-Net training log: first, last, 'Training done.', 'Validation complete', epochs, style."""
    first = last = done = validated = None
    epochs, style = False, []
    for raw in path.read_text(errors="replace").splitlines():
        m = _LOG_LINE.match(raw.strip())
        if not m:
            continue
        try:
            t = datetime.fromisoformat(m.group(1)).timestamp()  # local time, as nnU-Net writes it
        except ValueError:
            continue
        message = m.group(2).strip()
        first = t if first is None else first
        last = t
        if message == "Training done.":
            done = t
        elif message.startswith("Validation complete"):
            validated = t
        elif re.match(r"^Epoch \d+$", message):
            epochs = True
        elif s := _STYLE_LINE.match(message):
            style.append((t, s.group(1)))
        elif message.startswith("WARNING: no ImageNet VGG-19 weights: the physics style shift is OFF"):
            style.append((t, None))
    if first is None:
        return None
    return {"path": path, "first": first, "last": last, "done": done, "validated": validated, "epochs": epochs,
            "style": style}


def _record_time(record: dict[str, Any], record_file: Path) -> float | None:
    stamp = record.get("timestamp")
    if stamp:
        try:
            return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S%z").timestamp()
        except ValueError:
            pass
    try:
        return record_file.stat().st_mtime
    except OSError:
        return None


def _style_fit(logs: list[dict[str, Any]]) -> dict[str, Any]:
    """The style-decoder fit of a fold: its seconds (record.json) and whether this run fitted it or reused it."""
    if not logs:
        return {"status": None, "seconds": None, "folder": None}
    uses = [(log, t, folder) for log in logs for t, folder in log["style"]]
    uses = [u for u in uses if u[2] is not None]
    if not uses:
        return {"status": STYLE_NOT_USED, "seconds": None, "folder": None}
    fitted_in_run = False
    seconds = record_folder = None
    for log, used_at, folder in uses:
        record_file = Path(folder) / "record.json"
        try:
            record = json.loads(record_file.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        record_folder = folder
        seconds = record.get("seconds")
        fitted_at = _record_time(record, record_file)
        # record.json is written at the end of the fit, between the log's first line and the style line
        if fitted_at is not None and log["first"] - 2 <= fitted_at <= used_at + 2:
            fitted_in_run = True
    if record_folder is None:
        return {"status": None, "seconds": None, "folder": uses[-1][2],
                "note": "style shift used, but its decoder's record.json was not found"}
    return {"status": STYLE_FITTED_IN_RUN if fitted_in_run else STYLE_CACHED,
            "seconds": float(seconds) if seconds is not None else None, "folder": record_folder}


def fold_times(fold_dir: Path) -> dict[str, Any]:
    """Wall-clock components of one trained fold, from its ``training_log_*.txt`` files (in time order).

    - ``trainer_seconds``: the training runs, each from its log's first line to 'Training done.' (or its
      last line if it was interrupted): start-up after the log opened, the style fit when this run
      made it, the epochs, checkpoints. A resumed run (``--c``) adds its own log.
    - ``final_validation_seconds``: the last log with 'Validation complete', from 'Training done.' (or,
      for a ``--val`` run, its first line) to its last line (PhyJoint's diagnoses and gating included).
    - ``style_fit``: ``{status, seconds, folder}``; status 'fitted in this run' (inside
      ``trainer_seconds``), 'cached' (fitted before and reused: 0 s in this run, its record's seconds
      shown), 'not used', or None (unknown).
    Values that cannot be found are None.
    """
    from nnunet_phyjoint.benchmark.curves import _log_order

    logs = [p for p in (_parse_log(f) for f in sorted(Path(fold_dir).glob("training_log_*.txt"), key=_log_order)) if p]
    training = [log for log in logs if log["epochs"] or log["style"]]
    trainer_seconds = sum(((log["done"] or log["last"]) - log["first"]) for log in training) if training else None
    validation = [log for log in logs if log["validated"] is not None]
    final_validation = None
    if validation:
        log = validation[-1]
        final_validation = log["last"] - (log["done"] if log["done"] is not None else log["first"])
    return {"trainer_seconds": trainer_seconds, "final_validation_seconds": final_validation,
            "style_fit": _style_fit(training), "logs": [log["path"].name for log in logs]}


def _elapsed_of_last_complete_bar(text: str) -> float | None:
    best = None
    for m in _TQDM_DONE.finditer(text):
        if m.group(1) == m.group(2):
            best = int(m.group(3) or 0) * 3600 + int(m.group(4)) * 60 + int(m.group(5))
    for m in _LINE_PROGRESS_DONE.finditer(text):
        if m.group(1) == m.group(2):
            best = float(m.group(3))
    return None if best is None else float(best)


#: ``phyjoint preprocess`` ends with "preprocessed DatasetXXX (plans, 2d) in N s" (no bar outside a terminal)
PREPROCESSED_LINE = re.compile(r"^preprocessed \S+ \(.*\) in ([0-9.]+) s$", re.MULTILINE)


def preprocessing_time(dataset_name: str, plans: str, log_dirs: Sequence[Path] = ()) -> dict[str, Any]:
    """Seconds of the preprocessing (``phyjoint preprocess`` / ``nnUNetv2_preprocess``) of the data ``plans`` trains on.

    Arms whose plans share a ``data_identifier`` (PhyJoint plans and the same-input stock plans;
    nnUNetPlans and ResEnc M) share one preprocessing. Sources, in order: the benchmark's
    ``preprocess_<plans>.log`` of a plans with that data (the elapsed time of the finished case
    loop's progress bar; process start-up not included), else the write times of the preprocessed
    cases (first to last, scaled by n/(n-1) for the first case; a lower bound). Returns
    ``{seconds, source, data_identifier}`` (and ``lower_bound: True`` from the write times); seconds None
    when neither is found.
    """
    folder = preprocessed_dir() / dataset_name
    try:
        identifier = json.loads((folder / f"{plans}.json").read_text())["configurations"]["2d"]["data_identifier"]
    except (OSError, KeyError, json.JSONDecodeError):
        return {"seconds": None, "source": None, "data_identifier": None}

    def identifier_of(plans_name: str) -> str | None:
        try:
            return json.loads((folder / f"{plans_name}.json").read_text())["configurations"]["2d"]["data_identifier"]
        except (OSError, KeyError, json.JSONDecodeError):
            return None

    for log_dir in log_dirs:
        logs = sorted(Path(log_dir).glob("preprocess_*.log"), key=lambda p: p.stat().st_mtime, reverse=True)
        for log in logs:
            if identifier_of(log.stem[len("preprocess_"):]) != identifier:
                continue
            text = log.read_text(errors="replace")
            timed = PREPROCESSED_LINE.findall(text)  # phyjoint preprocess's closing line
            if timed:
                return {"seconds": float(timed[-1]), "data_identifier": identifier,
                        "source": f"{log.name}: phyjoint preprocess's closing line"}
            seconds = _elapsed_of_last_complete_bar(text)
            if seconds is not None:
                return {"seconds": seconds, "data_identifier": identifier,
                        "source": f"{log.name}: the finished case loop's progress bar"}
    times = sorted(p.stat().st_mtime for p in (folder / identifier).glob("*.pkl"))
    if len(times) >= 2 and times[-1] > times[0]:
        n = len(times)
        return {"seconds": (times[-1] - times[0]) * n / (n - 1), "data_identifier": identifier, "lower_bound": True,
                "source": f"write times of the {n} preprocessed cases in {identifier}/ (a lower bound)"}
    return {"seconds": None, "source": None, "data_identifier": identifier}


def time_per_fold(fold_facts: dict[int, dict[str, Any]], preprocessing: dict[str, Any]) -> dict[str, Any]:
    """Per fold and mean: the total wall-clock time of a fold (None where a component is unknown).

    ``fold_facts``: fold -> :func:`fold_times` plus ``train_seconds`` (logged epoch durations).
    total = preprocessing / number of folds + trainer runs + final validation + the style fit when it was
    cached (a fit made in the run is inside the trainer runs already).
    """
    n = len(fold_facts)
    pre = preprocessing.get("seconds")
    per_fold = {}
    for fold, f in fold_facts.items():
        style = f["style_fit"]
        if style["status"] == STYLE_CACHED:
            extra_fit = style["seconds"]
        elif style["status"] in (STYLE_FITTED_IN_RUN, STYLE_NOT_USED):
            extra_fit = 0.0
        else:
            extra_fit = None
        parts = (pre, f["trainer_seconds"], f["final_validation_seconds"], extra_fit)
        total = None if any(p is None for p in parts) else pre / n + f["trainer_seconds"] \
            + f["final_validation_seconds"] + extra_fit
        per_fold[fold] = {**f, "preprocessing_share_seconds": None if pre is None else pre / n,
                          "total_seconds": total}
    totals = [p["total_seconds"] for p in per_fold.values()]
    return {"folds": per_fold, "preprocessing": preprocessing,
            "mean_total_seconds": None if not totals or None in totals else sum(totals) / len(totals)}
