"""PhyJointTrainer: nnU-Net's trainer plus a diagnosis head, composed through nnU-Net's hooks.

What changes relative to ``nnUNetTrainer`` (everything else is nnU-Net's own loop):

- every batch gets class targets looked up from the case metadata in dataset.json;
- the physics style shift (AdaIN on frozen VGG-19 features towards an image of another scanner,
  decoded back to an image) on the training device, inside the training step, with p=0.3;
- the loss is Eq. (6): α·DiceFocal(mask, deep supervision) + (1-α)·weighted CE(class), class
  weights from the training fold's frequencies; deep supervision the way UNet++ defines it (every
  level-0 node, all at full resolution, equal weights); focal γ = 0 by default (γ = 2 kept the mask
  at the all-foreground solution, ``docs/training-recipe.md``);
- latent feature augmentation (noise + intra-class mixing) for the fold's minority classes,
  applied to the features that the classification head sees, in training only;
- bitsandbytes' AdamW8bit (torch's AdamW in ``PhyJointTrainer_AdamW``), lr 1e-3 for the pretrained
  encoder and 1e-2 for the new layers (CBAM, decoder, heads; the paper's 1e-4 for everything in
  ``PhyJointTrainer_paper``), weight decay 1e-2,
  nnU-Net's polynomial learning-rate decay; at most 200 epochs; one epoch = one pass over the
  training fold; early stopping (patience 10) on the validation Dice of a full, ordered pass over
  the validation fold, which also selects ``checkpoint_best``;
- validation logs accuracy, macro F1 and macro AUC of the diagnosis each epoch (progress.png);
- ultrasound-aware spatial augmentation: rotation ±30° and left-right mirroring only (depth
  runs top to bottom in an ultrasound image; shadowing and enhancement point downwards);
- ``perform_actual_validation`` also writes ``validation/classification.csv`` and gates the masks by
  the diagnosis (a case called normal gets an empty mask; ``summary_ungated.json`` keeps the raw score).

Hyperparameters are class attributes so that variants are one-line subclasses; α can also be
set with the environment variable ``PHYJOINT_ALPHA``. The pieces live beside this module:
``joint_loss_setup`` (the loss), ``optimizer_setup`` and ``param_groups`` (optimizer, schedule),
``style_shift_setup``, ``sequential_loader`` and ``validation_epoch`` (per-epoch validation),
``final_validation`` (diagnoses, gating), ``early_stopping``, ``progress_logger``, ``cpu_threads``;
the variants are in ``variants`` (to choose from) and ``ablation_variants`` (docs/training-recipe.md).
"""
from __future__ import annotations

import math
import os
from functools import partial
from typing import List

import numpy as np
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.helpers import dummy_context
from torch import autocast

from nnunet_phyjoint.metadata import load_case_metadata
from nnunet_phyjoint.training.cpu_threads import limit_cpu_threads
from nnunet_phyjoint.training.early_stopping import PATIENCE_ENV, is_new_best, patience_from_env, should_stop
from nnunet_phyjoint.training.final_validation import (
    diagnosis_metrics as _diagnosis_metrics,  # noqa: F401  (its old name here)
    finish_final_validation, gate_validation_masks, write_validation_classification,
)
from nnunet_phyjoint.training.joint_loss_setup import build_joint_loss, deep_supervision_weights
from nnunet_phyjoint.training.optimizer_setup import configure_optimizer
from nnunet_phyjoint.training.progress_logger import PhyJointLocalLogger
from nnunet_phyjoint.training.style_shift_setup import build_style_shift
from nnunet_phyjoint.training.validation_epoch import case_counts, summarise_pass
from nnunet_phyjoint.training.wall_clock_budget import StopTraining


class _EarlyStop(StopTraining):
    """Raised from on_epoch_end to leave nnU-Net's epoch loop (early stopping; a wall-clock budget raises its base)."""


class PhyJointTrainer(nnUNetTrainer):
    loss_alpha: float = 0.5
    max_epochs: int = 200
    early_stopping_patience: int = 10
    # the recipe measured in docs/training-recipe.md; PhyJointTrainer_paper keeps the paper's literal one
    learning_rate: float = 1e-3  # the encoder's rate (paper: 1e-4)
    # CBAM, decoder, heads; None: learning_rate. 1e-2 ends the "dead start" of short budgets (docs/training-recipe.md)
    new_layers_learning_rate: float | None = 1e-2
    warmup_epochs: int = 0
    adamw_weight_decay: float = 1e-2
    use_deep_supervision: bool = True
    deep_supervision_weighting: str = "auto"  # "equal", "halving" (nnU-Net's); auto: by the decoder's layout
    focal_gamma: float = 0.0  # paper: 2; at 0 the focal term is the cross-entropy
    # segmentation heads start at p(lesion) = 0.01 (RetinaNet's prior); None: PyTorch's default init (paper)
    seg_head_prior: float | None = 0.01
    # std of the heads' weights under the prior init; None: 1/sqrt(fan_in) (docs/training-recipe.md)
    seg_head_weight_std: float | None = 0.01
    dice_weight: float = 1.0
    focal_weight: float = 1.0
    batch_dice: bool | None = None  # None: the plans' batch_dice
    gate_normal_masks: bool = True  # final validation: empty mask where the diagnosis is normal
    use_latent_augmentation: bool = True
    optimizer_name: str = "adamw8bit"
    rotation_degrees: float = 30.0
    checkpoint_every: int = 1
    style_shift_probability: float = 0.3
    style_fit_kwargs: dict | None = None  # e.g. {"steps": 20} for short CPU runs

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        limit_cpu_threads(self.device)
        self.initial_lr = self.learning_rate
        self.enable_deep_supervision = self.use_deep_supervision
        self.weight_decay = self.adamw_weight_decay
        self.num_epochs = self.max_epochs
        self.save_every = self.checkpoint_every
        self.alpha = float(os.environ.get("PHYJOINT_ALPHA", self.loss_alpha))
        self.early_stopping_patience = patience_from_env(self.early_stopping_patience)
        self.case_metadata = load_case_metadata(dataset_json)
        self.logger.local_logger = PhyJointLocalLogger()
        self.latent_augmentation = None
        self.class_weights = None
        self.style_shift = None

    # ------------------------------------------------------------------ network
    @staticmethod
    def build_network_architecture(plans_manager, configuration_manager, num_input_channels, num_output_channels,
                                   enable_deep_supervision: bool = True) -> torch.nn.Module:
        from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

        from nnunet_phyjoint.preprocessing import adopt_plans_preprocessor

        name = configuration_manager.network_arch_class_name
        if not name.startswith("nnunet_phyjoint."):
            raise RuntimeError(
                f"PhyJointTrainer needs PhyJoint plans (network {name!r} found). Run `phyjoint plan -d ID` and "
                "train with -p PhyJointPlans.")
        # nnUNetv2_predict preprocesses new images with this very manager: letterbox plans need our preprocessor
        adopt_plans_preprocessor(configuration_manager)
        return get_network_from_plans(name, configuration_manager.network_arch_init_kwargs,
                                      configuration_manager.network_arch_init_kwargs_req_import,
                                      num_input_channels, num_output_channels, allow_init=True,
                                      deep_supervision=enable_deep_supervision)

    def initialize(self):
        first = not self.was_initialized
        super().initialize()
        if first and self.seg_head_prior is not None:
            # training starts from "no lesion anywhere" instead of p = 0.5 per pixel, whose all-foreground
            # masks the decoder otherwise spends its first epochs unlearning (docs/training-recipe.md, round 2, R3);
            # a resumed or predicting run loads trained heads over this
            self._bare_network().decoder.initialise_heads(self.seg_head_prior, self.seg_head_weight_std)
            std = "1/sqrt(fan_in)" if self.seg_head_weight_std is None else f"{self.seg_head_weight_std:g}"
            self.print_to_log_file(f"segmentation heads initialised at p(lesion) = {self.seg_head_prior:g}, "
                                   f"weight std {std}")

    def _bare_network(self) -> torch.nn.Module:
        from torch._dynamo import OptimizedModule

        net = self.network.module if self.is_ddp else self.network
        return net._orig_mod if isinstance(net, OptimizedModule) else net

    def _get_deep_supervision_scales(self):
        if not self.enable_deep_supervision:
            return None
        return [[1.0 / s] * 2 for s in self._bare_network().output_strides]

    # ------------------------------------------------------------------ labels, loss, optimizer
    def class_targets(self, keys) -> torch.Tensor:
        """Class index of every case in a batch, from dataset.json's metadata."""
        try:
            return torch.tensor([self.case_metadata[k].class_index for k in keys], dtype=torch.long)
        except KeyError as e:
            raise KeyError(f"case {e} has no entry in dataset.json's phyjoint metadata") from None

    def _training_labels(self) -> list[int]:
        tr_keys, _ = self.do_split()
        return [self.case_metadata[k].class_index for k in tr_keys]

    def _build_loss(self):
        return build_joint_loss(self)  # Eq. (6); also sets class_weights and latent_augmentation

    def _deep_supervision_weights(self, n: int) -> np.ndarray:
        """Loss weight of each deep-supervision output (highest resolution / deepest decoding first), summing to 1."""
        return deep_supervision_weights(self.deep_supervision_weighting, self._bare_network().decoder.supervision, n,
                                        ddp_without_compile=lambda: self.is_ddp and not self._do_i_compile())

    def configure_optimizers(self):
        return configure_optimizer(self)  # encoder and new-layer groups, each with its own poly decay

    # ------------------------------------------------------------------ data
    def configure_rotation_dummyDA_mirroring_and_inital_patch_size(self):
        from nnunetv2.training.data_augmentation.compute_initial_patch_size import get_patch_size

        patch_size = self.configuration_manager.patch_size
        if len(patch_size) != 2:
            return super().configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        r = math.radians(self.rotation_degrees)
        rotation = (-r, r)
        mirror_axes = (1,)  # left-right only: depth (axis 0) has a direction in ultrasound
        initial_patch_size = get_patch_size(patch_size, rotation, rotation, rotation, (0.85, 1.25))
        self.inference_allowed_mirroring_axes = mirror_axes
        return rotation, False, initial_patch_size, mirror_axes

    def get_dataloaders(self):
        from batchgenerators.dataloading.single_threaded_augmenter import SingleThreadedAugmenter

        from nnunet_phyjoint.preprocessing import check_preprocessed_scaling
        from nnunet_phyjoint.training.sequential_loader import ordered_validation_loader

        mt_train, mt_val = super().get_dataloaders()
        if hasattr(mt_val, "_finish"):
            mt_val._finish()
        dataset_tr, dataset_val = self.get_tr_and_val_datasets()
        check_preprocessed_scaling(self.configuration_manager.configuration, dataset_tr)
        dl_val = ordered_validation_loader(self, dataset_val)  # one ordered pass per epoch, every case once
        world = torch.distributed.get_world_size() if self.is_ddp else 1
        # one epoch = one pass over the training fold (nnU-Net samples with replacement)
        self.num_iterations_per_epoch = max(1, math.ceil(len(dataset_tr.identifiers) / (self.batch_size * world)))
        self.num_val_iterations_per_epoch = dl_val.batches_per_pass()
        self.print_to_log_file(f"{self.num_iterations_per_epoch} training and {self.num_val_iterations_per_epoch} "
                               f"validation iterations per epoch (batch size {self.batch_size})")
        return mt_train, SingleThreadedAugmenter(dl_val, None)

    # ------------------------------------------------------------------ steps
    def _to_device(self, batch: dict):
        data = batch["data"].to(self.device, non_blocking=True)
        target = batch["target"]
        target = [t.to(self.device, non_blocking=True) for t in target] if isinstance(target, list) \
            else target.to(self.device, non_blocking=True)
        return data, target, self.class_targets(batch["keys"]).to(self.device, non_blocking=True)

    def on_train_start(self):
        super().on_train_start()
        encoder = getattr(self._bare_network(), "encoder", None)
        if hasattr(encoder, "weights_report"):  # timm/torch log it through logging, which nnU-Net's log misses
            self.print_to_log_file(encoder.weights_report, also_print_to_console=True)
        if self.early_stopping_patience != type(self).early_stopping_patience:
            self.print_to_log_file(f"early stopping patience {self.early_stopping_patience} from {PATIENCE_ENV}"
                                   + (" (off)" if self.early_stopping_patience == 0 else ""))
        if self.style_shift_probability > 0:
            self.style_shift = self._build_style_shift()

    def _build_style_shift(self):
        """The fold's style-shift augmenter, or None when it is off (:func:`~.style_shift_setup.build_style_shift`)."""
        return build_style_shift(self)

    def augment_input(self, data: torch.Tensor, keys: list[str]) -> torch.Tensor:
        """Input-level augmentation on the training device: the physics style shift (masks untouched)."""
        if self.style_shift is None:
            return data
        shifted, _, _ = self.style_shift(data, keys)
        return shifted

    def train_step(self, batch: dict) -> dict:
        data, target, cls_target = self._to_device(batch)
        data = self.augment_input(data, list(batch["keys"]))
        latent = partial(self.latent_augmentation, labels=cls_target) if self.latent_augmentation is not None else None

        self.optimizer.zero_grad(set_to_none=True)
        with autocast(self.device.type, enabled=True) if self.device.type == "cuda" else dummy_context():
            seg, cls_logits = self.network(data, return_class_logits=True, latent_augment=latent)
            loss, seg_loss, cls_loss = self.loss(seg, target, cls_logits, cls_target)

        if self.grad_scaler is not None:
            self.grad_scaler.scale(loss).backward()
            self.grad_scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.network.parameters(), 12)
            self.grad_scaler.step(self.optimizer)
            self.grad_scaler.update()
        else:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.network.parameters(), 12)
            self.optimizer.step()
        return {"loss": loss.detach().cpu().numpy(), "seg_loss": seg_loss.cpu().numpy(),
                "cls_loss": cls_loss.cpu().numpy()}

    def on_train_epoch_end(self, train_outputs: List[dict]):
        super().on_train_epoch_end(train_outputs)
        for key, name in (("seg_loss", "train_seg_losses"), ("cls_loss", "train_cls_losses")):
            values = self._gather([o[key] for o in train_outputs])
            self.logger.log(name, float(np.mean(values)), self.current_epoch)

    def on_validation_epoch_start(self):
        super().on_validation_epoch_start()
        self.dataloader_val.data_loader.restart()

    def validation_step(self, batch: dict) -> dict:
        data, target, cls_target = self._to_device(batch)
        with autocast(self.device.type, enabled=True) if self.device.type == "cuda" else dummy_context():
            seg, cls_logits = self.network(data, return_class_logits=True)
            loss, _, _ = self.loss(seg, target, cls_logits, cls_target)
        if self.enable_deep_supervision:
            seg, target = seg[0], target[0]
        return {"loss": float(loss.detach().cpu()), "keys": list(batch["keys"]), **case_counts(seg, target),
                "probs": torch.softmax(cls_logits.float(), 1).detach().cpu().numpy(),
                "labels": cls_target.cpu().numpy()}

    def _gather(self, values: list) -> list:
        if not self.is_ddp:
            return values
        import torch.distributed as dist

        gathered = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, values)
        return [v for part in gathered for v in part]

    def on_validation_epoch_end(self, val_outputs: List[dict]):
        n_cases, dice, loss, metrics = summarise_pass(self._gather(val_outputs))
        self.logger.log("mean_fg_dice", float(np.nanmean(dice)) if not all(map(math.isnan, dice)) else 0.0,
                        self.current_epoch)
        self.logger.log("dice_per_class_or_region", dice, self.current_epoch)
        self.logger.log("val_losses", loss, self.current_epoch)
        self.logger.log("val_class_accuracy", metrics["accuracy"], self.current_epoch)
        self.logger.log("val_class_macro_f1", metrics["f1_macro"], self.current_epoch)
        self.logger.log("val_class_macro_auc", metrics["auc_macro"], self.current_epoch)
        self.print_to_log_file(f"val ({n_cases} cases): Dice {np.round(dice, 4).tolist()}, diagnosis accuracy "
                               f"{metrics['accuracy']:.4f}, macro F1 {metrics['f1_macro']:.4f}, "
                               f"macro AUC {metrics['auc_macro']:.4f}")

    # ------------------------------------------------------------------ epochs, checkpoints
    def on_epoch_end(self):
        history = self.logger.get_value("mean_fg_dice", step=None)
        if self.local_rank == 0 and is_new_best(history):
            self._best_ema = history[-1]
            self.print_to_log_file(f"New best validation Dice: {np.round(history[-1], 4)}")
            self.save_checkpoint(os.path.join(self.output_folder, "checkpoint_best.pth"))
        # nnU-Net would pick checkpoint_best on its EMA pseudo Dice; we have picked ours above
        best = self._best_ema
        self._best_ema = math.inf
        try:
            super().on_epoch_end()
        finally:
            self._best_ema = best
        if should_stop(history, self.early_stopping_patience) and self.current_epoch < self.num_epochs:
            self.print_to_log_file(f"Early stopping: no better validation Dice for {self.early_stopping_patience} "
                                   f"epochs (best {np.round(max(history), 4)}).")
            raise _EarlyStop

    def run_training(self):
        try:
            super().run_training()
        except StopTraining:
            self.on_train_end()

    def save_checkpoint(self, filename: str) -> None:
        # written beside the target and renamed, so that an interrupted run never leaves half a checkpoint
        tmp = f"{filename}.partial"
        super().save_checkpoint(tmp)
        if os.path.isfile(tmp):
            os.replace(tmp, filename)

    # ------------------------------------------------------------------ final validation
    def perform_actual_validation(self, save_probabilities: bool = False):
        """nnU-Net's final validation, then the diagnoses (``classification.csv``) and the gated masks.

        ``validation/summary.json`` is written last (:mod:`~nnunet_phyjoint.training.final_validation`).
        """
        super().perform_actual_validation(save_probabilities)
        if self.local_rank == 0:
            finish_final_validation(self)

    def _gate_validation_masks(self, rows: dict[str, np.ndarray], ungated_summary: str | None = None) -> None:
        gate_validation_masks(self, rows, ungated_summary)

    def _write_validation_classification(self) -> dict[str, np.ndarray]:
        return write_validation_classification(self)
