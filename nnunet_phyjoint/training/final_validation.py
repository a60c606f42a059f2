"""What PhyJointTrainer adds to nnU-Net's final validation: the diagnoses and the diagnosis-gated masks.

After nnU-Net has written the validation masks and scored them into ``validation/summary.json``:

- every validation case is predicted once more for its diagnosis (``validation/classification.csv``);
- the masks of cases diagnosed normal are emptied (originals kept aside) and re-scored into
  ``summary.json``; nnU-Net's score of the raw masks becomes ``summary_ungated.json``.

``summary.json`` marks a finished final validation (nnU-Net's ``--val``, the benchmark's resume), so
nnU-Net's own summary is set aside while the diagnoses and the gating are written and is put back
(or replaced by the gated one) last: an interrupted run leaves no ``summary.json`` behind.

The functions take the trainer (``PhyJointTrainer``) as their first argument.
"""
from __future__ import annotations

import os

import numpy as np
import torch

from nnunet_phyjoint.evaluation.classification_metrics import scalar_metrics


def diagnosis_metrics(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """Accuracy, macro F1, macro one-vs-rest AUC (evaluation's conventions: undefined classes left out)."""
    return scalar_metrics(labels, probabilities, probabilities.argmax(1))


def finish_final_validation(trainer) -> None:
    """Diagnoses, then (if ``trainer.gate_normal_masks`` and the training fold has a normal case) the gated
    masks, then ``summary.json`` (rank 0 only).

    Goes through the trainer's ``_write_validation_classification`` and ``_gate_validation_masks``.
    """
    folder = os.path.join(trainer.output_folder, "validation")
    summary = os.path.join(folder, "summary.json")
    set_aside = os.path.join(folder, ".summary_nnunet.partial.json")
    if os.path.isfile(summary):
        os.replace(summary, set_aside)
    rows = trainer._write_validation_classification()
    from nnunet_phyjoint.inference.normal_gating import gating_off_reason

    off = gating_off_reason(training_labels=trainer._training_labels()) if trainer.gate_normal_masks else None
    if off:
        trainer.print_to_log_file(off)
    if trainer.gate_normal_masks and not off:
        trainer._gate_validation_masks(rows, set_aside)
    elif os.path.isfile(set_aside):
        os.replace(set_aside, summary)


def gate_validation_masks(trainer, rows: dict[str, np.ndarray], ungated_summary: str | None = None) -> None:
    """Empty the validation masks of cases diagnosed normal and re-score them into ``summary.json``.

    ``ungated_summary`` (nnU-Net's score of the raw masks) is kept as ``summary_ungated.json``.
    """
    from nnunetv2.evaluation.evaluate_predictions import compute_metrics_on_folder

    from nnunet_phyjoint.atomic_io import atomic_path
    from nnunet_phyjoint.inference.normal_gating import UNGATED_FOLDER, gate_masks

    folder = os.path.join(trainer.output_folder, "validation")
    gated = gate_masks(folder, rows, trainer.dataset_json["file_ending"])
    summary = os.path.join(folder, "summary.json")
    if ungated_summary and os.path.isfile(ungated_summary):
        os.replace(ungated_summary, os.path.join(folder, "summary_ungated.json"))
    labels = trainer.label_manager
    with atomic_path(summary) as partial:
        metrics = compute_metrics_on_folder(
            os.path.join(trainer.preprocessed_dataset_folder_base, "gt_segmentations"), folder, str(partial),
            trainer.plans_manager.image_reader_writer_class(), trainer.dataset_json["file_ending"],
            labels.foreground_regions if labels.has_regions else labels.foreground_labels,
            labels.ignore_label, chill=True, num_processes=1)
    trainer.print_to_log_file(
        f"diagnosis-gated masks: {len(gated)} of {len(rows)} validation cases called normal had a non-empty mask, "
        f"now empty (originals in validation/{UNGATED_FOLDER}); foreground Dice after gating "
        f"{metrics['foreground_mean']['Dice']:.4f}", also_print_to_console=True)


def write_validation_classification(trainer) -> dict[str, np.ndarray]:
    """Predict the diagnosis of every validation case; writes ``classification.csv``, returns the probabilities."""
    from nnunet_phyjoint.evaluation.io import write_classification_csv
    from nnunet_phyjoint.inference.predictor import PhyJointPredictor

    trainer.set_deep_supervision_enabled(False)
    trainer.network.eval()
    predictor = PhyJointPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=True,
                                  perform_everything_on_device=True, device=trainer.device, verbose=False,
                                  verbose_preprocessing=False, allow_tqdm=False)
    predictor.manual_initialization(trainer.network, trainer.plans_manager, trainer.configuration_manager, None,
                                    trainer.dataset_json, trainer.__class__.__name__,
                                    trainer.inference_allowed_mirroring_axes)
    _, val_keys = trainer.do_split()
    dataset_val = trainer.dataset_class(trainer.preprocessed_dataset_folder, val_keys)
    rows = {}
    for key in dataset_val.identifiers:
        data = torch.from_numpy(np.asarray(dataset_val.load_case(key)[0][:]))
        predictor.predict_sliding_window_return_logits(data)
        rows[key] = predictor.last_class_probabilities
    folder = os.path.join(trainer.output_folder, "validation")
    write_classification_csv(os.path.join(folder, "classification.csv"), rows)
    labels = np.array([trainer.case_metadata[k].class_index for k in rows])
    metrics = diagnosis_metrics(labels, np.stack(list(rows.values())))
    trainer.print_to_log_file(f"Validation diagnosis ({len(rows)} cases): accuracy {metrics['accuracy']:.4f}, "
                              f"macro F1 {metrics['f1_macro']:.4f}, macro AUC {metrics['auc_macro']:.4f}",
                              also_print_to_console=True)
    trainer.set_deep_supervision_enabled(True)
    return rows
