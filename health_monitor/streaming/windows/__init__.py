"""Per-key event-time windows and their features, in pandas: the inside of the stateful operator.

Each streaming domain groups its input rows by entity (a workspace, a workspace x SKU, a user, a
job) and hands them to ``applyInPandasWithState``. For every key this module keeps, in the key's
state: the hourly windows still open (partial aggregates, so late rows inside the watermark
update them), the rolling history the spec's features need (7- and 30-day baselines, failure
streaks, tables a user has read before) and the online detector's bytes. When the watermark
passes a window's end the window is closed: its features are computed from the history *before*
the window is added to it, so every feature, like every score, is causal.

Nothing here touches Spark, so the window logic is tested on plain DataFrames.

This is the one definition of the streams' window features: the stream's stateful function
calls :func:`accumulate` and :func:`close_windows`, and so does the batch replay that writes the
window tables the blended champions train on (:mod:`health_monitor.features.windows`).

Why a package: three small parts, one per domain (``cost``, ``security``, ``reliability``: an
accumulator and a feature function each), share one state layout (``state``: :class:`KeyState`,
pickled into the state store) and the one close-at-the-watermark rule kept here (features from the
history *before* the window is added to it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from health_monitor.streaming.windows.cost import _cost_accumulate, _cost_features
from health_monitor.streaming.windows.reliability import _rel_accumulate, _rel_features
from health_monitor.streaming.windows.security import _sec_accumulate, _sec_features
from health_monitor.streaming.windows.state import (  # noqa: F401 - the package's public names
    DAY_MS,
    HOUR_MS,
    SENSITIVE_REGEX,
    KeyState,
    _calendar,
    _ms,
    is_sensitive_table,
)


@dataclass(frozen=True)
class WindowLogic:
    """How one domain aggregates rows into windows and turns a closed window into features.

    ``accumulate(open, rows, starts)`` folds a call's rows (none behind the key's closed windows)
    into the windows ``open`` maps by start, ``starts`` being each row's window start (ms);
    ``features(ks, start, acc, ctx)`` gives a closed window's value and features.

    The domain's :class:`~health_monitor.domains.DomainSpec` holds it (with the detector that
    judges the features).
    """

    accumulate: Any
    features: Any


COST_WINDOW = WindowLogic(_cost_accumulate, _cost_features)
SECURITY_WINDOW = WindowLogic(_sec_accumulate, _sec_features)
RELIABILITY_WINDOW = WindowLogic(_rel_accumulate, _rel_features)


def _logic(domain: str) -> WindowLogic:
    from health_monitor.domains import spec  # domains imports this module

    logic = spec(domain).window
    if logic is None:
        raise KeyError(f"domain {domain!r} has no streaming window")
    return logic


def accumulate(domain: str, ks: KeyState, pdf: pd.DataFrame, window_ms: int = HOUR_MS) -> int:
    """Fold input rows into the key's open windows; returns rows that hit an already closed window.

    Those rows were behind the watermark for this key; Spark normally drops them first, this is
    the belt to its braces (they are not counted twice: Spark never hands them over).
    """
    if pdf.empty:
        return 0
    if ks.workspace_id is None and "workspace_id" in pdf and pdf["workspace_id"].notna().any():
        ks.workspace_id = str(pdf["workspace_id"].dropna().iloc[0])
    starts = (_ms(pdf["event_time"]) // window_ms) * window_ms
    late = starts < ks.closed_until_ms
    n_late = int(late.sum())
    if n_late < len(pdf):
        # All of the call's rows at once (a groupby per window cost milliseconds per key-hour).
        _logic(domain).accumulate(ks.open, pdf[~late] if n_late else pdf, starts[~late])
    return n_late


def close_windows(domain: str, ks: KeyState, watermark_ms: int, ctx: dict,
                  window_ms: int = HOUR_MS) -> list[dict]:
    """Close every open window whose end is at or before the watermark, oldest first.

    Returns one dict per closed window: window_start/window_end (ms), value and features.
    """
    out = []
    due = sorted(s for s in ks.open if s + window_ms <= watermark_ms)
    if not due:
        return out
    features = _logic(domain).features
    for start in due:
        acc = ks.open.pop(start)
        value, feats = features(ks, start, acc, ctx)
        feats.update(_calendar(start))
        out.append({"window_start": start, "window_end": start + window_ms, "value": value,
                    "features": feats})
        ks.closed_until_ms = max(ks.closed_until_ms, start + window_ms)
    return out


def next_timeout_ms(ks: KeyState, window_ms: int = HOUR_MS) -> int | None:
    """The key's event-time timeout: 1 ms before its oldest open window's end (None: no open window).

    Spark calls a key on its timeout only when the timeout is strictly behind the watermark
    (``timeout < watermark``), while :func:`close_windows` closes a window whose end is at or behind
    it (``end <= watermark``). With the end itself as the timeout, a window whose end the watermark
    reached exactly (hourly rows on the hour and a whole-hour delay: the usual case) waited for its
    key's next rows or the watermark's next move, in a live stream one more data batch. One ms
    before the end, the key is called in the batch whose watermark reaches the end. That changes
    when such a window is scored, never what it holds: the key's rows of that batch are folded in
    before it closes, and a row of it in a later batch is at or behind that batch's late-event
    watermark (the previous batch's, already at the end), so Spark drops it as late, as before.

    Not any earlier (say at the key's own newest event minus the delay): Spark filters a batch's
    late rows against the *previous* batch's watermark, so the batch after the one whose rows
    move past a window's end still admits rows inside that window, and they count
    (``tests/integration/test_streaming.py``).
    """
    return min(ks.open) + window_ms - 1 if ks.open else None
