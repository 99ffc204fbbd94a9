"""Progress lines for anything that takes more than a few seconds.

Library code calls :func:`step`; the CLI turns printing on, tests and jobs leave it off (or
route it to logging), so the same functions serve all three.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

_ENABLED = False
_T0 = time.monotonic()


def enable(on: bool = True) -> None:
    """Print progress lines to stderr (the CLI calls this)."""
    global _ENABLED, _T0
    _ENABLED = on
    _T0 = time.monotonic()


def info(message: str) -> None:
    """One progress line, prefixed with the seconds since the command started."""
    if _ENABLED:
        print(f"[{time.monotonic() - _T0:6.1f}s] {message}", file=sys.stderr, flush=True)


#: Step listeners: benchmarks attach probes (CPU seconds, memory) to the library's own steps.
_LISTENERS: list[Callable[[str, str], None]] = []


def listen(callback: Callable[[str, str], None]) -> None:
    """Call ``callback(message, "start" | "end")`` around every step (bench/ uses it)."""
    _LISTENERS.append(callback)


@contextmanager
def step(message: str) -> Iterator[None]:
    """Announce a step, then report how long it took."""
    start = time.monotonic()
    for cb in _LISTENERS:
        cb(message, "start")
    info(f"{message} ...")
    yield
    info(f"{message}: done in {time.monotonic() - start:.1f}s")
    for cb in _LISTENERS:
        cb(message, "end")
