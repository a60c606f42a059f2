"""The CUDA paths the trainers take (mixed precision, torch.compile, DDP, 8-bit AdamW); skipped without a GPU.

CI machines have no GPU: these run where one is lent (`.ci/gpu_checks.sh`). A tiny random-weight
PhyJointNet keeps each test to seconds; what they check does not depend on the weights.
"""
from __future__ import annotations

import copy

import pytest
import torch

from nnunet_phyjoint.losses import DiceFocalLoss, JointLoss
from nnunet_phyjoint.network.phyjoint_net import PhyJointNet
from nnunet_phyjoint.optim import build_optimizer

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

SIZE = 64


def _net(deep_supervision: bool = True) -> PhyJointNet:
    torch.manual_seed(0)
    return PhyJointNet(1, 2, deep_supervision, encoder_name="efficientnet_lite0", encoder_weights=None,
                       seg_head_prior=0.01).cuda()


def _batch(n: int = 4) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 1, SIZE, SIZE, generator=g)
    target = torch.zeros(n, 1, SIZE, SIZE)
    target[:, :, 16:40, 20:44] = 1
    x = x + 2 * target  # a learnable lesion
    cls = torch.tensor([1, 2, 1, 0][:n])
    return x.cuda(), target.cuda(), cls.cuda()


def _joint_loss(seg_output, target, class_logits, cls) -> torch.Tensor:
    outputs = seg_output if isinstance(seg_output, (list, tuple)) else [seg_output]
    seg_loss = DiceFocalLoss()
    loss = JointLoss(seg_loss, torch.ones(3))
    # every deep-supervision output at its own resolution, as nnU-Net's DeepSupervisionWrapper feeds them
    totals = [loss(o, torch.nn.functional.interpolate(target, size=o.shape[2:], mode="nearest"), class_logits, cls)[0]
              for o in outputs]
    return sum(totals) / len(totals)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_joint_training_steps_under_autocast_with_adamw8bit(dtype):
    """nnU-Net's CUDA loop: autocast + GradScaler; the loss falls, weights stay finite, the state is 8-bit."""
    net = _net().train()
    optimizer = build_optimizer(net.parameters(), "adamw8bit", lr=1e-3)
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    x, target, cls = _batch()
    losses = []
    for _ in range(15):
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=dtype):
            seg, logits = net(x, return_class_logits=True)
            # the heads' final bilinear upsampling autocasts to float32 (seen on an H200); the linear layers do not
            assert logits.dtype == dtype
            loss = _joint_loss(seg, target, logits, cls)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(net.parameters(), 12)
        scaler.step(optimizer)
        scaler.update()
        losses.append(loss.item())
    assert all(torch.isfinite(p).all() for p in net.parameters())
    assert losses[-1] < 0.8 * losses[0], losses
    states = [s for s in optimizer.state.values() if "state1" in s]
    assert states and any(s["state1"].dtype == torch.uint8 for s in states)


@pytest.fixture
def no_tf32():
    """Full float32 in both paths: with cuDNN's default TF32 convolutions, eager and compiled diagnosis logits
    differed by up to 5.5e-3 (1.4 %) on an H200, which is TF32 rounding, not a compile error."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def test_compiled_network_matches_eager_and_trains(no_tf32):
    """torch.compile (nnU-Net compiles on CUDA by default): same outputs as eager, and a training step runs."""
    net = _net().eval()
    x, target, cls = _batch()
    with torch.no_grad():
        eager_seg, eager_logits = net(x, return_class_logits=True)
    compiled = torch.compile(copy.deepcopy(net))
    with torch.no_grad():
        seg, logits = compiled(x, return_class_logits=True)
    torch.testing.assert_close(seg[0], eager_seg[0], rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(logits, eager_logits, rtol=1e-3, atol=1e-3)

    compiled.train()
    optimizer = torch.optim.AdamW(compiled.parameters(), lr=1e-3)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        seg, logits = compiled(x, return_class_logits=True)
        loss = _joint_loss(seg, target, logits, cls)
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in compiled.parameters() if p.requires_grad)


def test_every_parameter_gets_a_gradient_under_ddp(tmp_path):
    """nnU-Net wraps the network in DDP without find_unused_parameters: a parameter left without a gradient
    would make the second iteration fail. One process on one GPU runs the same reducer."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    dist.init_process_group("nccl", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        net = DDP(_net().train(), device_ids=[0])
        optimizer = build_optimizer(net.parameters(), "adamw8bit", lr=1e-3)
        x, target, cls = _batch()
        for _ in range(3):
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast("cuda", dtype=torch.float16):
                seg, logits = net(x, return_class_logits=True)
                loss = _joint_loss(seg, target, logits, cls)
            loss.backward()
            optimizer.step()
        unused = [n for n, p in net.module.named_parameters() if p.requires_grad and p.grad is None]
        assert not unused, f"parameters without gradient: {unused[:5]}"
    finally:
        dist.destroy_process_group()
