"""Two learning rates, one schedule: a fine-tuning rate for the encoder, a higher one for the new layers.

The paper fine-tunes an ImageNet encoder at 1e-4. CBAM, the UNet++ decoder and the heads start
from random weights, and at 1e-4 they learn too slowly for the mask to leave the all-foreground
solution within a short budget (``docs/training-recipe.md``). The parameters are therefore split
into an encoder group and a "new layers" group, and nnU-Net's polynomial decay is applied to
each group's own starting rate (nnU-Net's ``PolyLRScheduler`` would set every group to one rate).
"""
from __future__ import annotations

from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import _LRScheduler


def encoder_and_new_layer_groups(network: nn.Module, encoder_lr: float, new_layers_lr: float) -> list[dict]:
    """Optimizer parameter groups: ``network.encoder`` at ``encoder_lr``, everything else at ``new_layers_lr``.

    A network without an ``encoder`` attribute gets one group at ``new_layers_lr``.
    """
    encoder = getattr(network, "encoder", None)
    encoder_ids = {id(p) for p in encoder.parameters()} if isinstance(encoder, nn.Module) else set()
    enc = [p for p in network.parameters() if id(p) in encoder_ids and p.requires_grad]
    new = [p for p in network.parameters() if id(p) not in encoder_ids and p.requires_grad]
    groups = []
    if enc:
        groups.append({"params": enc, "lr": encoder_lr, "name": "encoder"})
    if new:
        groups.append({"params": new, "lr": new_layers_lr, "name": "new_layers"})
    return groups


class GroupPolyLRScheduler(_LRScheduler):
    """nnU-Net's poly decay, ``lr_g * (1 - step / max_steps) ** exponent``, for each group's own ``lr_g``.

    Optional linear warm-up over the first ``warmup_steps`` steps (from ``lr_g / (warmup_steps + 1)``).
    ``step(current_step)`` has nnU-Net's signature (it passes the epoch).
    """

    def __init__(self, optimizer: Optimizer, max_steps: int, exponent: float = 0.9, warmup_steps: int = 0) -> None:
        self.start_lrs = [float(g["lr"]) for g in optimizer.param_groups]
        self.max_steps = max_steps
        self.exponent = exponent
        self.warmup_steps = warmup_steps
        self.ctr = 0
        super().__init__(optimizer, -1)

    def factor(self, step: int) -> float:
        """Multiplier of every group's starting rate at ``step``."""
        poly = max(0.0, 1 - step / self.max_steps) ** self.exponent
        if step < self.warmup_steps:
            poly *= (step + 1) / (self.warmup_steps + 1)
        return poly

    def step(self, current_step: int | None = None) -> None:  # noqa: D102 (nnU-Net's signature)
        if current_step is None or current_step == -1:
            current_step = self.ctr
            self.ctr += 1
        f = self.factor(current_step)
        for group, lr in zip(self.optimizer.param_groups, self.start_lrs):
            group["lr"] = lr * f
        self._last_lr = [g["lr"] for g in self.optimizer.param_groups]

    def get_last_lr(self) -> list[float]:
        return self._last_lr
