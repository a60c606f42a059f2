"""Joint loss of the paper, Eq. (6): α·DiceFocal(mask) + (1-α)·weighted CE(diagnosis).

The segmentation part reuses nnU-Net's soft Dice (``MemoryEfficientSoftDiceLoss``, foreground
only, as in nnU-Net's default ``DC_and_CE_loss``) and replaces its cross-entropy with a focal
term, which down-weights the many easy background pixels of small lesions. nnU-Net's
``DeepSupervisionWrapper`` is applied around it by the trainer.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class FocalLoss(nn.Module):
    """Multi-class focal loss on softmax probabilities (Lin et al. 2017), mean over pixels.

    ``target`` has nnU-Net's layout (B, 1, H, W) with integer label values.
    """

    def __init__(self, gamma: float = 2.0):
        super().__init__()
        self.gamma = gamma

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        t = target[:, 0].long() if target.ndim == logits.ndim else target.long()
        log_p = F.log_softmax(logits.float(), dim=1)
        log_p_t = log_p.gather(1, t[:, None])[:, 0]
        p_t = log_p_t.exp()
        return (-((1.0 - p_t) ** self.gamma) * log_p_t).mean()


class DiceFocalLoss(nn.Module):
    """nnU-Net's soft Dice (foreground classes) plus :class:`FocalLoss`."""

    def __init__(self, batch_dice: bool = False, gamma: float = 2.0, weight_dice: float = 1.0,
                 weight_focal: float = 1.0, ddp: bool = False):
        super().__init__()
        from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss
        from nnunetv2.utilities.helpers import softmax_helper_dim1

        self.dice = MemoryEfficientSoftDiceLoss(apply_nonlin=softmax_helper_dim1, batch_dice=batch_dice,
                                                do_bg=False, smooth=1e-5, ddp=ddp)
        self.focal = FocalLoss(gamma)
        self.weight_dice = weight_dice
        self.weight_focal = weight_focal

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.weight_dice * self.dice(logits, target) + self.weight_focal * self.focal(logits, target)


def balanced_class_weights(labels: Sequence[int], num_classes: int = 3) -> torch.Tensor:
    """Inverse-frequency ("balanced") class weights from the training fold's labels.

    Uses scikit-learn's ``compute_class_weight``; a class absent from the fold gets weight 1
    (it never occurs as a target, so its weight never enters the loss).
    """
    from sklearn.utils.class_weight import compute_class_weight

    labels = np.asarray(list(labels), dtype=int)
    if labels.size == 0:
        raise ValueError("cannot compute class weights from an empty training fold")
    present = np.unique(labels)
    w = np.ones(num_classes, dtype=np.float64)
    w[present] = compute_class_weight("balanced", classes=present, y=labels)
    return torch.tensor(w, dtype=torch.float32)


class JointLoss(nn.Module):
    """α·segmentation loss + (1-α)·weighted cross-entropy on the diagnosis logits.

    ``forward`` returns (total, segmentation part, classification part); the parts are
    detached copies for logging.
    """

    def __init__(self, segmentation_loss: nn.Module, class_weights: torch.Tensor, alpha: float = 0.5):
        super().__init__()
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
        self.segmentation_loss = segmentation_loss
        self.register_buffer("class_weights", class_weights.float().clone())
        self.alpha = alpha

    def forward(self, seg_output, seg_target, class_logits: torch.Tensor, class_target: torch.Tensor):
        seg = self.segmentation_loss(seg_output, seg_target)
        cls = F.cross_entropy(class_logits.float(), class_target.long(),
                              weight=self.class_weights.to(class_logits.device))
        total = self.alpha * seg + (1.0 - self.alpha) * cls
        return total, seg.detach(), cls.detach()
