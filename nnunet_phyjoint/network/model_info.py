"""Parameter and multiply-accumulate counts, for a built network, an encoder name or a plans file.

MACs are counted with ``torch.utils.flop_counter.FlopCounterMode`` (convolutions and matrix products;
it reports FLOPs = 2 x MACs). Networks are built with random weights: counting never loads or
downloads anything.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

PARTS = ("encoder", "cbam", "decoder", "classification_head")


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements (buffers such as batch-norm statistics are not parameters)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_macs(model: nn.Module, input_shape: tuple[int, ...] | list[int]) -> int:
    """Multiply-accumulates of one inference pass on a zero tensor of ``input_shape`` (batch included).

    Uses ``model.forward_joint`` when the model has it (segmentation and diagnosis, as in the paper's
    figure), else ``model(x)``. The model is put in eval mode for the count and restored afterwards.
    """
    from torch.utils.flop_counter import FlopCounterMode

    param = next(model.parameters(), None)
    x = torch.zeros(tuple(input_shape), device=param.device if param is not None else "cpu",
                    dtype=param.dtype if param is not None else torch.float32)
    run = getattr(model, "forward_joint", model)
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    try:
        with torch.no_grad(), counter:
            run(x)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops()) // 2


def model_info(model: nn.Module, input_shape: tuple[int, ...] | list[int]) -> dict:
    """Parameters (total and per PhyJointNet part, when present) and MACs at ``input_shape``."""
    params = {"total": count_parameters(model)}
    for part in PARTS:
        if isinstance(getattr(model, part, None), nn.Module):
            params[part] = count_parameters(getattr(model, part))
    info = {
        "network": type(model).__name__,
        "input_shape": [int(s) for s in input_shape],
        "parameters": params,
        "macs": count_macs(model, input_shape),
    }
    encoder = getattr(model, "encoder", None)
    if encoder is not None and hasattr(encoder, "name"):
        info["encoder"] = encoder.name
        info["encoder_channels"] = list(encoder.channels)
        info["encoder_reductions"] = list(encoder.reductions)
    if hasattr(model, "decoder") and hasattr(model.decoder, "decoder_channels"):
        info["decoder_channels"] = list(model.decoder.decoder_channels)
    return info


def model_info_for_encoder(encoder: str, size: int | tuple[int, int] = 256, input_channels: int = 3,
                           num_classes: int = 2, **net_kwargs) -> dict:
    """``model_info`` of a PhyJointNet with ``encoder`` (random weights) at one ``size`` x ``size`` image."""
    from nnunet_phyjoint.network.phyjoint_net import PhyJointNet

    h, w = (size, size) if isinstance(size, int) else size
    net = PhyJointNet(input_channels, num_classes, deep_supervision=False, encoder_name=encoder,
                      **{**net_kwargs, "encoder_weights": None})
    return model_info(net, (1, input_channels, h, w))


def model_info_from_plans(plans_file: str | Path, configuration: str = "2d",
                          dataset_json: str | Path | None = None) -> dict:
    """``model_info`` of the network a plans file describes, at its planned patch size.

    Input channels and segmentation outputs come from ``dataset.json`` (default: next to the plans,
    as in nnU-Net's preprocessed folder). Encoder weights are never loaded for counting.
    """
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    plans_file = Path(plans_file)
    dataset_json = Path(dataset_json) if dataset_json else plans_file.parent / "dataset.json"
    for f in (plans_file, dataset_json):
        if not f.is_file():
            raise FileNotFoundError(f"{f} not found")
    try:
        plans = json.loads(plans_file.read_text())
        ds = json.loads(dataset_json.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"cannot parse JSON: {e}") from e
    plans_manager = PlansManager(plans)
    if configuration not in plans.get("configurations", {}):
        raise KeyError(f"{plans_file} has no configuration {configuration!r} "
                       f"(has {sorted(plans.get('configurations', {}))})")
    config = plans_manager.get_configuration(configuration)
    in_channels = determine_num_input_channels(plans_manager, config, ds)
    out_channels = plans_manager.get_label_manager(ds).num_segmentation_heads
    kwargs = dict(config.network_arch_init_kwargs)
    if "encoder_weights" in kwargs or config.network_arch_class_name.endswith("PhyJointNet"):
        kwargs["encoder_weights"] = None
    net = get_network_from_plans(config.network_arch_class_name, kwargs,
                                 config.network_arch_init_kwargs_req_import, in_channels, out_channels,
                                 allow_init=True, deep_supervision=False)
    info = model_info(net, (1, in_channels, *config.patch_size))
    info.update(plans_file=str(plans_file), configuration=configuration, patch_size=list(config.patch_size))
    return info


def format_model_info(info: dict) -> str:
    """A small human-readable table of ``model_info``'s numbers."""
    p = info["parameters"]
    rows = [("network", info["network"])]
    if "encoder" in info:
        rows.append(("encoder", info["encoder"]))
    rows.append(("input (B, C, H, W)", "x".join(str(s) for s in info["input_shape"])))
    rows.append(("parameters, total", f"{p['total'] / 1e6:.2f} M  ({p['total']:,})"))
    for part in PARTS:
        if part in p:
            rows.append((f"  {part.replace('_', ' ')}", f"{p[part] / 1e6:.3f} M"))
    rows.append(("multiply-accumulates", f"{info['macs'] / 1e9:.2f} G  ({info['macs']:,})"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
