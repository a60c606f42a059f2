"""Evaluate a folder of predicted masks (and a classification CSV) against nnU-Net ground truth."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from nnunet_phyjoint.evaluation import classification_metrics as clsm
from nnunet_phyjoint.evaluation import segmentation_metrics as segm
from nnunet_phyjoint.evaluation.bootstrap import bootstrap_ci, ci_entry
from nnunet_phyjoint.evaluation.by_group import case_scanners, scores_by_group
from nnunet_phyjoint.evaluation.io import (
    CLASSIFICATION_CSV, list_pngs, read_classification_csv, read_grey_image, read_mask, read_predicted_classes,
)
from nnunet_phyjoint.metadata import CLASS_NAMES, METADATA_KEY, class_labels

CONVENTIONS = (
    "DSC and Jaccard are 1 when ground truth and prediction are both empty; such cases count in the "
    "all-image mean and are excluded from the lesion-only mean (lesion-only = ground truth non-empty).",
    "HD95 = max of the two directed 95th percentiles of boundary-pixel distances (4-connected boundary); "
    "undefined when either mask is empty and then left out of the mean (counted as undefined).",
    "F1 per class = 2TP/(2TP+FP+FN); macro F1 and one-vs-rest macro AUC are means over the classes where "
    "they are defined (a class absent from the ground truth has no AUC).",
    "Benign vs malignant (malignant = positive), over the cases whose true class is benign or malignant: "
    "AUC scored by p_malignant / (p_benign + p_malignant); sensitivity = true malignant predicted malignant; "
    "specificity = true benign not predicted malignant (called benign or normal); predicted class = the "
    "classification CSV's predicted_class (the argmax of the probabilities). Undefined (n/a) when a class is absent.",
    "95% confidence intervals: percentile bootstrap over cases (same resamples for every metric).",
)


def evaluate_folders(
    gt_dir: str | Path,
    pred_dir: str | Path,
    classification_csv: str | Path | None = None,
    dataset_json: str | Path | None = None,
    out_dir: str | Path | None = None,
    spacing_mm: Sequence[float] | None = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
    figures: bool = True,
    images_dir: str | Path | None = None,
    progress: bool = True,
    case_folds: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """Metrics of ``pred_dir`` against ``gt_dir``; with ``out_dir``, also the report files and figures.

    Every ground-truth case (``CASE.png`` in ``gt_dir``) must have a prediction ``CASE.png``;
    extra predictions are listed. Class predictions come from ``classification_csv`` or, when
    not given, ``pred_dir/classification.csv`` if it exists; true classes from the dataset.json
    ``"phyjoint"`` metadata (default ``gt_dir/../dataset.json``). Spacing: ``spacing_mm``
    (row, column) for every case, else ``"spacing_mm"`` of each case in the metadata if present.
    Cases from two or more scanners (metadata) are also scored per scanner (``metrics["by_scanner"]``), and
    with ``case_folds`` (case id -> cross-validation fold, for pooled validation predictions) spanning two
    or more folds, per fold (``metrics["by_fold"]``; each fold scores as its cases evaluated alone would).
    Writes ``metrics.json``, ``metrics.md``, ``per_case.csv`` and ``figures/*.png`` into ``out_dir``.
    Returns the content of ``metrics.json``.
    """
    gt_dir, pred_dir = Path(gt_dir), Path(pred_dir)
    gt_files, pred_files = list_pngs(gt_dir), list_pngs(pred_dir)
    if not gt_files:
        raise FileNotFoundError(f"no ground-truth label PNGs in {gt_dir}")
    missing = sorted(set(gt_files) - set(pred_files))
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} case(s) of {gt_dir} have no prediction in {pred_dir}: {_names(missing)}")
    extra = sorted(set(pred_files) - set(gt_files))
    case_ids = list(gt_files)

    dataset_json = _resolve_dataset_json(gt_dir, dataset_json)
    dj = json.loads(dataset_json.read_text()) if dataset_json else None
    spacings, spacing_source = _case_spacings(case_ids, spacing_mm, dj)

    per_case, gts, preds = _segmentation_per_case(case_ids, gt_files, pred_files, spacings, progress)
    columns = {k: np.array([row[k] for row in per_case], dtype=np.float64)
               for k in ("dsc", "jaccard", "hd95_px", "hd95_mm", "gt_pixels", "pred_pixels")}

    cls_csv = Path(classification_csv) if classification_csv else pred_dir / CLASSIFICATION_CSV
    cls_data = None
    classification_note = None
    if classification_csv or cls_csv.is_file():
        cls_data = _classification_inputs(case_ids, cls_csv, dj, dataset_json, gt_dir)
        for row, t, p, pr in zip(per_case, cls_data["y_true"], cls_data["y_pred"], cls_data["probs"]):
            row["gt_class"] = CLASS_NAMES[t] if t >= 0 else ""
            row["predicted_class"] = CLASS_NAMES[p]
            row.update({f"prob_{c}": float(v) for c, v in zip(CLASS_NAMES, pr)})
    else:
        classification_note = f"No classification predictions ({cls_csv} not found; pass --classification CSV)."

    def statistic_on(idx: np.ndarray):
        """The statistic over the cases ``idx``: a function of their (B, len(idx)) resample counts."""
        cols = {k: v[idx] for k, v in columns.items()}
        if cls_data is not None:
            labelled = cls_data["y_true"][idx] >= 0
            y_true, probs, y_pred = (cls_data[k][idx][labelled] for k in ("y_true", "probs", "y_pred"))

        def statistic(weights: np.ndarray) -> dict[str, np.ndarray]:
            values = segm.aggregate(cols, weights)
            if cls_data is not None:
                values.update(clsm.weighted_scalar_metrics(y_true, probs, y_pred, weights[:, labelled]))
            return values
        return statistic

    statistic = statistic_on(np.arange(len(case_ids)))
    point = {k: float(v[0]) for k, v in statistic(np.ones((1, len(case_ids)))).items()}
    ci = bootstrap_ci(len(case_ids), statistic, n_bootstrap=n_bootstrap, seed=seed)
    scanners = case_scanners(case_ids, dj)
    if scanners is not None:
        for row, scanner in zip(per_case, scanners):
            row["scanner"] = scanner
    folds = _case_fold_names(case_ids, case_folds)
    if folds is not None:
        for row, fold in zip(per_case, folds):
            row["fold"] = fold

    metrics: dict[str, Any] = {
        "format_version": 1,
        "inputs": {
            "gt_dir": str(gt_dir), "pred_dir": str(pred_dir),
            "classification_csv": str(cls_csv) if cls_data is not None else None,
            "dataset_json": str(dataset_json) if dataset_json else None,
            "spacing_source": spacing_source,
        },
        "n_cases": len(case_ids),
        "extra_predictions": extra,
        "bootstrap": {"n_resamples": n_bootstrap, "seed": seed, "level": 0.95,
                      "method": "percentile bootstrap over cases"},
        "conventions": list(CONVENTIONS),
        "segmentation": _segmentation_summary(columns, point, ci),
        "classification": None,
    }
    if cls_data is not None:
        metrics["classification"] = _classification_summary(cls_data, point, ci)
    else:
        metrics["classification_note"] = classification_note
    # per scanner only where the cases span two or more (dataset.json metadata)
    metrics["by_scanner"] = (scores_by_group(scanners, statistic_on, n_bootstrap=n_bootstrap, seed=seed)
                             if scanners is not None else None)
    metrics["by_fold"] = (scores_by_group(folds, statistic_on, n_bootstrap=n_bootstrap, seed=seed)
                          if folds is not None else None)

    if out_dir is not None:
        from nnunet_phyjoint.evaluation.report import write_reports

        out_dir = Path(out_dir)
        figure_files = []
        if figures:
            figure_files = _write_figures(out_dir / "figures", metrics, cls_data, per_case, gts, preds,
                                          _images_dir(gt_dir, images_dir))
        write_reports(out_dir, metrics, per_case, [str(Path(f).relative_to(out_dir)) for f in figure_files])
    return metrics


def _names(ids: Sequence[str], limit: int = 10) -> str:
    return ", ".join(ids[:limit]) + (f" ... (+{len(ids) - limit} more)" if len(ids) > limit else "")


def _resolve_dataset_json(gt_dir: Path, dataset_json: str | Path | None) -> Path | None:
    if dataset_json is not None:
        path = Path(dataset_json)
        if not path.is_file():
            raise FileNotFoundError(f"dataset.json {path} does not exist")
        return path
    default = gt_dir.parent / "dataset.json"
    return default if default.is_file() else None


def _case_spacings(case_ids: Sequence[str], spacing_mm: Sequence[float] | None,
                   dj: Mapping[str, Any] | None) -> tuple[dict[str, tuple[float, float] | None], str]:
    if spacing_mm is not None:
        sp = _as_spacing(spacing_mm, "--spacing-mm")
        return {cid: sp for cid in case_ids}, f"{sp[0]} x {sp[1]} mm (given) for every case"
    meta_cases = (dj or {}).get(METADATA_KEY, {}).get("cases", {})
    out = {cid: _as_spacing(meta_cases[cid]["spacing_mm"], f"spacing_mm of case {cid} in dataset.json")
           if meta_cases.get(cid, {}).get("spacing_mm") is not None else None for cid in case_ids}
    known = sum(v is not None for v in out.values())
    if known == 0:
        return out, "unknown (HD95 in pixels only)"
    return out, f"per case from dataset.json metadata ({known} of {len(case_ids)} cases)"


def _as_spacing(value: Any, where: str) -> tuple[float, float]:
    values = [value, value] if isinstance(value, (int, float)) else list(value)
    try:
        sp = (float(values[0]), float(values[1]))
    except (TypeError, ValueError, IndexError):
        raise ValueError(f"{where}: expected two numbers (row, column spacing in mm), got {value!r}") from None
    if len(values) != 2 or not all(np.isfinite(sp)) or min(sp) <= 0:
        raise ValueError(f"{where}: expected two positive numbers (row, column spacing in mm), got {value!r}")
    return sp


def _segmentation_per_case(case_ids, gt_files, pred_files, spacings, progress):
    from nnunet_phyjoint.progress import progress as progress_bar

    rows, gts, preds = [], {}, {}
    for cid in progress_bar(case_ids, desc="segmentation metrics", unit="case", disable=not progress, leave=False):
        gt, pred = read_mask(gt_files[cid]), read_mask(pred_files[cid])
        if gt.shape != pred.shape:
            raise ValueError(f"case {cid}: prediction {pred_files[cid]} has size {pred.shape}, "
                             f"ground truth {gt_files[cid]} has {gt.shape}")
        m = segm.case_metrics(gt, pred, spacings[cid])
        sp = spacings[cid] or (None, None)
        rows.append({"case_id": cid, **m.as_dict(), "spacing_y_mm": sp[0], "spacing_x_mm": sp[1]})
        gts[cid], preds[cid] = gt, pred
    return rows, gts, preds


def _classification_inputs(case_ids, csv_path: Path, dj, dataset_json: Path | None, gt_dir: Path) -> dict:
    if dj is None:
        raise FileNotFoundError(
            f"classification needs the true classes from dataset.json, and {gt_dir.parent / 'dataset.json'} "
            "does not exist: pass --dataset-json")
    labels = class_labels(dataset_json)
    probs_by_case = read_classification_csv(csv_path)
    pred_by_case = read_predicted_classes(csv_path)
    labelled = [cid for cid in case_ids if cid in labels]
    missing = [cid for cid in labelled if cid not in probs_by_case]
    if missing:
        raise KeyError(f"{len(missing)} case(s) with a known class have no row in {csv_path}: {_names(missing)}")
    y_true = np.array([labels.get(cid, -1) for cid in case_ids], dtype=int)
    # Unlabelled cases may lack a row; they get uniform placeholders that no metric reads (y_true = -1).
    uniform = np.full(len(CLASS_NAMES), 1.0 / len(CLASS_NAMES))
    probs = np.stack([probs_by_case.get(cid, uniform) for cid in case_ids])
    y_pred = np.array([pred_by_case.get(cid, int(np.argmax(p))) for cid, p in zip(case_ids, probs)], dtype=int)
    return {"y_true": y_true, "probs": probs, "y_pred": y_pred, "csv": csv_path,
            "unlabelled": [cid for cid in case_ids if cid not in labels],
            "extra_rows": sorted(set(probs_by_case) - set(case_ids))}


def _case_fold_names(case_ids: Sequence[str], case_folds: Mapping[str, int] | None) -> list[str] | None:
    """Each case's fold as a group name, or None without folds or with fewer than two (nothing to break down)."""
    if not case_folds:
        return None
    unknown = [c for c in case_ids if c not in case_folds]
    if unknown:
        raise ValueError(f"case_folds has no fold for {len(unknown)} evaluated case(s): {_names(unknown)}")
    names = [str(int(case_folds[c])) for c in case_ids]
    return names if len(set(names)) >= 2 else None


def _entry(point: Mapping[str, float], ci: Mapping[str, tuple[float, float]], key: str, n: int) -> dict:
    return ci_entry(point[key], ci, key, n=n)


def _area_ratio(pred_pix: np.ndarray, gt_pix: np.ndarray) -> dict | None:
    """Predicted / true lesion area over the cases with a lesion: median and quartiles (over- vs under-segmentation)."""
    if len(gt_pix) == 0:
        return None
    ratio = np.asarray(pred_pix, dtype=float) / np.asarray(gt_pix, dtype=float)
    q25, median, q75 = (float(v) for v in np.percentile(ratio, [25, 50, 75]))
    return {"median": median, "q25": q25, "q75": q75, "n": int(len(ratio))}


def _segmentation_summary(columns, point, ci) -> dict:
    gt_pix, pred_pix = columns["gt_pixels"], columns["pred_pixels"]
    lesion, empty = gt_pix > 0, gt_pix == 0
    n, n_lesion = len(gt_pix), int(lesion.sum())
    out = {
        "counts": {
            "cases": n, "lesion_cases": n_lesion, "empty_gt_cases": int(empty.sum()),
            "both_empty": int((empty & (pred_pix == 0)).sum()),
            "false_positive_on_empty_gt": int((empty & (pred_pix > 0)).sum()),
            "missed_lesions": int((lesion & (pred_pix == 0)).sum()),
        },
        "dsc": {"lesion_only": _entry(point, ci, "dsc_lesion_only", n_lesion),
                "all_image": _entry(point, ci, "dsc_all_image", n)},
        "jaccard": {"lesion_only": _entry(point, ci, "jaccard_lesion_only", n_lesion),
                    "all_image": _entry(point, ci, "jaccard_all_image", n)},
        "area_ratio_lesion": _area_ratio(pred_pix[lesion], gt_pix[lesion]),
    }
    for unit in ("px", "mm"):
        values = columns[f"hd95_{unit}"]
        defined = np.isfinite(values)
        if unit == "mm" and not defined.any():
            out["hd95_mm"] = None
            continue
        out[f"hd95_{unit}"] = {**_entry(point, ci, f"hd95_{unit}", int(defined.sum())),
                               "median": float(np.median(values[defined])) if defined.any() else np.nan,
                               "n_undefined": int((~defined).sum())}
    return out


CLASSIFICATION_SCALARS = ("accuracy", "f1_macro", "auc_macro", "auc_malignant", "sensitivity", "specificity")


def _classification_summary(cls_data, point, ci) -> dict:
    known = cls_data["y_true"] >= 0
    if not known.any():
        raise ValueError("no evaluated case has a known class (normal/benign/malignant) in dataset.json")
    full = clsm.classification_metrics(cls_data["y_true"][known], cls_data["probs"][known], cls_data["y_pred"][known])
    n = full["n_cases"]
    support = full["support"]
    n_of = {"auc_malignant": support["benign"] + support["malignant"], "sensitivity": support["malignant"],
            "specificity": support["benign"]}
    for key in CLASSIFICATION_SCALARS:
        # Point estimates from scikit-learn; intervals from the vectorised resample statistics.
        full[key] = {**_entry(point, ci, key, n_of.get(key, n)), "value": full[key]}
    if cls_data["unlabelled"]:
        full["notes"].append(f"{len(cls_data['unlabelled'])} case(s) without a known class were left out: "
                             f"{_names(cls_data['unlabelled'])}")
    if cls_data["extra_rows"]:
        full["notes"].append(f"{len(cls_data['extra_rows'])} row(s) of {cls_data['csv']} have no ground-truth "
                             f"mask and were ignored: {_names(cls_data['extra_rows'])}")
    full["unlabelled_cases"] = cls_data["unlabelled"]
    full["extra_rows"] = cls_data["extra_rows"]
    return full


def _images_dir(gt_dir: Path, images_dir: str | Path | None) -> Path | None:
    if images_dir is not None:
        if not Path(images_dir).is_dir():
            raise FileNotFoundError(f"images folder {images_dir} does not exist")
        return Path(images_dir)
    default = gt_dir.parent / "imagesTr"
    return default if default.is_dir() else None


def _find_image(images_dir: Path | None, cid: str) -> np.ndarray | None:
    if images_dir is None:
        return None
    for name in (f"{cid}_0000.png", f"{cid}.png"):
        if (images_dir / name).is_file():
            return read_grey_image(images_dir / name)
    return None


def _write_figures(fig_dir: Path, metrics, cls_data, per_case, gts, preds, images_dir) -> list[Path]:
    from nnunet_phyjoint.evaluation import figures as figs

    files = []
    lesion_rows = sorted((r for r in per_case if r["gt_pixels"] > 0), key=lambda r: (r["dsc"], r["case_id"]))
    panels = []
    if lesion_rows:
        picks = (("best", lesion_rows[-1]), ("median", lesion_rows[len(lesion_rows) // 2]), ("worst", lesion_rows[0]))
        for title, row in picks:
            cid = row["case_id"]
            caption = f"{title} DSC {row['dsc']:.3f}"
            if row.get("predicted_class"):  # the diagnosis beside the mask
                called = row["predicted_class"]
                caption += (f"\n{row.get('gt_class') or 'class unknown'}, called {called} "
                            f"(p {row.get(f'prob_{called}', float('nan')):.2f})")
            panels.append((caption, cid, _find_image(images_dir, cid), gts[cid], preds[cid]))
    files.append(figs.plot_overlays(panels, fig_dir / "overlays_best_median_worst.png"))
    cls = metrics["classification"]
    if cls is not None:
        known = cls_data["y_true"] >= 0
        files.append(figs.plot_roc_curves(cls_data["y_true"][known], cls_data["probs"][known], fig_dir / "roc_curves.png"))
        files.append(figs.plot_confusion_matrix(cls["confusion_matrix"], fig_dir / "confusion_matrix.png"))
    if metrics.get("by_scanner"):
        files.append(figs.plot_by_group(metrics["by_scanner"], "scanner", fig_dir / "by_scanner.png"))
    if metrics.get("by_fold"):
        files.append(figs.plot_by_group(metrics["by_fold"], "fold", fig_dir / "by_fold.png"))
    return files
