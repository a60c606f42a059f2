"""The per-epoch validation score of a PhyJointTrainer: one ordered pass, every case counted once.

:func:`case_counts` turns a validation batch into per-case Dice counts; :func:`summarise_pass`
folds a pass's outputs into the foreground Dice per class, the mean loss and the diagnosis's
accuracy, macro F1 and macro AUC.
"""
from __future__ import annotations

import numpy as np
import torch

from nnunet_phyjoint.training.final_validation import diagnosis_metrics


def case_counts(seg: torch.Tensor, target: torch.Tensor) -> dict[str, np.ndarray]:
    """tp, fp, fn of every case and foreground class of one batch (hard argmax prediction)."""
    from nnunetv2.training.loss.dice import get_tp_fp_fn_tn

    onehot = torch.zeros(seg.shape, device=seg.device, dtype=torch.float32)
    onehot.scatter_(1, seg.argmax(1)[:, None], 1)
    tp, fp, fn, _ = get_tp_fp_fn_tn(onehot, target, axes=list(range(2, seg.ndim)))
    return {"tp": tp[:, 1:].detach().cpu().numpy(), "fp": fp[:, 1:].detach().cpu().numpy(),
            "fn": fn[:, 1:].detach().cpu().numpy()}


def summarise_pass(outputs: list[dict]) -> tuple[int, list[float], float, dict[str, float]]:
    """``(cases, dice per foreground class, mean loss, diagnosis metrics)`` of one pass's step outputs.

    The last batch of a pass wraps around: every case is counted once (its first occurrence).
    """
    per_case, losses = {}, []
    for out in outputs:
        losses.append(out["loss"])
        for i, key in enumerate(out["keys"]):
            per_case.setdefault(key, (out["tp"][i], out["fp"][i], out["fn"][i], out["probs"][i],
                                      out["labels"][i]))
    tp, fp, fn = (np.sum([v[j] for v in per_case.values()], 0) for j in range(3))
    dice = [float(2 * a / (2 * a + b + c)) if (2 * a + b + c) > 0 else float("nan") for a, b, c in zip(tp, fp, fn)]
    metrics = diagnosis_metrics(np.array([v[4] for v in per_case.values()]),
                                np.stack([v[3] for v in per_case.values()]))
    return len(per_case), dice, float(np.mean(losses)), metrics
