"""nnU-Net's local logger plus the diagnosis metrics, drawn as a fourth panel of progress.png."""
from __future__ import annotations

from nnunetv2.training.logging.nnunet_logger import LocalLogger

DIAGNOSIS_KEYS = ("val_class_accuracy", "val_class_macro_f1", "val_class_macro_auc",
                  "train_seg_losses", "train_cls_losses")


class PhyJointLocalLogger(LocalLogger):
    """Adds our per-epoch lists (saved in checkpoints with the rest) and plots them."""

    def __init__(self, verbose: bool = False):
        super().__init__(verbose)
        for key in DIAGNOSIS_KEYS:
            self.my_fantastic_logging[key] = []

    def load_checkpoint(self, checkpoint: dict):
        super().load_checkpoint(checkpoint)
        for key in DIAGNOSIS_KEYS:  # checkpoints of older runs may lack them
            self.my_fantastic_logging.setdefault(key, [])

    def plot_progress_png(self, output_folder):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        log = self.my_fantastic_logging
        epoch = min(len(v) for v in log.values()) - 1
        if epoch < 0:
            return
        x = list(range(epoch + 1))
        fig, axes = plt.subplots(4, 1, figsize=(12, 20))
        ax = axes[0]
        ax.plot(x, log["train_losses"][:epoch + 1], "b-", label="loss_tr (joint)")
        ax.plot(x, log["val_losses"][:epoch + 1], "r-", label="loss_val (joint)")
        ax.plot(x, log["train_seg_losses"][:epoch + 1], "b:", label="loss_tr segmentation")
        ax.plot(x, log["train_cls_losses"][:epoch + 1], "b--", label="loss_tr diagnosis")
        ax.set_xlabel("epoch"); ax.set_ylabel("loss")
        ax2 = ax.twinx()
        ax2.plot(x, log["mean_fg_dice"][:epoch + 1], "g:", label="val Dice (full pass)")
        ax2.plot(x, log["ema_fg_dice"][:epoch + 1], "g-", label="val Dice (mov. avg.)")
        ax2.set_ylabel("Dice")
        ax.legend(loc="upper left"); ax2.legend(loc="upper right")

        ax = axes[1]
        ax.plot(x, log["val_class_accuracy"][:epoch + 1], "m-", label="val accuracy")
        ax.plot(x, log["val_class_macro_f1"][:epoch + 1], "c-", label="val macro F1")
        ax.plot(x, log["val_class_macro_auc"][:epoch + 1], "k-", label="val macro AUC (OvR)")
        ax.set_ylim(0, 1.02); ax.set_xlabel("epoch"); ax.set_ylabel("diagnosis"); ax.legend(loc="lower right")

        ax = axes[2]
        durations = [e - s for e, s in zip(log["epoch_end_timestamps"][:epoch + 1],
                                           log["epoch_start_timestamps"][:epoch + 1])]
        ax.plot(x, durations, "b-", label="epoch duration")
        ax.set_ylim(bottom=0); ax.set_xlabel("epoch"); ax.set_ylabel("time [s]"); ax.legend(loc="upper left")

        ax = axes[3]
        ax.plot(x, log["lrs"][:epoch + 1], "b-", label="learning rate")
        ax.set_xlabel("epoch"); ax.set_ylabel("learning rate"); ax.legend(loc="upper left")
        fig.tight_layout()
        fig.savefig(f"{output_folder}/progress.png")
        plt.close(fig)
