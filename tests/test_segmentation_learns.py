"""Segmentation must learn: a few dozen steps of the trainer's own train_step on a handful of simulated images.

Guards against the failure of version 0.1 (issue 10): the deep-supervision outputs fighting each
other and the mask sitting at the all-foreground solution. Behavioural, not timed: the trainer's
real loss, optimiser, learning rates and deep-supervision layout, nnU-Net's preprocessed data.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

N_IMAGES = 8
SIZE = 64
STEPS = 60


def _tiny_preprocessed_dataset(root, nnunet_env) -> str:
    from dataset_conversion.precise import convert_precise
    from nnunet_phyjoint.planning import plan_dataset
    from nnunet_phyjoint.preprocessing import preprocess
    from nnunet_phyjoint.simulator import simulate_dataset

    simulate_dataset(root / "src", n=N_IMAGES + 4, scanners=2, seed=7, size=(SIZE, SIZE))
    ds = convert_precise(root / "src", 991, name="Learns", quiet=True)
    # the same plans a user gets, minus the ImageNet download (this test must not depend on the network)
    plan_dataset(991, encoder="efficientnet_lite0", size=SIZE, batch_size=N_IMAGES, encoder_weights="none",
                 num_processes=1)
    preprocess(991, "PhyJointPlans", num_processes=1)
    return ds.name


def _dice(pred: np.ndarray, gt: np.ndarray) -> float:
    denom = pred.sum() + gt.sum()
    return float(2 * (pred & gt).sum() / denom) if denom else 1.0


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("learns")
    env = {}
    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        (root / var).mkdir()
        mp.setenv(var, str(root / var))
        env[var] = root / var
    mp.setenv("nnUNet_n_proc_DA", "0")
    mp.setenv("nnUNet_compile", "f")
    try:
        name = _tiny_preprocessed_dataset(root, env)
        from nnunet_phyjoint.training.variants import PhyJointTrainer_noPhyAug

        pre = env["nnUNet_preprocessed"] / name
        plans = json.loads((pre / "PhyJointPlans.json").read_text())
        dataset_json = json.loads((pre / "dataset.json").read_text())
        plans["continue_training"] = False  # what nnUNetv2_train's get_trainer_from_args adds
        torch.manual_seed(0)
        trainer = PhyJointTrainer_noPhyAug(plans, "2d", 0, dataset_json, device=torch.device("cpu"))
        trainer.initialize()
        heads = trainer._bare_network().decoder.seg_heads
        initial_p = [float(torch.softmax(h.bias.detach(), 0)[1]) for h in heads]
        keys = sorted(trainer.do_split()[0])[:N_IMAGES]
        dataset = trainer.dataset_class(trainer.preprocessed_dataset_folder, keys)
        data, seg = [], []
        for k in keys:
            d, s = dataset.load_case(k)[:2]
            # nnU-Net stores 2D cases as (C, 1, H, W)
            data.append(torch.from_numpy(np.asarray(d[:], dtype=np.float32)[:, 0]))
            seg.append(torch.from_numpy(np.asarray(s[:], dtype=np.float32)[:, 0]).clamp_min(0))  # -1: outside the crop
        data, seg = torch.stack(data), torch.stack(seg)
        assert data.shape[-2:] == (SIZE, SIZE), data.shape
        scales = trainer._get_deep_supervision_scales()
        target = [torch.nn.functional.interpolate(seg, scale_factor=s, mode="nearest-exact") if s != [1.0, 1.0]
                  else seg for s in scales]
        batch = {"data": data, "target": target, "keys": keys}
        losses = [float(trainer.train_step(batch)["seg_loss"]) for _ in range(STEPS)]
        # batch statistics, as in the training steps: this checks what the loss and optimiser learnt, not how
        # far batch norm's running averages have caught up after a few dozen steps
        with torch.no_grad():
            outputs = trainer.network(data)
        yield {"outputs": outputs, "gt": seg[:, 0].numpy() > 0, "losses": losses, "trainer": trainer,
               "initial_p": initial_p}
    finally:
        mp.undo()


def test_training_dice_rises_well_above_all_foreground(trained):
    gt = trained["gt"]
    assert gt.any(axis=(1, 2)).sum() >= 3, "the simulated batch should hold several lesions"
    all_foreground = _dice(np.ones_like(gt), gt)
    pred = trained["outputs"][0].argmax(1).numpy() > 0
    dice = _dice(pred, gt)
    assert dice > max(0.4, 3 * all_foreground), f"training Dice {dice:.3f} (all-foreground {all_foreground:.3f}); " \
                                                f"seg losses {np.round(trained['losses'][::8], 3).tolist()}"
    ratio = pred.sum() / gt.sum()
    assert 0.5 < ratio < 2.0, f"predicted / true lesion area {ratio:.2f}"


def test_no_deep_supervision_output_collapses(trained):
    outputs = trained["outputs"]
    assert isinstance(outputs, list) and len(outputs) >= 2
    gt = trained["gt"]
    for i, out in enumerate(outputs):
        fg = out.argmax(1).numpy() > 0
        fraction = fg.mean()
        assert 0.0 < fraction < 0.5, f"deep-supervision output {i} predicts lesion on {fraction:.1%} of pixels"
        if fg.shape == gt.shape:
            assert _dice(fg, gt) > 0.3, f"deep-supervision output {i}: Dice {_dice(fg, gt):.3f}"


def test_recipe_is_logged(trained):
    trainer = trained["trainer"]
    log = open(trainer.log_file).read()
    assert "deep supervision (nested layout)" in log
    # the ImageNet encoder fine-tunes at 1e-3, the new layers learn at 1e-2 (docs/training-recipe.md, round 3)
    groups = {g["name"]: g for g in trainer.optimizer.param_groups}
    assert trainer.lr_scheduler.start_lrs == [1e-3, 1e-2] and list(groups) == ["encoder", "new_layers"]
    assert "lr encoder 0.001, new_layers 0.01" in log


def test_heads_start_at_the_lesion_prior(trained):
    # every head starts at p(lesion) = seg_head_prior (docs/training-recipe.md, round 2: R3), and says so
    prior = trained["trainer"].seg_head_prior
    assert prior == 0.01
    assert trained["initial_p"] == pytest.approx([prior] * len(trained["initial_p"]), rel=1e-4)
    assert f"segmentation heads initialised at p(lesion) = {prior:g}" in open(trained["trainer"].log_file).read()
    from nnunet_phyjoint.training.variants import PhyJointTrainer_noHeadPrior, PhyJointTrainer_paper

    assert PhyJointTrainer_paper.seg_head_prior is None and PhyJointTrainer_noHeadPrior.seg_head_prior is None
