"""Unit tests of the trainer's parts: loss, class weights, early stopping, planning arithmetic, metrics."""
from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
import torch

from nnunet_phyjoint.losses import DiceFocalLoss, FocalLoss, JointLoss, balanced_class_weights
from nnunet_phyjoint.planning import make_phyjoint_configuration, whole_image_spacing
from nnunet_phyjoint.training.early_stopping import best_epoch, is_new_best, should_stop


def test_focal_loss_hand_value():
    logits = torch.tensor([0.0, math.log(3.0)]).view(1, 2, 1, 1)  # p(lesion) = 0.75
    target = torch.ones(1, 1, 1, 1)
    expected = -(0.25 ** 2) * math.log(0.75)
    assert FocalLoss(gamma=2.0)(logits, target).item() == pytest.approx(expected, rel=1e-6)


def test_focal_with_gamma_zero_is_cross_entropy():
    torch.manual_seed(0)
    logits = torch.randn(2, 2, 5, 5)
    target = torch.randint(0, 2, (2, 1, 5, 5)).float()
    ce = torch.nn.functional.cross_entropy(logits, target[:, 0].long())
    assert FocalLoss(gamma=0.0)(logits, target).item() == pytest.approx(ce.item(), rel=1e-6)


def test_dice_focal_perfect_prediction_is_minus_one():
    target = torch.zeros(1, 1, 8, 8)
    target[..., 2:6, 2:6] = 1
    logits = torch.cat([(1 - target) * 50, target * 50], 1)  # certain and right everywhere
    loss = DiceFocalLoss()(logits, target)
    assert loss.item() == pytest.approx(-1.0, abs=1e-4)  # nnU-Net's Dice loss is -Dice; focal ~0


def test_joint_loss_hand_value():
    class Const(torch.nn.Module):
        def forward(self, a, b):
            return torch.tensor(2.0)

    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    labels = torch.tensor([0, 2])
    w = torch.tensor([1.0, 2.0, 3.0])
    nll_a = -math.log(math.exp(2) / (math.exp(2) + 2))
    ce = (1 * nll_a + 3 * math.log(3)) / (1 + 3)
    total, seg, cls = JointLoss(Const(), w, alpha=0.3)(None, None, logits, labels)
    assert cls.item() == pytest.approx(ce, rel=1e-6)
    assert total.item() == pytest.approx(0.3 * 2.0 + 0.7 * ce, rel=1e-6)
    with pytest.raises(ValueError):
        JointLoss(Const(), w, alpha=1.5)


def test_balanced_class_weights():
    w = balanced_class_weights([0, 0, 0, 1])
    np.testing.assert_allclose(w.numpy(), [4 / 6, 2.0, 1.0], rtol=1e-6)
    with pytest.raises(ValueError):
        balanced_class_weights([])


def test_early_stopping_from_history():
    h = [0.1, 0.3, 0.2, 0.25]
    assert best_epoch(h) == 1
    assert not is_new_best(h) and is_new_best(h[:2])
    assert not should_stop(h, patience=3)
    assert should_stop(h + [0.29], patience=3)
    assert not should_stop(h + [0.31], patience=3)
    assert best_epoch([float("nan"), 0.2]) == 1
    assert not should_stop([0.1] * 50, patience=0)


def test_whole_image_spacing_fits_the_largest_image():
    shapes = [[1, 500, 400], [1, 300, 600], [1, 256, 256]]
    spacings = [[999, 1, 1]] * 3
    s = whole_image_spacing(shapes, spacings, 256)
    assert s == pytest.approx(600 / 256)
    fp = {"shapes_after_crop": shapes, "spacings": spacings}
    cfg, summary = make_phyjoint_configuration({"patch_size": [1, 1]}, fp, 256, 16, {"encoder_name": "x"})
    assert cfg["patch_size"] == [256, 256] and cfg["batch_size"] == 16
    assert cfg["architecture"]["network_class_name"].endswith("PhyJointNet")
    assert summary["largest_image_long_side_px"] == 256
    with pytest.raises(ValueError):
        make_phyjoint_configuration({}, fp, 250, 16, {})


def test_final_validation_writes_summary_json_last(tmp_path, monkeypatch):
    """summary.json marks a finished final validation (nnU-Net's --val, the benchmark's resume): while the
    diagnoses and the gated masks are written it must not exist, so that an interruption is seen as one."""
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    from nnunet_phyjoint.training.phyjoint_trainer import PhyJointTrainer

    validation = tmp_path / "validation"
    seen = []

    def nnunet_validation(self, save_probabilities=False):
        validation.mkdir()
        (validation / "summary.json").write_text('{"nnU-Net": "raw masks"}')

    def classification(self):
        seen.append(("classification", (validation / "summary.json").exists()))
        return {"a": np.array([0.9, 0.05, 0.05])}

    def gating(self, rows, ungated_summary=None):
        seen.append(("gating", (validation / "summary.json").exists()))
        os.replace(ungated_summary, validation / "summary_ungated.json")
        (validation / "summary.json").write_text('{"gated": true}')

    monkeypatch.setattr(nnUNetTrainer, "perform_actual_validation", nnunet_validation)
    monkeypatch.setattr(PhyJointTrainer, "_write_validation_classification", classification)
    monkeypatch.setattr(PhyJointTrainer, "_gate_validation_masks", gating)
    training_labels = [0, 1, 2]  # the training fold has normal images: gating applies
    monkeypatch.setattr(PhyJointTrainer, "_training_labels", lambda self: training_labels)
    monkeypatch.setattr(PhyJointTrainer, "print_to_log_file", lambda self, *a, **k: seen.append(("log", a[0])))
    trainer = object.__new__(PhyJointTrainer)
    trainer.local_rank, trainer.output_folder, trainer.gate_normal_masks = 0, str(tmp_path), True
    trainer.perform_actual_validation()
    assert seen == [("classification", False), ("gating", False)]
    assert json.loads((validation / "summary.json").read_text()) == {"gated": True}
    assert json.loads((validation / "summary_ungated.json").read_text()) == {"nnU-Net": "raw masks"}

    # without gating nnU-Net's summary comes back, still after the diagnoses
    import shutil

    shutil.rmtree(validation)
    seen.clear()
    trainer.gate_normal_masks = False
    trainer.perform_actual_validation()
    assert seen == [("classification", False)]
    assert json.loads((validation / "summary.json").read_text()) == {"nnU-Net": "raw masks"}
    assert sorted(p.name for p in validation.iterdir()) == ["summary.json"]

    # a training fold without normal images (BUS-BRA): no gating, said in the log, nnU-Net's summary kept
    shutil.rmtree(validation)
    seen.clear()
    trainer.gate_normal_masks, training_labels[:] = True, [1, 2, 2]
    trainer.perform_actual_validation()
    assert seen[0] == ("classification", False) and len(seen) == 2
    assert seen[1][0] == "log" and "diagnosis gating off" in seen[1][1]
    assert json.loads((validation / "summary.json").read_text()) == {"nnU-Net": "raw masks"}
    assert sorted(p.name for p in validation.iterdir()) == ["summary.json"]


def test_early_stopping_patience_from_the_environment():
    from nnunet_phyjoint.training.early_stopping import PATIENCE_ENV, patience_from_env

    assert patience_from_env(10, {}) == 10 and patience_from_env(10, {PATIENCE_ENV: " "}) == 10
    assert patience_from_env(10, {PATIENCE_ENV: "0"}) == 0 and patience_from_env(10, {PATIENCE_ENV: "4"}) == 4
    for bad in ("-1", "ten", "2.5"):
        with pytest.raises(ValueError, match=PATIENCE_ENV):
            patience_from_env(10, {PATIENCE_ENV: bad})
    # 0 means never stop early, however long the plateau
    assert not should_stop([0.5] + [0.4] * 50, patience=0)
