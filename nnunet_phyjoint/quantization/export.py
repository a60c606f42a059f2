"""Export a trained nnU-Net model folder with a packed INT8/INT4 encoder, and load it back without pickle.

Exported folder::

    OUT/dataset.json, OUT/plans.json              (copied; dataset_fingerprint.json too when present)
    OUT/fold_X/encoder_int{bits}.safetensors      int codes + per-channel scales of the encoder's conv/linear weights
    OUT/fold_X/rest.safetensors                   every other tensor of the network, float32 as trained
    OUT/fold_X/export.json                        trainer_name, plans_identifier, configuration, bits,
                                                  inference_allowed_mirroring_axes, fold, sizes

The rest stays float32 so that the loaded network computes exactly what the fake-quantized network
computed; the encoder's conv/linear weights are ~98% of the encoder anyway.

Trust: the *source* checkpoints are nnU-Net's own ``fold_X/checkpoint_*.pth`` pickles, written by our
trainer; nnU-Net itself reads them with ``torch.load(weights_only=False)`` (they hold plain Python
objects besides tensors), and so does :func:`export_model_folder` -- only there. Everything in an
exported folder is JSON or safetensors, so :func:`load_exported_network` never unpickles anything.
"""
from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from torch import nn

from nnunet_phyjoint.atomic_io import atomic_folder, default_mode
from nnunet_phyjoint.quantization.packing import pack_weights, tensor_bytes, unpack_weights
from nnunet_phyjoint.quantization.qat import (
    DEFAULT_LAYER_TYPES,
    dequantize_qat_state_dict,
    master_state_dict,
    state_dict_qat_bits,
)

DEFAULT_CHECKPOINT = "checkpoint_final.pth"
REST_FILE = "rest.safetensors"
INFO_FILE = "export.json"
COPIED_JSON = ("dataset.json", "plans.json", "dataset_fingerprint.json")
REQUIRED_JSON = ("dataset.json", "plans.json")


def encoder_file_name(bits: int) -> str:
    return f"encoder_int{bits}.safetensors"


def check_export_paths(model_folder: Path, out: Path, overwrite: bool) -> None:
    """Refuse a source that is not an nnU-Net trained model folder, and an existing ``out`` unless ``overwrite``."""
    for name in REQUIRED_JSON:
        if not (model_folder / name).is_file():
            raise FileNotFoundError(f"{model_folder / name} not found: "
                                    f"{model_folder} is not an nnU-Net trained model folder")
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists (pass overwrite=True / --overwrite to replace it)")


def export_model_folder(model_folder: Path, bits: int, out: Path, folds: Iterable[int | str] | None = None,
                        checkpoint_name: str = DEFAULT_CHECKPOINT, overwrite: bool = False,
                        verbose: bool = True) -> dict:
    """Pack the encoder of each fold's checkpoint at ``bits`` (8 or 4) into ``out``; return (and print) sizes.

    A checkpoint trained with fake quantization is exported on its own grid (bit-exact); a float checkpoint
    is quantized after training. ``folds=None`` exports every ``fold_*`` folder that holds ``checkpoint_name``.
    The folder is written under a temporary name and renamed at the end.
    """
    from nnunet_phyjoint.progress import progress

    model_folder, out = Path(model_folder), Path(out)
    if bits not in (8, 4):
        raise ValueError(f"--bits must be 8 or 4, got {bits!r}")
    check_export_paths(model_folder, out, overwrite)
    fold_list = _resolve_folds(model_folder, folds, checkpoint_name)
    plans = _read_json(model_folder / "plans.json")
    dataset_json = _read_json(model_folder / "dataset.json")

    with atomic_folder(out) as staging:
        for name in COPIED_JSON:
            if (model_folder / name).is_file():
                shutil.copy2(model_folder / name, staging / name)
        report = {"bits": bits, "out": str(out), "folds": {}}
        for fold in progress(fold_list, desc=f"export INT{bits}", unit="fold", disable=not verbose):
            checkpoint_path = model_folder / f"fold_{fold}" / checkpoint_name
            report["folds"][str(fold)] = _export_fold(checkpoint_path, plans, dataset_json, fold, bits,
                                                      staging / f"fold_{fold}")
        _apply_default_permissions(staging)
    if verbose:
        print(format_size_report(report))
    return report


def load_exported_network(folder: Path, fold: int | str) -> tuple[nn.Module, dict]:
    """Rebuild the network from ``folder/plans.json`` and load the exported fold's (dequantized) weights.

    Returns ``(network in eval mode on the CPU, export.json contents)``. Reads only JSON and safetensors.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    folder = Path(folder)
    fold_dir = folder / f"fold_{_fold_key(fold)}"
    info = _read_json(fold_dir / INFO_FILE)
    encoder_path = fold_dir / encoder_file_name(int(info["bits"]))
    rest_path = fold_dir / REST_FILE
    for path in (encoder_path, rest_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: incomplete export in {folder}")
    try:
        with safe_open(str(encoder_path), framework="pt") as handle:
            metadata = handle.metadata()
            packed = {key: handle.get_tensor(key) for key in handle.keys()}
        encoder_weights = unpack_weights(packed, metadata)
    except ValueError as error:
        raise ValueError(f"{encoder_path}: {error}") from None
    if int(metadata["bits"]) != int(info["bits"]):
        raise ValueError(f"{encoder_path} holds {metadata['bits']}-bit codes "
                         f"but {fold_dir / INFO_FILE} says {info['bits']}")
    state = {**load_file(str(rest_path)), **encoder_weights}

    network = build_network_from_plans(_read_json(folder / "plans.json"), _read_json(folder / "dataset.json"),
                                       info["configuration"])
    _load_strict(network, state, source=str(fold_dir))
    return network.eval(), info


def build_network_from_plans(plans: dict, dataset_json: dict, configuration: str) -> nn.Module:
    """The inference network (deep supervision off) that nnU-Net builds from a plans ``architecture`` block."""
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    plans_manager = PlansManager(plans)
    if configuration not in plans.get("configurations", {}):
        raise ValueError(f"plans {plans.get('plans_name')!r} have no configuration {configuration!r}")
    configuration_manager = plans_manager.get_configuration(configuration)
    arch_kwargs = dict(configuration_manager.network_arch_init_kwargs)
    if "encoder_weights" in arch_kwargs:
        # Every weight comes from the checkpoint/export: skip pretrained-weight lookups, which could
        # name a file that exists only on the training machine.
        arch_kwargs["encoder_weights"] = None
    return get_network_from_plans(
        configuration_manager.network_arch_class_name,
        arch_kwargs,
        configuration_manager.network_arch_init_kwargs_req_import,
        determine_num_input_channels(plans_manager, configuration_manager, dataset_json),
        plans_manager.get_label_manager(dataset_json).num_segmentation_heads,
        allow_init=True,
        deep_supervision=False,
    )


def encoder_weight_names(network: nn.Module,
                         layer_types: tuple[type[nn.Module], ...] = DEFAULT_LAYER_TYPES) -> list[str]:
    """State-dict keys (``encoder.<layer>.weight``) of the conv/linear weights in ``network.encoder``."""
    encoder = getattr(network, "encoder", None)
    if not isinstance(encoder, nn.Module):
        raise ValueError(f"{type(network).__name__} has no `.encoder` module to quantize")
    return [f"encoder.{name}.weight" if name else "encoder.weight"
            for name, layer in encoder.named_modules()
            if isinstance(layer, layer_types) and getattr(layer, "weight", None) is not None]


def format_size_report(report: Mapping) -> str:
    """Human-readable size table of an :func:`export_model_folder` report."""
    bits = report["bits"]
    lines = [f"{'fold':>5} {'FP32 encoder weights':>21} {f'INT{bits} packed':>12} {'ratio':>7} "
             f"{'whole encoder ratio':>20}"]
    for fold, sizes in report["folds"].items():
        lines.append(f"{fold:>5} {_megabytes(sizes['fp32_weight_bytes']):>21} "
                     f"{_megabytes(sizes['packed_weight_bytes']):>12} {sizes['ratio']:>7.1%} "
                     f"{sizes['encoder_ratio']:>20.1%}")
    lines.append(f"written to {report['out']}")
    return "\n".join(lines)


def _export_fold(checkpoint_path: Path, plans: dict, dataset_json: dict, fold: int | str, bits: int,
                 fold_dir: Path) -> dict:
    from safetensors.torch import save_file

    checkpoint = _read_checkpoint(checkpoint_path)
    state = checkpoint["network_weights"]
    trained_bits = state_dict_qat_bits(state)
    if trained_bits is not None and trained_bits != bits:
        raise ValueError(f"{checkpoint_path} was trained with INT{trained_bits} fake quantization; exporting it at "
                         f"{bits} bits would not reproduce it (use --bits {trained_bits})")
    plain = dequantize_qat_state_dict(state)
    configuration = checkpoint["init_args"]["configuration"]
    network = build_network_from_plans(plans, dataset_json, configuration)
    _load_strict(network, plain, source=str(checkpoint_path))  # the export must fit the network it will be loaded into

    names = set(encoder_weight_names(network))
    # Packing starts from the float masters, so its codes and scales are those the fake quantization used.
    masters = master_state_dict(state)
    packed, metadata = pack_weights({k: v for k, v in masters.items() if k in names}, bits)
    rest = {k: _owned_cpu(v, k, checkpoint_path) for k, v in plain.items() if k not in names}

    fold_dir.mkdir(parents=True)
    encoder_path = fold_dir / encoder_file_name(bits)
    save_file(packed, str(encoder_path), metadata=metadata)
    save_file(rest, str(fold_dir / REST_FILE), metadata={"format": "phyjoint-rest-weights-v1"})

    encoder_rest = {k: v for k, v in rest.items() if k.startswith("encoder.")}
    fp32_weight_bytes = sum(plain[k].numel() * 4 for k in names)
    packed_weight_bytes = tensor_bytes(packed)
    encoder_fp32_bytes = fp32_weight_bytes + tensor_bytes(encoder_rest)
    sizes = {
        "fp32_weight_bytes": fp32_weight_bytes,
        "packed_weight_bytes": packed_weight_bytes,
        "ratio": packed_weight_bytes / fp32_weight_bytes,
        "encoder_fp32_bytes": encoder_fp32_bytes,
        "encoder_packed_bytes": packed_weight_bytes + tensor_bytes(encoder_rest),
        "encoder_ratio": (packed_weight_bytes + tensor_bytes(encoder_rest)) / encoder_fp32_bytes,
        "encoder_file_bytes": encoder_path.stat().st_size,
        "rest_file_bytes": (fold_dir / REST_FILE).stat().st_size,
    }
    mirroring = checkpoint.get("inference_allowed_mirroring_axes")
    info = {
        "trainer_name": checkpoint["trainer_name"],
        "plans_identifier": plans.get("plans_name"),
        "configuration": configuration,
        "bits": bits,
        "trained_with_fake_quantization": trained_bits is not None,
        "inference_allowed_mirroring_axes": list(mirroring) if mirroring is not None else None,
        "fold": fold,
        "source_checkpoint": checkpoint_path.name,
        "sizes": sizes,
    }
    (fold_dir / INFO_FILE).write_text(json.dumps(info, indent=2))
    return sizes


def _read_checkpoint(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found")
    # Our own nnU-Net checkpoint (see module docstring): the one place we unpickle.
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(checkpoint, dict):
        raise ValueError(f"{path} is not an nnU-Net checkpoint (a {type(checkpoint).__name__}, not a dict)")
    missing = [k for k in ("network_weights", "trainer_name", "init_args") if k not in checkpoint]
    if missing or "configuration" not in checkpoint.get("init_args", {}):
        raise ValueError(f"{path} is not an nnU-Net checkpoint: missing {missing or ['init_args.configuration']}")
    return checkpoint


def _resolve_folds(model_folder: Path, folds: Iterable[int | str] | None, checkpoint_name: str) -> list[int | str]:
    if folds is None:
        found = sorted((_fold_key(p.name[len("fold_"):]) for p in model_folder.glob("fold_*")
                        if (p / checkpoint_name).is_file()), key=lambda f: (isinstance(f, str), str(f).zfill(4)))
        if not found:
            raise FileNotFoundError(f"no fold_*/{checkpoint_name} in {model_folder}")
        return found
    resolved = [_fold_key(f) for f in folds]
    for fold in resolved:
        if not (model_folder / f"fold_{fold}" / checkpoint_name).is_file():
            raise FileNotFoundError(f"{model_folder / f'fold_{fold}' / checkpoint_name} not found")
    return resolved


def _fold_key(fold: int | str) -> int | str:
    if str(fold) == "all":
        return "all"
    try:
        return int(fold)
    except ValueError:
        raise ValueError(f"fold must be an integer or 'all', got {fold!r}") from None


def _load_strict(network: nn.Module, state: Mapping[str, object], source: str) -> None:
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise ValueError(f"weights from {source} do not fit the network {type(network).__name__} "
                         f"built from plans.json: {error}") from None


def _owned_cpu(value: object, key: str, source: Path) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"{source}: state dict entry {key!r} is a {type(value).__name__}, not a tensor")
    # safetensors refuses tensors that share storage; a copy makes every tensor own its memory.
    return value.detach().cpu().contiguous().clone()


def _apply_default_permissions(folder: Path) -> None:
    # mkdtemp (and safetensors) create owner-only entries; an exported model is meant to be shared.
    folder.chmod(default_mode(0o777))
    for path in folder.rglob("*"):
        path.chmod(default_mode(0o777 if path.is_dir() else 0o666))


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from None


def _megabytes(n: int) -> str:
    return f"{n / 1e6:.2f} MB"
