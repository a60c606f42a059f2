"""Where a timm encoder's pretrained weights come from: cache -> timm's download -> registry package.

- cache: the file timm's own loader would use, already in the Hugging Face hub cache
  (``hf_hub_id``) or in torch hub's ``checkpoints`` folder (``url``);
- download: timm's mechanism (``hf_hub_download`` into the HF cache, else the ``url`` into torch
  hub's checkpoints), tried only when :func:`nnunet_phyjoint.downloads.download_blocked` allows;
- package: an offline registry package (only ``efficientnet_lite0`` has one).

Loading always goes through :func:`nnunet_phyjoint.network.encoder_state.load_encoder_state`:
safetensors or ``torch.load(weights_only=True)``, every encoder tensor shape-checked.
"""
from __future__ import annotations

import contextlib
import contextvars
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from torch import nn

from nnunet_phyjoint.downloads import download_blocked
from nnunet_phyjoint.network.encoder_state import (
    _HF_WEIGHT_FILES, find_cached_pretrained_weights, load_encoder_state, load_encoder_weights, pretrained_cfg,
    read_state_dict,
)
from nnunet_phyjoint import registry_packages
from nnunet_phyjoint.registry_packages import LITE0, describe
from nnunet_phyjoint.weight_resolution import (
    IMAGENET, INSTALL_HINT, NONE, RANDOM, Candidate, PretrainedWeightsNotFound, Resolution, Step, Unavailable,
    is_path_request, normalise_request, run_chain,
)

# the encoder module's logger: the one line belongs to the encoder it describes
logger = logging.getLogger("nnunet_phyjoint.network.encoder")

HF_ENDPOINT = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
# encoders whose ImageNet weights an offline registry package carries
PACKAGE_ENCODERS = {"efficientnet_lite0": LITE0}
# timm architectures without weights whose TF-padding twin has them
_WITH_WEIGHTS = {f"efficientnet_b{i}": f"tf_efficientnet_b{i}" for i in (5, 6, 7, 8)}


def timm_hub_source(name: str) -> tuple[str | None, str | None]:
    """(hf_hub_id, url) of timm's default pretrained weights for ``name``; Unavailable when it has none."""
    cfg = pretrained_cfg(name)
    hub_id, url = cfg.get("hf_hub_id") or None, cfg.get("url") or None
    if not hub_id and not url:
        twin = _WITH_WEIGHTS.get(name)
        hint = f"; {twin} is the same architecture with ImageNet weights" if twin else ""
        raise Unavailable(f"timm has no pretrained weights for {name}{hint}")
    return hub_id, url


def _cache_candidate(name: str) -> Candidate:
    hub_id, url = timm_hub_source(name)
    cached = find_cached_pretrained_weights(name)
    if cached is None:
        where = [f"HF hub cache ({hub_id})"] if hub_id else []
        where += [f"torch hub checkpoints ({os.path.basename(url)})"] if url else []
        raise Unavailable("not in the " + " or ".join(where))
    return Candidate(f"local cache {cached}", lambda: read_state_dict(cached), str(cached))


def download_pretrained(name: str) -> Path:
    """Download timm's default pretrained weights for ``name`` the way timm does; returns the cached file.

    Hugging Face hub first (safetensors preferred), torch hub's URL otherwise. Call only when
    :func:`download_blocked` says the host is reachable: torch hub's download has no timeout.
    """
    hub_id, url = timm_hub_source(name)
    if hub_id:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError

        repo, _, revision = hub_id.partition("@")
        cfg = pretrained_cfg(name)
        filenames = (cfg["hf_hub_filename"],) if cfg.get("hf_hub_filename") else _HF_WEIGHT_FILES
        for filename in filenames:
            try:
                return Path(hf_hub_download(repo, filename, revision=revision or None))
            except EntryNotFoundError:
                continue
        if not url:
            raise FileNotFoundError(f"{hub_id} has none of {filenames}")
        blocked = download_blocked(url)  # the fallback host was not probed yet
        if blocked:
            raise FileNotFoundError(f"{hub_id} has none of {filenames}, and {blocked}")
    from timm.models._hub import download_cached_file

    return Path(download_cached_file(url, check_hash=True, progress=False))


def _download_candidate(name: str) -> Candidate:
    hub_id, url = timm_hub_source(name)
    blocked = download_blocked(HF_ENDPOINT if hub_id else url)
    if blocked:
        raise Unavailable(blocked)
    source = f"Hugging Face hub {hub_id}" if hub_id else url
    candidate = Candidate(f"timm download from {source}", lambda: None)

    def load() -> dict:
        try:
            path = download_pretrained(name)
        except Exception as e:  # HTTP, TLS, proxy errors come in many classes: all mean "next source"
            raise OSError(f"download failed: {type(e).__name__}: {e}") from e
        candidate.location = str(path)
        candidate.description += f" into {path}"
        return read_state_dict(path)

    candidate.load = load
    return candidate


def _package_candidate(name: str) -> Candidate:
    spec = PACKAGE_ENCODERS.get(name)
    if spec is None:
        raise Unavailable(f"no offline registry package carries {name} weights "
                          f"(there is one for {', '.join(PACKAGE_ENCODERS)})")
    path = registry_packages.find_package_file(spec)
    from nnunet_phyjoint.network.lite0_package import read_lite0_package_file

    return Candidate(describe(spec, path), lambda: read_lite0_package_file(path), str(path))


def encoder_steps(name: str) -> list[Step]:
    """The chain for ``auto`` / ``imagenet``, in order."""
    return [("cache", lambda: _cache_candidate(name)), ("download", lambda: _download_candidate(name)),
            ("package", lambda: _package_candidate(name))]


_CHECKPOINT_WILL_OVERWRITE: contextvars.ContextVar[bool] = contextvars.ContextVar("checkpoint_will_overwrite",
                                                                                    default=False)


@contextlib.contextmanager
def weights_from_checkpoint() -> Iterator[None]:
    """Within this block encoders skip the pretrained-weight chain: a trained checkpoint is loaded next.

    The predictor rebuilds the network from the plans (which say e.g. ``imagenet``) and then loads
    the trained weights; resolving ImageNet weights first would be wasted work and, offline with
    ``imagenet`` asked for, an error on a machine that only predicts.
    """
    token = _CHECKPOINT_WILL_OVERWRITE.set(True)
    try:
        yield
    finally:
        _CHECKPOINT_WILL_OVERWRITE.reset(token)


def resolve_encoder_weights(encoder: nn.Module, weights: str | os.PathLike | None) -> Resolution:
    """Load ``encoder``'s weights (a :class:`~nnunet_phyjoint.network.encoder.TimmEncoder`) as requested.

    Logs ONE line saying from where (or why random).
    """
    request = normalise_request(weights)
    what = f"encoder {encoder.name}"
    if _CHECKPOINT_WILL_OVERWRITE.get():
        return Resolution(what, request, RANDOM, "not resolved: a trained checkpoint is loaded into this network")
    if request == NONE:
        result = Resolution(what, request, RANDOM, "random initialisation, as asked")
        logger.info(result.summary())
        return result
    if is_path_request(request):
        path = Path(request).expanduser()
        load_encoder_weights(encoder, path)  # an explicit file that does not fit is an error, not a fallback
        result = Resolution(what, request, "file", f"explicit file {path}", location=str(path))
        logger.info(result.summary())
        return result
    result = run_chain(what, request, encoder_steps(encoder.name),
                       apply=lambda state: load_encoder_state(encoder, state, origin=encoder.name))
    if result.pretrained:
        logger.info(result.summary())
    elif request == IMAGENET:
        raise PretrainedWeightsNotFound(
            result.summary() + f". Run `phyjoint weights fetch --encoder {encoder.name}` where there is internet, "
            f"use efficientnet_lite0 with {INSTALL_HINT}, or pass a weights file")
    else:
        logger.warning(result.summary() + " (ask for 'imagenet' to make this an error)")
    return result
