"""``nnUNetPredictor`` that also returns the diagnosis of every case.

nnU-Net's predictor only knows segmentation logits. We let it run exactly as usual (mirroring,
Gaussian sliding windows, fold averaging, export in worker processes) and capture the class
logits of every forward pass it makes: the class probabilities of a case are the mean softmax
over all mirrors, tiles and folds. They are written to ``classification.csv`` in each output
folder (a CSV, because ``nnUNetv2_ensemble`` takes every ``*.npz`` of a folder). New images are
preprocessed with the plans' input scaling (:mod:`nnunet_phyjoint.preprocessing`: letterbox plans
letterbox every image, as in training).
"""
from __future__ import annotations

import json
import os
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

from nnunet_phyjoint.progress import is_terminal

CLASSIFICATION_FILE = "classification.csv"


class _ClassLogitCapture:
    """Stands in for the network during one mirrored forward: returns the segmentation, keeps the diagnosis."""

    def __init__(self, network: torch.nn.Module, sink: list):
        self.network = network
        self.sink = sink

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        seg, class_logits = self.network(x, return_class_logits=True)
        self.sink.append(torch.softmax(class_logits.float(), dim=1).cpu())
        return seg


class PhyJointPredictor(nnUNetPredictor):
    """Segmentation as nnU-Net does it, plus averaged class probabilities per case.

    After a prediction, :attr:`last_class_probabilities` holds the probabilities of the last
    image and :attr:`class_probabilities` maps case id -> probabilities for every case predicted
    from files.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.allow_tqdm and not is_terminal(sys.stderr):
            # in a log nnU-Net's bars are carriage-return redraws; its "done with CASE" lines are the progress
            self.allow_tqdm = False
        self.last_class_probabilities: np.ndarray | None = None
        self.class_probabilities: dict[str, np.ndarray] = {}
        self._window_sink: list[torch.Tensor] = []
        self._per_network: list[np.ndarray] = []
        self._current_output: str | None = None

    @property
    def configuration_manager(self):
        return self._configuration_manager

    @configuration_manager.setter
    def configuration_manager(self, manager) -> None:
        # every way nnU-Net initialises a predictor assigns this attribute; letterbox plans need our preprocessor
        from nnunet_phyjoint.preprocessing import with_plans_preprocessor

        self._configuration_manager = with_plans_preprocessor(manager)

    def initialize_from_trained_model_folder(self, model_training_output_dir: str, use_folds,
                                             checkpoint_name: str = "checkpoint_final.pth"):
        """As nnU-Net's, and also for folders written by ``phyjoint export`` (packed INT8/INT4 weights).

        An exported folder is recognised by ``fold_X/export.json``; it is read from JSON and
        safetensors only, never unpickled.
        """
        from nnunet_phyjoint.network.encoder_weights import weights_from_checkpoint
        from nnunet_phyjoint.quantization.export import INFO_FILE

        folder = Path(model_training_output_dir)
        if not any(folder.glob(f"fold_*/{INFO_FILE}")):
            with weights_from_checkpoint():  # the trained weights replace whatever the plans ask the encoder for
                return super().initialize_from_trained_model_folder(model_training_output_dir, use_folds,
                                                                    checkpoint_name)
        from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

        from nnunet_phyjoint.quantization.export import load_exported_network

        if use_folds is None:
            use_folds = sorted(p.parent.name[len("fold_"):] for p in folder.glob(f"fold_*/{INFO_FILE}"))
        if isinstance(use_folds, (str, int)):
            use_folds = [use_folds]
        networks = [load_exported_network(folder, f) for f in use_folds]
        network, info = networks[0]
        plans_manager = PlansManager(json.loads((folder / "plans.json").read_text()))
        self.manual_initialization(
            network, plans_manager, plans_manager.get_configuration(info["configuration"]),
            [n.state_dict() for n, _ in networks], json.loads((folder / "dataset.json").read_text()),
            info["trainer_name"], tuple(info["inference_allowed_mirroring_axes"] or ()) or None)
        print(f"exported {info['bits']}-bit model, folds {list(use_folds)}: {folder}")

    def _internal_maybe_mirror_and_predict(self, x: torch.Tensor) -> torch.Tensor:
        network = self.network
        self.network = _ClassLogitCapture(network, self._window_sink)
        try:
            return super()._internal_maybe_mirror_and_predict(x)
        finally:
            self.network = network

    @torch.inference_mode()
    def predict_sliding_window_return_logits(self, input_image: torch.Tensor):
        self._window_sink = []
        logits = super().predict_sliding_window_return_logits(input_image)
        probs = torch.cat(self._window_sink).mean(0).numpy()
        self._per_network.append(probs)
        self.last_class_probabilities = probs
        return logits

    def predict_logits_from_preprocessed_data(self, data: torch.Tensor) -> torch.Tensor:
        self._per_network = []
        logits = super().predict_logits_from_preprocessed_data(data)
        self.last_class_probabilities = np.mean(self._per_network, axis=0)
        if self._current_output is not None:
            self.class_probabilities[self._current_output] = self.last_class_probabilities
        return logits

    def predict_from_data_iterator(self, data_iterator, save_probabilities: bool = False,
                                   num_processes_segmentation_export: int = 2):
        self.class_probabilities = {}

        def remember_case(iterator):
            for index, item in enumerate(iterator):
                self._current_output = item["ofile"] if item["ofile"] is not None else f"case_{index:05d}"
                yield item

        try:
            ret = super().predict_from_data_iterator(remember_case(data_iterator), save_probabilities,
                                                     num_processes_segmentation_export)
        except BaseException:
            # a later case failed: keep the diagnosis of every case whose mask was written (nnU-Net drops
            # exports still queued), so that what is on disk stays consistent and is not lost
            ending = self.dataset_json["file_ending"]
            self.class_probabilities = {o: p for o, p in self.class_probabilities.items()
                                        if os.path.isfile(o + ending)}
            raise
        finally:
            self._current_output = None
            self.write_classification_files()
        return ret

    def write_classification_files(self) -> list[str]:
        """Write/extend ``classification.csv`` in every output folder that got predictions."""
        from nnunet_phyjoint.evaluation.io import read_classification_csv, write_classification_csv

        by_folder: dict[str, dict[str, np.ndarray]] = defaultdict(dict)
        for ofile, probs in self.class_probabilities.items():
            if os.path.dirname(ofile):
                by_folder[os.path.dirname(ofile)][os.path.basename(ofile)] = probs
        written = []
        for folder, rows in by_folder.items():
            path = os.path.join(folder, CLASSIFICATION_FILE)
            # keep rows of cases predicted earlier (nnU-Net's --continue_prediction skips them)
            merged = read_classification_csv(path) if os.path.isfile(path) else {}
            merged.update(rows)
            write_classification_csv(path, merged)
            written.append(path)
        return written
