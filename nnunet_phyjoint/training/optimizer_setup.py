"""A PhyJointTrainer's optimizer and schedule: two parameter groups (encoder, new layers), poly decay.

The groups and the schedule are :mod:`nnunet_phyjoint.training.param_groups`; the optimizer
(bitsandbytes' AdamW8bit or torch's AdamW) is :func:`nnunet_phyjoint.optim.build_optimizer`.
"""
from __future__ import annotations


def configure_optimizer(trainer):
    """``(optimizer, lr_scheduler)`` for nnU-Net's ``configure_optimizers``, with one log line saying what."""
    from nnunet_phyjoint.optim import build_optimizer
    from nnunet_phyjoint.training.param_groups import GroupPolyLRScheduler, encoder_and_new_layer_groups

    new_lr = trainer.new_layers_learning_rate if trainer.new_layers_learning_rate is not None else trainer.initial_lr
    groups = encoder_and_new_layer_groups(trainer._bare_network(), trainer.initial_lr, new_lr)
    optimizer = build_optimizer(groups, trainer.optimizer_name, lr=trainer.initial_lr,
                                weight_decay=trainer.weight_decay)
    trainer.print_to_log_file(f"optimizer: {type(optimizer).__module__}.{type(optimizer).__name__}, lr "
                              + ", ".join(f"{g['name']} {g['lr']:g}" for g in groups)
                              + f", weight decay {trainer.weight_decay:g}, poly decay"
                              + (f", {trainer.warmup_epochs} warm-up epochs" if trainer.warmup_epochs else ""))
    return optimizer, GroupPolyLRScheduler(optimizer, trainer.num_epochs, warmup_steps=trainer.warmup_epochs)
