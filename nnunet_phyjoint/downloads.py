"""Is a weight download worth trying? Offline machines must fail fast, never hang.

``HF_HUB_OFFLINE=1`` (Hugging Face's own switch) turns off every download of this package,
timm's and torchvision's alike. Otherwise one HEAD request to the download host, bounded by
:data:`PROBE_TIMEOUT_S` in total (name lookup included, which a socket timeout does not
cover, hence the thread), decides; its answer is remembered for the process so that a chain
tried many times (every network construction) pays for it once.
"""
from __future__ import annotations

import os
import threading
import urllib.error
import urllib.request
from urllib.parse import urlparse

PROBE_TIMEOUT_S = float(os.environ.get("PHYJOINT_PROBE_TIMEOUT", "3"))
_TRUE = {"1", "true", "yes", "on"}
_probe_cache: dict[str, str | None] = {}
_lock = threading.Lock()


def offline_reason() -> str | None:
    """Why downloads are switched off by configuration, or ``None`` when they are not."""
    value = os.environ.get("HF_HUB_OFFLINE", "")
    if value.strip().lower() in _TRUE:
        return f"offline: HF_HUB_OFFLINE={value}"
    try:  # huggingface_hub reads the variable once at import; honour that value too
        from huggingface_hub import constants

        if getattr(constants, "HF_HUB_OFFLINE", False):
            return "offline: HF_HUB_OFFLINE is set (huggingface_hub.constants)"
    except ImportError:
        pass
    return None


def _head(url: str, result: list[str | None]) -> None:
    try:
        urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=PROBE_TIMEOUT_S).close()
        result.append(None)
    except urllib.error.HTTPError:  # the server answered: the host is reachable
        result.append(None)
    except Exception as e:  # DNS failure, refused, timeout, TLS, proxy: all mean "no download"
        reason = getattr(e, "reason", e)
        result.append(f"{type(reason).__name__}: {reason}")


def probe(url: str) -> str | None:
    """``None`` if ``url``'s host answers within :data:`PROBE_TIMEOUT_S`, else why not (cached per host)."""
    parts = urlparse(url)
    host = f"{parts.scheme}://{parts.netloc}"
    with _lock:
        if host in _probe_cache:
            return _probe_cache[host]
    result: list[str | None] = []
    worker = threading.Thread(target=_head, args=(host + "/", result), daemon=True)
    worker.start()
    worker.join(PROBE_TIMEOUT_S)
    reason = result[0] if result else f"no answer within {PROBE_TIMEOUT_S:g} s"
    if reason is not None:
        reason = f"offline: cannot reach {parts.netloc} ({reason})"
    with _lock:
        _probe_cache[host] = reason
    return reason


def download_blocked(url: str) -> str | None:
    """Why a download from ``url`` cannot happen now (configuration or connectivity), or ``None``."""
    return offline_reason() or probe(url)


def clear_probe_cache() -> None:
    """Forget remembered probe answers (tests; a machine that came online)."""
    with _lock:
        _probe_cache.clear()
