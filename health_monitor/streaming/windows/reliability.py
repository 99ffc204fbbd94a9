"""Reliability windows: a job's runs in the hour, failure streaks, duration against its own history, SLAs."""

from __future__ import annotations

import math
from collections import deque

import numpy as np
import pandas as pd

from health_monitor.streaming.windows.state import (
    DAY_MS,
    HOUR_MS,
    KeyState,
    Segments,
    _ms,
    _nan,
    _str,
)


def _rel_accumulate(open_: dict[int, dict], g: pd.DataFrame, starts: np.ndarray) -> None:
    """Fold one call's finished runs into the job's hourly windows, all hours at once (one pass
    over the rows; a window's ``runs`` is keyed by run id)."""
    seg = Segments.of(open_, starts)
    for acc in seg.accs:
        acc.setdefault("runs", {})
    t_ms = _ms(g["event_time"])
    cols = [seg.take(g[c]).tolist() for c in ("run_id", "job_name", "result_state", "is_failure", "is_retry",
                                              "duration_s")]
    # Optional columns (recordings and frames made before they were kept lack them).
    more = [seg.take(g[c]).tolist() if c in g.columns else [None] * len(g) for c in ("wait_s", "termination_code")]
    win = seg.window_of_rows()
    for i, (run_id, t, name, state, fail, retry, dur, wait, code) in enumerate(zip(
            cols[0], t_ms[seg.order].tolist(), *cols[1:], *more, strict=True)):
        # A run re-delivered (restated) replaces itself: keyed by run id.
        seg.accs[win[i]]["runs"][run_id] = (t, name, state, bool(fail), bool(retry), _nan(dur), _nan(wait),
                                            _str(code))


#: Floor of a job's log-duration spread: runs within ~10% of each other are not "variable".
MIN_LOG_DURATION_SCALE = 0.1
#: A run this many robust sigmas (log duration) above its job's median is a slow run.
SLOW_RUN_Z = 3.0


def _duration_z(durs: deque, dur: float) -> float:
    """Robust z of a run's log duration against the job's previous successful runs (median and
    MAD of log durations): how unusual the run is *for this job*, whatever its natural spread."""
    if len(durs) < 5 or dur != dur or dur <= 0:
        return float("nan")
    logs = np.log(np.maximum(np.asarray(durs, dtype=float), 1.0))
    med = float(np.median(logs))
    scale = max(1.4826 * float(np.median(np.abs(logs - med))), MIN_LOG_DURATION_SCALE)
    return (math.log(max(dur, 1.0)) - med) / scale


def _median(values: deque) -> float:
    """``float(np.median(values))`` without NumPy's per-call overhead (~20 us for 50 values): the
    middle value, or the two middle values' sum halved, as NumPy's mean of them computes it."""
    v = sorted(values)
    if any(x != x for x in v):
        return float(np.median(values))  # NaN: NumPy's rule (never kept here, but old state may)
    n = len(v)
    m = n // 2
    return float(v[m]) if n % 2 else float((v[m - 1] + v[m]) / 2)


def _rel_features(ks: KeyState, start_ms: int, acc: dict, ctx: dict) -> tuple[float, dict]:
    h = ks.history
    durs: deque = h.setdefault("durations", deque(maxlen=50))
    recent: deque = h.setdefault("recent", deque())
    streaks: deque = h.setdefault("streaks", deque())  # (end ms, length) of finished failure streaks
    streak = h.get("streak", 0)
    run_streak = h.get("run_streak", 0)
    slow = h.get("slow_streak", 0)
    breach = h.get("sla_streak", 0)
    retries = 0
    runs = sorted(acc.get("runs", {}).items(), key=lambda kv: kv[1][0])
    median_before = _median(durs) if len(durs) >= 3 else float("nan")
    while recent and recent[0][0] < start_ms - 7 * DAY_MS:
        recent.popleft()
    while streaks and streaks[0][0] < start_ms - 30 * DAY_MS:
        streaks.popleft()
    # The longest failure streak the job had in the previous 30 days: a flaky job that often
    # fails three times in a row is not news when it does it again.
    prior_max_streak = float(max((n for _, n in streaks), default=0))
    fail_rate_7d = (sum(f for _, f in recent) / len(recent)) if recent else float("nan")
    span_days = (start_ms - recent[0][0]) / DAY_MS if recent else 0.0
    runs_per_day = len(recent) / span_days if span_days >= 2 else float("nan")
    # Whether the job has ever retried a failed run: for such a job a failed first attempt is not
    # yet a failed run (its retry may get through), for one that never retries it is.
    retries_seen = bool(h.get("retries_seen", False))
    sla_hits: deque = h.setdefault("sla_hits", deque())
    sla = ctx.get("sla", {}).get((ks.workspace_id, ks.entity_id))
    failures = 0
    last = None
    dur_z = float("nan")
    for run_id, (t, name, state, fail, retry, dur, *more) in runs:
        # State written before waits and termination codes were kept has six fields.
        _wait, code = (more + [float("nan"), None])[:2]
        if not fail and streak > 0:
            streaks.append((t, streak))
        streak = streak + 1 if fail else 0
        # Runs the schedule (or a person) started within the streak: a failed retry is another
        # attempt of a run already counted, so one run failing with its two retries is a streak
        # of three attempts but of one run.
        run_streak = (run_streak + (0 if retry else 1)) if fail else 0
        failures += int(fail)
        retries += int(retry)
        retries_seen = retries_seen or retry
        recent.append((t, int(fail)))
        if dur == dur:
            dur_z = _duration_z(durs, dur) if not fail else float("nan")
            if not fail:
                slow = slow + 1 if dur_z >= SLOW_RUN_Z else 0
            if sla is not None:
                breach = breach + 1 if dur > sla else 0
                if dur > sla:
                    sla_hits.append(t)
        if not fail and dur == dur:
            durs.append(dur)
        last = (run_id, name, state, fail, retry, dur, _wait, code)
    while sla_hits and sla_hits[0] < start_ms + HOUR_MS - DAY_MS:
        sla_hits.popleft()
    h["streak"] = streak
    h["run_streak"] = run_streak
    h["slow_streak"] = slow
    h["sla_streak"] = breach
    h["retries_seen"] = retries_seen
    run_id, name, state, last_fail, last_retry, dur, wait, last_code = (
        last if last else (None, None, None, False, False, float("nan"), float("nan"), None))
    f = {
        "job_id": ks.entity_id, "job_name": name or ks.entity_id, "run_id": run_id,
        "result_state": state,
        "runs": float(len(runs)), "failures": float(failures),
        "consecutive_failures": float(streak),
        "consecutive_failed_runs": float(run_streak),
        # The latest attempt failed and no retry of it is to be expected: it was a retry itself,
        # or the job does not retry.
        "failure_is_final": float(bool(last_fail) and (bool(last_retry) or not retries_seen)),
        "termination_code": last_code,
        "prior_max_failure_streak": prior_max_streak,
        "duration_s": dur,
        "wait_s": wait,
        "median_duration_s": median_before,
        "duration_ratio": dur / median_before if median_before and median_before > 0 else float("nan"),
        "duration_z": dur_z,
        "slow_run_streak": float(slow),
        "sla_breach_streak": float(breach),
        "sla_breaches_24h": float(len(sla_hits)),
        "runs_per_day_7d": runs_per_day,
        "retries": float(retries),
        "sla_seconds": _nan(sla),
        "sla_breached": float(sla is not None and dur == dur and dur > sla),
        "failure_rate_7d": fail_rate_7d,
    }
    return dur, f
