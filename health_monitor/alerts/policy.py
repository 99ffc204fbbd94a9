"""The "sustained deviation" alert policy, in one place.

A window's detector score alone raises an alert only when it is high (:data:`DETECTOR_MIN_SCORE`),
has lasted (:data:`DETECTOR_MIN_WINDOWS` of the key's last :data:`RECENT_WINDOWS` windows, counted
by :func:`recent_high` in the key's streaming state) and its domain lets the detector speak alone
(:func:`detector_may_alert_alone`). Scoring (streaming/scoring.py) and alert building
(alerts/build.py) both read these.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import pandas as pd

from health_monitor.domains import spec

#: A detector score at or above this raises an alert on its own (without a rule hit).
DETECTOR_MIN_SCORE = 0.8
#: A detector alerts on its own only when this many of the key's last windows (the engine's
#: ``recent_high_windows`` feature, over :data:`RECENT_WINDOWS`)
#: scored at or above ``min_score``: one odd hour of a bursty user or job is noise, a deviation that
#: lasts is not. Frames without that column (older callers, tests) keep single-window alerts.
DETECTOR_MIN_WINDOWS = 2
#: How many of a key's latest windows :func:`recent_high` looks at.
RECENT_WINDOWS = 3

#: A cost detector speaks alone only on a key with this much history (its weekly pattern)...
COST_DETECTOR_MIN_HISTORY_DAYS = 7.0
#: ...and on spend at least this many times what it expected.
COST_DETECTOR_MIN_RATIO = 2.0


def detector_may_alert_alone(domain: str, row: dict[str, Any]) -> bool:
    """Whether a high-scoring window of ``domain`` may raise an alert with no rule hit.

    Never where the domain's spec says ``detector_alerts_alone=False``. For money domains, not on a window no person should be paged for
    (rules still alert): spend below double its expected level (no money at risk in a drop, such
    as a SKU going quiet after a cluster stops; little in a rise of a few tens of percent, which a
    young or flat series scores as extreme), or a key younger than a week, whose expected level
    is still a guess. On the simulated estates these were the detector's lone false cost alerts:
    a SQL warehouse's flat $2.20 hours scored 1.0 against an expected $1.40 in its first week."""
    try:
        dom = spec(domain)
    except KeyError:
        return True  # a domain without a spec: no reason to hold its detector back
    if not dom.detector_alerts_alone or row.get("entity_type") in dom.rules_only_keys:
        return False
    if not dom.value_is_money:
        return True
    value, expected = _num(row.get("value")), _num(row.get("expected"))
    if value is not None and expected is not None and value < COST_DETECTOR_MIN_RATIO * max(expected, 0.0):
        return False
    age = _num(row.get("history_days"))
    return age is None or age >= COST_DETECTOR_MIN_HISTORY_DAYS




def _num(v: Any) -> float | None:
    """A finite float, or None (missing, NaN, infinite, not a number)."""
    if v is None or v is pd.NaT:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) or math.isinf(f) else f


def recent_high(history: dict, scores: Iterable[float]) -> list[float]:
    """Per window: how many of the key's last :data:`RECENT_WINDOWS` windows (this one included)
    scored at or above :data:`DETECTOR_MIN_SCORE`. Kept in the key's state (``history``), so it
    spans micro-batches."""
    last: list = history.setdefault("recent_scores", [])
    out = []
    for s in scores:
        last.append(float(s))
        del last[:-RECENT_WINDOWS]
        out.append(float(sum(v >= DETECTOR_MIN_SCORE for v in last)))
    return out


def sustained(row: dict[str, Any]) -> bool:
    """Whether a window's high score has lasted (frames without ``recent_high_windows``, from
    older callers and tests, keep single-window alerts)."""
    n = _num(row.get("recent_high_windows"))
    return n is None or n >= DETECTOR_MIN_WINDOWS


def detector_alert_type(domain: str) -> str:
    """Alert type of a detector-only alert of ``domain``."""
    try:
        return spec(domain).detector_alert_type or f"{domain}_anomaly"
    except KeyError:
        return f"{domain}_anomaly"
