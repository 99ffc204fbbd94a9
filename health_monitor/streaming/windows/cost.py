"""Cost windows: spend per workspace, SKU, and per unit of work (a job's run, a warehouse's or cluster's day)."""

from __future__ import annotations

import functools
import math
from collections import deque
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from health_monitor.streaming.windows.state import (
    DAY_MS,
    HOUR_MS,
    KeyState,
    Segments,
    _calendar,
    _flags,
    _nan,
    _ts,
)

_EPOCH = datetime(1970, 1, 1)


def _cost_accumulate(open_: dict[int, dict], g: pd.DataFrame, starts: np.ndarray) -> None:
    """Fold one call's usage rows into their hourly windows, all hours at once.

    Per window: spend, DBUs and untagged spend (NumPy sums over the window's rows), spend per SKU,
    per job (id, name) and, for job keys, per job run (summed per (window, sub-key) in one pass).
    """
    seg = Segments.of(open_, starts)
    raw = seg.floats(g["cost"])
    cost = np.where(np.isnan(raw), 0.0, raw)  # a sum skips nulls
    dbus = seg.floats(g["dbus"])
    dbus = np.where(np.isnan(dbus), 0.0, dbus)
    untagged = ~seg.take(_flags(g["is_tagged"]))
    # Spend per job run, for the job keys only (a workspace's hour holds many runs; nobody reads them).
    per_run = "job_run_id" in g.columns and "entity_type" in g.columns and g["entity_type"].iloc[0] == "job"
    for acc, lo, hi in zip(seg.accs, seg.lo.tolist(), seg.hi.tolist(), strict=True):
        c = cost[lo:hi]
        acc["cost"] = acc.get("cost", 0.0) + float(c.sum())
        acc["dbus"] = acc.get("dbus", 0.0) + float(dbus[lo:hi].sum())
        acc["untagged"] = acc.get("untagged", 0.0) + float(c[untagged[lo:hi]].sum())
        acc.setdefault("skus", {})
        acc.setdefault("jobs", {})
        if per_run:
            acc.setdefault("runs", {})
    seg.sub_sums("skus", seg.take(g["sku_name"]).tolist(), seg.take(g["sku_name"].notna()).tolist(), raw)
    jobs = list(zip(seg.take(g["job_id"]).tolist(), seg.take(g["job_name"].fillna("")).tolist(), strict=True))
    seg.sub_sums("jobs", jobs, seg.take(g["job_id"].notna()).tolist(), raw)
    if per_run:
        seg.sub_sums("runs", seg.take(g["job_run_id"]).tolist(), seg.take(g["job_run_id"].notna()).tolist(),
                     raw, as_key=str)


def _hourly(ks: KeyState) -> tuple[np.ndarray, np.ndarray]:
    """The key's closed hours (start ms, ascending) and their spend, as arrays in its history.

    Why arrays: every window's baselines look back over up to 30 days of hours; filtering them
    in NumPy costs a few microseconds where comprehensions over a deque of tuples cost ~200 us
    per window at a month of history. State kept before 2026-12-05 holds a deque of
    (start ms, spend) under ``hourly``: it is converted on first use."""
    h = ks.history
    old = h.pop("hourly", None)
    if old is not None:
        h["hourly_ms"] = np.array([t for t, _ in old], dtype=np.int64)
        h["hourly_usd"] = np.array([c for _, c in old], dtype=float)
    if "hourly_ms" not in h:
        h["hourly_ms"], h["hourly_usd"] = np.zeros(0, dtype=np.int64), np.zeros(0)
    return h["hourly_ms"], h["hourly_usd"]


@functools.lru_cache(maxsize=64)
def _month_bounds(year: int, month: int) -> tuple[int, int]:
    """Start (epoch ns) and length (ns) of a calendar month (pandas' MonthBegin)."""
    start = pd.Timestamp(year=year, month=month, day=1)
    return start.value, (start + pd.offsets.MonthBegin(1) - start).value


def _month_of(ms: int) -> tuple[int, int, int, int]:
    """Year, month, month start (epoch ns) and month length (ns) of the instant ``ms`` (UTC):
    pandas' values, a month's bounds computed once (pandas' offsets cost ~50 us a window)."""
    day = _EPOCH + timedelta(milliseconds=ms)
    return (day.year, day.month, *_month_bounds(day.year, day.month))


def _cost_features(ks: KeyState, start_ms: int, acc: dict, ctx: dict) -> tuple[float, dict]:
    ts, cs = _hourly(ks)
    cut = int(np.searchsorted(ts, start_ms - 30 * DAY_MS))  # hours are closed in order: ts ascends
    ts, cs = ts[cut:], cs[cut:]
    i7 = int(np.searchsorted(ts, start_ms - 7 * DAY_MS))
    # fresh arrays, as the lists they replace gave: the same sums and means, bit for bit
    last7 = cs[i7:].copy()
    last30 = cs.copy()
    cost = acc.get("cost", 0.0)
    enough = len(last7) >= 24  # a day of active hours before a baseline means anything
    b7 = float(last7.mean()) if enough else float("nan")
    s7 = float(last7.std(ddof=1)) if enough else float("nan")
    b30 = float(last30.mean()) if len(last30) >= 24 else float("nan")
    # The key's routine at this hour: the mean spend of the same hour over the previous 7 days
    # and of the same hour of the week over the previous 4 (hours without spend count as 0), the
    # larger of the two. A nightly job makes 02:00 expensive every night; a weekly one, Mondays.
    # (Python sums over the hours oldest first: the values the per-hour loop gave.)
    same_day = cs[i7:][(start_ms - ts[i7:]) % DAY_MS == 0].tolist()
    i28 = int(np.searchsorted(ts, start_ms - 28 * DAY_MS))
    same_week = cs[i28:][(start_ms - ts[i28:]) % (7 * DAY_MS) == 0].tolist()
    first_hour = int(ts[0]) if len(ts) else None
    days = min(7, int((start_ms - first_hour) // DAY_MS)) if first_hour is not None else 0
    b_hour = (max(sum(same_day) / days, sum(same_week) / 4 if days >= 7 and start_ms - first_hour >= 28 * DAY_MS
                  else 0.0) if days >= 2 else float("nan"))
    routine = b7 if math.isnan(b_hour) else max(b_hour, b7)  # NaN while the key has no 7-day baseline
    skus = acc.get("skus", {})
    jobs = acc.get("jobs", {})
    top_sku = max(skus, key=skus.get) if skus else None
    top_job = max(jobs, key=jobs.get) if jobs else None
    end_ms = start_ms + HOUR_MS
    # Month-to-date spend runs through the workspace entity only (budget is per workspace).
    year, month, month_start_ns, month_ns = _month_of(end_ms - 1)
    month_key = f"{year}-{month:02d}"
    mtd = ks.history.setdefault("mtd", {})
    mtd[month_key] = mtd.get(month_key, 0.0) + cost
    for k in [k for k in mtd if k != month_key]:
        del mtd[k]
    # as pandas divides Timedeltas (ns over float ns): (end - month start) / month length
    frac = (end_ms * 1_000_000 - month_start_ns) / float(month_ns)
    budget = ctx.get("budgets", {}).get(ks.workspace_id)
    # The key's age and its spend rate over the last 7 days (hours without spend count as zero,
    # a key younger than a week is judged over its life), as a month of that rate.
    # (State kept before this field existed dates the key from its oldest kept hour.)
    first_ms = ks.history.setdefault("first_ms", min(first_hour, start_ms) if first_hour is not None else start_ms)
    history_days = (end_ms - first_ms) / DAY_MS
    rate_hours = min(history_days, 7.0) * 24
    run_rate = (float(last7.sum()) + cost) / rate_hours * (month_ns / float(HOUR_MS * 1_000_000)) \
        if rate_hours > 0 else float("nan")
    f = {
        "cost_usd": cost, "dbus": acc.get("dbus", 0.0),
        "baseline_7d": b7, "baseline_30d": b30, "std_7d": s7, "baseline_hour_usd": b_hour,
        "zscore_7d": (cost - b7) / s7 if enough and s7 > 0 else float("nan"),
        "pct_change_7d": (cost - b7) / b7 * 100 if enough and b7 > 0 else float("nan"),
        "ratio_7d": cost / b7 if enough and b7 > 0 else float("nan"),
        # Against the key's routine at this hour (never below its 7-day hourly mean): a nightly
        # run is 5x the 7-day mean every night, but 1x what this key spends at 03:00.
        "routine_ratio": cost / routine if enough and routine > 0 else float("nan"),
        "untagged_cost_usd": acc.get("untagged", 0.0),
        "untagged_cost_pct": acc.get("untagged", 0.0) / cost * 100 if cost > 0 else 0.0,
        "mtd_cost_usd": mtd[month_key],
        "month_elapsed_frac": float(min(max(frac, 0.0), 1.0)),
        "budget_usd": _nan(budget),
        "run_rate_month_usd": run_rate,
        "history_days": history_days,
        "sku_count": float(len(skus)), "job_count": float(len(jobs)),
        "sku_name": ks.entity_id.split(":", 1)[1] if ks.entity_type == "workspace_sku" else None,
        "top_sku": top_sku,
        "top_job_id": top_job[0] if top_job else None,
        "top_job": (top_job[1] or top_job[0]) if top_job else None,
    }
    if ks.entity_type in UNIT_KEYS:
        f.update(_unit_features(ks, start_ms, acc))
        if ks.entity_type == "job":
            # billing names the job on some rows only: remember the last name seen
            name = (top_job[1] or None) if top_job else None
            ks.history["name"] = name = name or ks.history.get("name")
            f["job_name"] = name or ks.entity_id
        f["key_label"] = _key_label(ks, f.get("job_name"))
    else:
        # unit_z and unit_cost_usd are champion inputs (cost_anomaly_detector): every key's window
        # carries them, null off the unit keys, so a micro-batch of workspace keys still has every
        # input to blend.
        f["unit_z"] = f["unit_cost_usd"] = float("nan")
    ks.history["hourly_ms"], ks.history["hourly_usd"] = np.append(ts, start_ms), np.append(cs, cost)
    return cost, f


#: Cost keys judged per unit of work (a job's run, a warehouse's or cluster's day) against their
#: own earlier units, not hour by hour: their spend comes in bursts at their own cadence.
UNIT_KEYS = ("job", "warehouse", "cluster")
#: A run unbilled for this long has finished: its total joins the key's history of units.
UNIT_IDLE_MS = 2 * HOUR_MS
#: A run longer than a day (a continuous job) is judged a day at a time.
UNIT_MAX_MS = DAY_MS
#: Finished units a key remembers (its typical unit, its spread and its largest): about a month
#: of days, a week of four-hourly runs. Shorter lets a lasting change become the new normal.
UNIT_HISTORY = 30
#: Floor of the spread of a key's log unit costs: units within ~25% of each other are not "variable".
MIN_LOG_UNIT_SCALE = 0.25


def _key_label(ks: KeyState, job_name: str | None) -> str:
    """How a person names the key: ``Job nightly_etl (123)``, ``SQL warehouse 4f2a``."""
    if ks.entity_type == "job":
        return f"Job {job_name} ({ks.entity_id})" if job_name and job_name != ks.entity_id else f"Job {ks.entity_id}"
    return {"warehouse": "SQL warehouse", "cluster": "All-purpose cluster"}.get(ks.entity_type, ks.entity_type) \
        + f" {ks.entity_id}"


def _unit_features(ks: KeyState, start_ms: int, acc: dict) -> dict:
    """Spend of the key's current unit of work against its own finished units.

    A job's unit is a run (``usage_metadata.job_run_id``; the UTC day where billing names no run),
    a warehouse's or all-purpose cluster's unit is its UTC day. The current unit's cost so far is
    compared with the key's earlier units: a runaway run is visible within hours of its start
    (its cost so far already exceeds what a whole run costs), and whatever the key's cadence (a
    run an hour, a run a week) the comparison is like for like. Ratios are NaN while the key has
    too few finished units to say what is typical.
    """
    h = ks.history
    open_units: dict = h.setdefault("units_open", {})  # unit id -> [first ms, last ms, cost]
    done: deque = h.setdefault("units_done", deque(maxlen=UNIT_HISTORY))  # (end ms, cost, weekend)
    runs = acc.get("runs") or {}
    if ks.entity_type == "job" and runs:
        spend = runs
    else:
        day = _ts(start_ms).strftime("%Y-%m-%d")
        spend = {f"day:{day}": acc.get("cost", 0.0)}
    # Finished before this window: a day whose day is over, a run that went quiet or ran a day.
    for uid in [u for u, (first, last, _) in open_units.items()
                if (u not in spend if u.startswith("day:")
                    else last < start_ms - UNIT_IDLE_MS or start_ms - first >= UNIT_MAX_MS)]:
        first, last, c = open_units.pop(uid)
        done.append((last + HOUR_MS, c, _calendar(first)["is_weekend"]))
    by_day = not (ks.entity_type == "job" and runs)

    def typical_of(weekend: float) -> np.ndarray:
        # A day is judged against days of its kind (weekday, weekend day) once the key has three
        # of them: a warehouse busy on weekdays and quiet at weekends is not 3x on every Monday.
        same = [c for _, c, wk in done if wk == weekend] if by_day else []
        return np.array(same if len(same) >= 3 else [c for _, c, _ in done], dtype=float)

    prior = typical_of(_calendar(start_ms)["is_weekend"])
    current = 0.0
    cur_hours = 0.0
    for uid, c in spend.items():
        u = open_units.setdefault(uid, [start_ms, start_ms, 0.0])
        u[1] = start_ms
        u[2] += float(c)
        if u[2] > current:
            current, cur_hours = u[2], (start_ms + HOUR_MS - u[0]) / HOUR_MS
    n = len(prior)
    typical = float(np.median(prior)) if n >= 3 else float("nan")
    # The last three units, this one included, each against the typical unit of its kind: a
    # runaway that lasts shows in all of them.
    last3 = np.array([])
    if n >= 3 and typical > 0 and len(done) >= 2:
        earlier = [c / max(float(np.median(typical_of(wk))), 1e-9) for _, c, wk in list(done)[-2:]]
        last3 = np.array([*earlier, current / typical])
    z = float("nan")
    if n >= 5 and current > 0:
        logs = np.log(np.maximum(prior, 1e-6))
        med = float(np.median(logs))
        scale = max(1.4826 * float(np.median(np.abs(logs - med))), MIN_LOG_UNIT_SCALE)
        z = (math.log(current) - med) / scale
    ok = n >= 3 and typical > 0
    return {
        "unit_name": "run" if ks.entity_type == "job" and runs else "day",
        "unit_cost_usd": current,
        "unit_hours": cur_hours,
        "units_seen": float(len(done)),
        "typical_unit_usd": typical,
        "unit_ratio": current / typical if ok else float("nan"),
        "unit_z": z,
        "prior_max_unit_usd": float(prior.max()) if n else float("nan"),
        "last3_median_ratio": float(np.median(last3)) if len(last3) == 3 else float("nan"),
        "last3_min_ratio": float(last3.min()) if len(last3) == 3 else float("nan"),
        "unit_usd_at_risk": max(current - typical, 0.0) if ok else float("nan"),
    }
