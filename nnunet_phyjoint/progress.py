"""Progress of the long steps (convert, fit-style, simulate, evaluate, export): a bar on a terminal, lines in a log.

On a terminal :func:`progress` is tqdm's bar. Where the stream is not a terminal (a log file, CI, a
pipe) a bar would be written as carriage-return redraws that fill a log with thousands of updates on
one line; :class:`LineProgress` instead writes an occasional whole line: at every ``every_percent``
of the total (10 % by default), at least every ``every_seconds`` when the total is unknown or the step
is slow, and once at the end::

    converting bus_bra: 188/1875 (10%), 4 s, 47.0 image/s
    ...
    converting bus_bra: 1875/1875 (100%), 39 s, 48.1 image/s
"""
from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterable, Iterator
from typing import IO, Any

EVERY_PERCENT = 10
EVERY_SECONDS = 30.0


def is_terminal(stream: IO | None) -> bool:
    """Whether ``stream`` is an interactive terminal (a closed or odd stream counts as not one)."""
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


class LineProgress:
    """tqdm's interface (iterate, ``update``, ``set_postfix``, ``close``, ``with``) printing whole lines.

    A line is written when the count crosses the next multiple of ``every_percent`` of ``total``, when
    ``every_seconds`` have passed since the last line, and at the end (``close``, or the end of the
    iteration) unless the last line already said the same.
    """

    def __init__(self, iterable: Iterable | None = None, desc: str = "", total: int | None = None,
                 unit: str = "it", disable: bool = False, stream: IO | None = None,
                 every_percent: float = EVERY_PERCENT, every_seconds: float = EVERY_SECONDS, **_ignored: Any) -> None:
        if total is None and iterable is not None:
            try:
                total = len(iterable)  # type: ignore[arg-type]
            except TypeError:
                total = None
        self.iterable = iterable
        self.desc = desc
        self.total = total
        self.unit = unit
        self.disable = disable
        self.stream = stream
        self.every_percent = every_percent
        self.every_seconds = every_seconds
        self.n = 0
        self.postfix = ""
        self.start = time.monotonic()
        self._last_time = self.start
        self._last_n: int | None = None
        self._next_percent = every_percent
        self._closed = False

    # ---------------------------------------------------------------- tqdm's interface
    def __iter__(self) -> Iterator:
        if self.iterable is None:
            raise TypeError("LineProgress without an iterable cannot be iterated; call update() instead")
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __len__(self) -> int:
        return self.total if self.total is not None else len(self.iterable)  # type: ignore[arg-type]

    def __enter__(self) -> "LineProgress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.disable:
            return
        now = time.monotonic()
        due = now - self._last_time >= self.every_seconds
        if self.total and self.every_percent > 0:
            percent = 100.0 * self.n / self.total
            if percent >= self._next_percent:
                due = True
                self._next_percent = (math.floor(percent / self.every_percent) + 1) * self.every_percent
        if due and (self.total is None or self.n < self.total):  # the last one is written by close()
            self._write(now)

    def set_postfix(self, ordered_dict: dict | None = None, refresh: bool = True, **kwargs: Any) -> None:
        items = {**(ordered_dict or {}), **kwargs}
        self.postfix = ", ".join(f"{k}={v}" for k, v in items.items())

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        self.desc = desc or ""

    def refresh(self) -> None:  # tqdm's redraw: nothing to do between lines
        pass

    def write(self, text: str) -> None:
        print(text, file=self._stream(), flush=True)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if not self.disable and self._last_n != self.n:
            self._write(time.monotonic())

    # ---------------------------------------------------------------- lines
    def line(self, now: float | None = None) -> str:
        """The progress line for the current count (without a newline)."""
        elapsed = (time.monotonic() if now is None else now) - self.start
        count = f"{self.n}/{self.total} ({100.0 * self.n / self.total:.0f}%)" if self.total else f"{self.n}"
        per_second = self.n / elapsed if elapsed > 0 else 0.0
        rate = f", {per_second:.1f} {self.unit}/s" if per_second >= 0.1 else (
            f", {elapsed / self.n:.1f} s/{self.unit}" if self.n else "")
        head = f"{self.desc}: " if self.desc else ""
        tail = f", {self.postfix}" if self.postfix else ""
        return f"{head}{count} {self.unit if not self.total else ''}".rstrip() + f", {elapsed:.0f} s{rate}{tail}"

    def _stream(self) -> IO:
        return self.stream if self.stream is not None else sys.stderr

    def _write(self, now: float) -> None:
        print(self.line(now), file=self._stream(), flush=True)
        self._last_time, self._last_n = now, self.n


def progress(iterable: Iterable | None = None, desc: str = "", total: int | None = None, unit: str = "it",
             disable: bool = False, leave: bool = True, stream: IO | None = None, **kwargs: Any):
    """tqdm's bar where ``stream`` (default stderr, as tqdm) is a terminal, else a :class:`LineProgress`.

    Takes tqdm's common arguments; ``every_percent`` and ``every_seconds`` tune the lines
    (tqdm does not see them).
    """
    every = {k: kwargs.pop(k) for k in ("every_percent", "every_seconds") if k in kwargs}
    target = stream if stream is not None else sys.stderr
    if is_terminal(target):
        from tqdm import tqdm

        return tqdm(iterable, desc=desc, total=total, unit=unit, disable=disable, leave=leave, file=stream,
                    **kwargs)
    return LineProgress(iterable, desc=desc, total=total, unit=unit, disable=disable, stream=stream, **every)
