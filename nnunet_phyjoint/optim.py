"""Optimizer factory of the PhyJoint trainers: bitsandbytes' 8-bit AdamW (default) or torch's AdamW.

``AdamW8bit`` keeps both Adam moments of every parameter tensor with at least 4096 elements as 8-bit
blockwise-quantized codes (plus one float32 absmax per block of 256), so its state is about a quarter
of torch AdamW's two float32 moments. bitsandbytes 0.50 steps it on the CPU as well as on CUDA.

``python -m nnunet_phyjoint.optim [TIMM_MODEL]`` measures the state of both after one training step.
"""
from __future__ import annotations

import argparse
from collections.abc import Iterable

import torch

OPTIMIZER_NAMES = ("adamw8bit", "adamw")


def build_optimizer(params: Iterable[torch.nn.Parameter] | Iterable[dict], name: str = "adamw8bit",
                    lr: float = 1e-4, weight_decay: float = 1e-2) -> torch.optim.Optimizer:
    """AdamW over ``params``: ``"adamw8bit"`` (bitsandbytes) or ``"adamw"`` (torch)."""
    if name == "adamw8bit":
        import bitsandbytes as bnb

        return bnb.optim.AdamW8bit(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; choose one of {OPTIMIZER_NAMES}")


def optimizer_state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes held by the optimizer's per-parameter state tensors (shared tensors, e.g. bnb's qmaps, counted once)."""
    seen: set[tuple[str, int]] = set()
    total = 0
    for state in optimizer.state.values():
        for value in state.values():
            if not isinstance(value, torch.Tensor):
                continue
            storage = value.untyped_storage()
            key = (str(value.device), storage.data_ptr())
            if key in seen:
                continue
            seen.add(key)
            total += storage.nbytes()
    return total


def measure_optimizer_state(model_name: str = "efficientnet_b6", size: int = 64,
                            names: Iterable[str] = OPTIMIZER_NAMES) -> dict[str, dict[str, int]]:
    """Optimizer-state bytes after one step of a random-weight timm feature extractor on a 1x1xSIZExSIZE input."""
    import timm

    results = {}
    for name in names:
        torch.manual_seed(0)
        model = timm.create_model(model_name, features_only=True, pretrained=False, in_chans=1)
        optimizer = build_optimizer(model.parameters(), name)
        loss = sum(f.float().pow(2).mean() for f in model(torch.randn(1, 1, size, size)))
        loss.backward()
        optimizer.step()
        results[name] = {
            "parameters": sum(p.numel() for p in model.parameters()),
            "parameter_bytes": sum(p.numel() * p.element_size() for p in model.parameters()),
            "state_bytes": optimizer_state_bytes(optimizer),
        }
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="optimizer-state memory of AdamW vs AdamW8bit after one step")
    parser.add_argument("model", nargs="?", default="efficientnet_b6", help="timm model name (features_only)")
    parser.add_argument("--size", type=int, default=64, help="input height/width")
    args = parser.parse_args(argv)
    results = measure_optimizer_state(args.model, args.size)
    print(f"{'optimizer':<10} {'parameters':>12} {'param MB':>9} {'state MB':>9} {'state/params':>12}")
    for name, r in results.items():
        print(f"{name:<10} {r['parameters']:>12,} {r['parameter_bytes'] / 1e6:>9.1f} {r['state_bytes'] / 1e6:>9.1f} "
              f"{r['state_bytes'] / r['parameter_bytes']:>12.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
