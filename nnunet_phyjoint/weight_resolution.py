"""One resolution chain for pretrained weights (encoder and VGG-19 descriptor alike).

A request is ``"auto"``, ``"imagenet"``, ``"none"`` or a file path:

- a path: that file, nothing else (a missing or foreign file is an error);
- ``"auto"``: local cache -> the library's own download -> offline registry package -> random
  initialisation, with a warning at the end;
- ``"imagenet"``: the same chain, but an error instead of random weights;
- ``"none"`` (also ``None``, ``"random"``, ``""``): random initialisation, asked for.

Each step either offers a :class:`Candidate` or raises :class:`Unavailable` with the reason;
the first candidate whose weights load and fit wins. :class:`Resolution` keeps the outcome and
every earlier step's reason, and :meth:`Resolution.summary` is the ONE log line about it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

AUTO, IMAGENET, NONE = "auto", "imagenet", "none"
_NONE_ALIASES = {None, "none", "None", "random", ""}
RANDOM = "random"
INSTALL_HINT = 'pip install "nnunet-phyjoint[offline-weights]"'


class Unavailable(Exception):
    """A step of the chain has nothing to offer; the message says why."""


class PretrainedWeightsNotFound(RuntimeError):
    """``"imagenet"`` was asked for and no step of the chain could provide pretrained weights."""


@dataclass
class Candidate:
    """Weights one step can provide. ``load()`` returns whatever the consumer's ``apply`` takes.

    ``load`` may be expensive (a download); finding a candidate never is. A download learns its
    file only while loading and sets ``location`` then.
    """

    description: str
    load: Callable[[], Any]
    location: str | None = None  # the file, when there is one


Step = tuple[str, Callable[[], Candidate]]


@dataclass
class Resolution:
    """Outcome of a chain: the step used (``source``), what it loaded, and why earlier steps failed."""

    what: str
    request: str
    source: str
    description: str
    failures: list[tuple[str, str]] = field(default_factory=list)
    location: str | None = None

    @property
    def pretrained(self) -> bool:
        return self.source != RANDOM

    def summary(self) -> str:
        """One line: what was loaded from where, then each earlier source and why it was not used."""
        if self.pretrained:
            head = f"{self.what} (weights={self.request!r}): loaded from {self.source}: {self.description}"
        else:
            head = f"{self.what} (weights={self.request!r}): {self.description}"
        if not self.failures:
            return head
        return head + "; not from " + "; ".join(f"{name} ({why})" for name, why in self.failures)


def normalise_request(weights: str | os.PathLike | None) -> str:
    """``"auto"``, ``"imagenet"``, ``"none"`` or the path as a string; other words are an error."""
    if weights in _NONE_ALIASES:
        return NONE
    if isinstance(weights, os.PathLike):
        return os.fspath(weights)
    text = str(weights)
    if text.lower() in (AUTO, IMAGENET):
        return text.lower()
    return text


def is_path_request(request: str) -> bool:
    return request not in (AUTO, IMAGENET, NONE)


def validate_request(weights: str | os.PathLike | None) -> str:
    """The normalised request; a path must name an existing file (checked early, e.g. when planning)."""
    request = normalise_request(weights)
    if is_path_request(request) and not Path(request).expanduser().is_file():
        raise FileNotFoundError(
            f"weights {request!r} is neither 'auto', 'imagenet', 'none' nor an existing file")
    return request


def survey(steps: Sequence[Step]) -> tuple[str, Candidate | None, list[tuple[str, str]]]:
    """(step name, candidate) of the first step that offers weights, without loading anything, and the
    reasons of the steps before it; ``(RANDOM, None, reasons)`` when none does."""
    failures: list[tuple[str, str]] = []
    for name, find in steps:
        try:
            return name, find(), failures
        except Unavailable as e:
            failures.append((name, str(e)))
    return RANDOM, None, failures


def run_chain(what: str, request: str, steps: Sequence[Step], apply: Callable[[Any], Any]) -> Resolution:
    """Try ``steps`` in order; the first candidate whose ``load()`` result ``apply`` accepts wins.

    A candidate that fails to load or does not fit (``ValueError``, ``OSError``, ``RuntimeError``)
    counts as a failed step, so a corrupt cache entry falls through to the next source. When
    no step succeeds the result's ``source`` is ``"random"``: the caller keeps its random
    initialisation (or raises, for ``"imagenet"``).
    """
    failures: list[tuple[str, str]] = []
    for name, find in steps:
        try:
            candidate = find()
        except Unavailable as e:
            failures.append((name, str(e)))
            continue
        try:
            apply(candidate.load())
        except (ValueError, OSError, RuntimeError, KeyError) as e:
            failures.append((name, f"{candidate.description} unusable: {e}"))
            continue
        return Resolution(what, request, name, candidate.description, failures, candidate.location)
    outcome = "no pretrained weights found" + ("" if request == IMAGENET else ", using random initialisation")
    return Resolution(what, request, RANDOM, outcome, failures)
