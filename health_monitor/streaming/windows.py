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

Why one module of over 400 lines: it is three small parts (cost, security, reliability: an
accumulator and a feature function each, ~100 lines apiece) around one state layout
(:class:`KeyState`, pickled into the state store) and one close-at-the-watermark rule. Splitting
it per domain would put the state layout and the causal rule (features from the history *before*
the window) in a fourth module that every part must follow, with nothing in between to test.
"""

from __future__ import annotations

import math
import pickle
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from health_monitor.vocabulary import SENSITIVE_TABLE_REGEX, is_sensitive_table  # noqa: F401 - re-export

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS

#: One definition for stream and batch (re-exported here for the window code and its callers).
SENSITIVE_REGEX = SENSITIVE_TABLE_REGEX


@dataclass
class KeyState:
    """Everything one entity's stream remembers between micro-batches (pickled into the state store)."""

    entity_type: str
    entity_id: str
    workspace_id: str | None = None
    open: dict[int, dict] = field(default_factory=dict)  # window start (epoch ms) -> accumulator
    closed_until_ms: int = -1  # end of the newest closed window
    history: dict[str, Any] = field(default_factory=dict)
    detector: bytes | None = None
    recent: list = field(default_factory=list)  # last scored windows, for rules with ``for: N``

    def dumps(self) -> bytes:
        return pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)

    @staticmethod
    def loads(blob: bytes) -> KeyState:
        return pickle.loads(blob)  # noqa: S301 - our own state store


def _ms(series: pd.Series) -> np.ndarray:
    """Naive UTC timestamps -> epoch milliseconds."""
    return pd.to_datetime(series).to_numpy(dtype="datetime64[ms]").astype("int64")


def _ts(ms: int) -> pd.Timestamp:
    return pd.Timestamp(ms, unit="ms")


def _calendar(start_ms: int) -> dict[str, float]:
    """Hour/weekday features of a window start, with Spark's 1 = Sunday weekday numbering."""
    t = _ts(start_ms)
    dow = (t.dayofweek + 1) % 7 + 1  # pandas Monday=0 -> Spark Sunday=1
    hour = t.hour
    return {
        "hour_of_day": float(hour), "day_of_week": float(dow), "is_weekend": float(dow in (1, 7)),
        "hour_sin": math.sin(2 * math.pi * hour / 24), "hour_cos": math.cos(2 * math.pi * hour / 24),
        "dow_sin": math.sin(2 * math.pi * dow / 7), "dow_cos": math.cos(2 * math.pi * dow / 7),
    }


def _flag(s: pd.Series) -> pd.Series:
    """A nullable boolean column as plain bools (null = False)."""
    return s.astype("boolean").fillna(False).astype(bool)


def _str(x: Any) -> str | None:
    return x if isinstance(x, str) and x else None


def _nan(x: float | None) -> float:
    return float("nan") if x is None else float(x)


# ---------------------------------------------------------------------------------------- cost
def _cost_accumulate(acc: dict, g: pd.DataFrame) -> None:
    acc["cost"] = acc.get("cost", 0.0) + float(g["cost"].sum())
    acc["dbus"] = acc.get("dbus", 0.0) + float(g["dbus"].sum())
    acc["untagged"] = acc.get("untagged", 0.0) + float(g.loc[~_flag(g["is_tagged"]), "cost"].sum())
    skus = acc.setdefault("skus", {})
    for sku, c in g.groupby("sku_name", dropna=True)["cost"].sum().items():
        skus[sku] = skus.get(sku, 0.0) + float(c)
    jobs = acc.setdefault("jobs", {})
    with_job = g[g["job_id"].notna()]
    for (jid, jname), c in with_job.groupby(["job_id", with_job["job_name"].fillna("")])["cost"].sum().items():
        jobs[(jid, jname)] = jobs.get((jid, jname), 0.0) + float(c)
    # Spend per job run, for the job keys only (a workspace's hour holds many runs; nobody reads them).
    if "job_run_id" in g.columns and "entity_type" in g.columns and g["entity_type"].iloc[0] == "job":
        runs = acc.setdefault("runs", {})
        for rid, c in g[g["job_run_id"].notna()].groupby("job_run_id")["cost"].sum().items():
            runs[str(rid)] = runs.get(str(rid), 0.0) + float(c)


def _cost_features(ks: KeyState, start_ms: int, acc: dict, ctx: dict) -> tuple[float, dict]:
    hist: deque = ks.history.setdefault("hourly", deque())
    while hist and hist[0][0] < start_ms - 30 * DAY_MS:
        hist.popleft()
    last7 = np.array([c for t, c in hist if t >= start_ms - 7 * DAY_MS], dtype=float)
    last30 = np.array([c for _, c in hist], dtype=float)
    cost = acc.get("cost", 0.0)
    enough = len(last7) >= 24  # a day of active hours before a baseline means anything
    b7 = float(last7.mean()) if enough else float("nan")
    s7 = float(last7.std(ddof=1)) if enough else float("nan")
    b30 = float(last30.mean()) if len(last30) >= 24 else float("nan")
    # The key's routine at this hour: the mean spend of the same hour over the previous 7 days
    # and of the same hour of the week over the previous 4 (hours without spend count as 0), the
    # larger of the two. A nightly job makes 02:00 expensive every night; a weekly one, Mondays.
    same_day = [c for t, c in hist if t >= start_ms - 7 * DAY_MS and (start_ms - t) % DAY_MS == 0]
    same_week = [c for t, c in hist if t >= start_ms - 28 * DAY_MS and (start_ms - t) % (7 * DAY_MS) == 0]
    days = min(7, int((start_ms - hist[0][0]) // DAY_MS)) if hist else 0
    b_hour = (max(sum(same_day) / days, sum(same_week) / 4 if days >= 7 and start_ms - hist[0][0] >= 28 * DAY_MS
                  else 0.0) if days >= 2 else float("nan"))
    skus = acc.get("skus", {})
    jobs = acc.get("jobs", {})
    top_sku = max(skus, key=skus.get) if skus else None
    top_job = max(jobs, key=jobs.get) if jobs else None
    end_ms = start_ms + HOUR_MS
    # Month-to-date spend runs through the workspace entity only (budget is per workspace).
    t_end = _ts(end_ms - 1)
    month_key = f"{t_end.year}-{t_end.month:02d}"
    mtd = ks.history.setdefault("mtd", {})
    mtd[month_key] = mtd.get(month_key, 0.0) + cost
    for k in [k for k in mtd if k != month_key]:
        del mtd[k]
    month_start = pd.Timestamp(year=t_end.year, month=t_end.month, day=1)
    month_len = month_start + pd.offsets.MonthBegin(1) - month_start
    frac = (_ts(end_ms) - month_start) / month_len
    budget = ctx.get("budgets", {}).get(ks.workspace_id)
    # The key's age and its spend rate over the last 7 days (hours without spend count as zero,
    # a key younger than a week is judged over its life), as a month of that rate.
    # (State kept before this field existed dates the key from its oldest kept hour.)
    first_ms = ks.history.setdefault("first_ms", min(hist[0][0], start_ms) if hist else start_ms)
    history_days = (end_ms - first_ms) / DAY_MS
    rate_hours = min(history_days, 7.0) * 24
    run_rate = (float(last7.sum()) + cost) / rate_hours * (month_len / pd.Timedelta(hours=1)) \
        if rate_hours > 0 else float("nan")
    f = {
        "cost_usd": cost, "dbus": acc.get("dbus", 0.0),
        "baseline_7d": b7, "baseline_30d": b30, "std_7d": s7, "baseline_hour_usd": b_hour,
        "zscore_7d": (cost - b7) / s7 if enough and s7 > 0 else float("nan"),
        "pct_change_7d": (cost - b7) / b7 * 100 if enough and b7 > 0 else float("nan"),
        "ratio_7d": cost / b7 if enough and b7 > 0 else float("nan"),
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
    hist.append((start_ms, cost))
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


# ------------------------------------------------------------------------------------ security
def _sec_accumulate(acc: dict, g: pd.DataFrame) -> None:
    audit = g[g["source"] == "audit"]
    lineage = g[g["source"] == "lineage"]
    hours = pd.to_datetime(g["event_time"]).dt.hour
    off = (hours < 6) | (hours >= 22)
    dow = pd.to_datetime(g["event_time"]).dt.dayofweek
    for k, v in {
        "events": len(audit),
        "logins": int(audit["is_login"].sum()),
        "failed_logins": int((audit["is_login"] & audit["is_failed"]).sum()),
        "off_hours_events": int(off[audit.index].sum()) if len(audit) else 0,
        "weekend_events": int((dow[audit.index] >= 5).sum()) if len(audit) else 0,
        "admin_actions": int(audit["is_admin"].sum()),
        "off_hours_admin_actions": int((audit["is_admin"] & off[audit.index]).sum()) if len(audit) else 0,
        "grants": int(audit["is_grant"].sum()),
        "self_grants": int(audit["is_self_grant"].sum()),
        "export_count": int(audit["is_export"].sum()),
        "export_bytes": float(audit.loc[audit["is_export"], "export_bytes"].fillna(0).sum()),
    }.items():
        acc[k] = acc.get(k, 0) + v
    acc.setdefault("ips", set()).update(audit["ip"].dropna().tolist())
    acc.setdefault("tables", set()).update(lineage["table_name"].dropna().tolist())
    reads = lineage[_flag(lineage["is_sensitive"]) & _flag(lineage["is_read"])]
    acc["sensitive_reads"] = acc.get("sensitive_reads", 0) + len(reads)
    acc.setdefault("sensitive_tables", set()).update(reads["table_name"].dropna().tolist())
    stm = acc.setdefault("statements", {})
    for sid, b in lineage[lineage["statement_id"].notna()][["statement_id", "read_bytes"]].itertuples(
            index=False):
        stm[sid] = max(stm.get(sid, 0.0), 0.0 if b is None or b != b else float(b))
    wss = acc.setdefault("workspaces", {})
    for ws, n in g["workspace_id"].value_counts().items():
        wss[ws] = wss.get(ws, 0) + int(n)


def _is_service_principal(user: str) -> bool:
    # Service principals show up as application ids (UUIDs) rather than e-mail addresses.
    return "@" not in user


def _network(ip: str) -> str:
    """The network an address belongs to: IPv4 /24, IPv6 /48 (a user's office, VPN or home
    network keeps its prefix while the host part changes from day to day)."""
    if ":" in ip:
        return ":".join(ip.split(":")[:3])
    return ".".join(ip.split(".")[:3])


def _own_max(h: dict, name: str, start_ms: int, value: float, known: bool) -> float:
    """The key's largest ``name`` over its previous 30 days (NaN while the key is new), then
    remembers ``value``. Only non-zero windows are kept: the state stays small."""
    q: deque = h.setdefault(name, deque())
    while q and q[0][0] < start_ms - 30 * DAY_MS:
        q.popleft()
    out = max((v for _, v in q), default=0.0) if known else float("nan")
    if value > 0:
        q.append((start_ms, float(value)))
    return out


#: Share of a typical person's active hours in each slot of the week (weekend?, 3-hour band of
#: the day, UTC): the population's pattern a user's own is blended with while their history is
#: short. Weekdays 06-21 hold 80%, weekday nights 5%, weekend days 13%, weekend nights 2%.
_DAYTIME_BANDS = (2, 3, 4, 5, 6)  # 06-09 .. 18-21
POPULATION_SLOT_SHARE = {
    (wk, band): (0.13 / 5 if band in _DAYTIME_BANDS else 0.02 / 3) if wk
    else (0.80 / 5 if band in _DAYTIME_BANDS else 0.05 / 3)
    for wk in (False, True) for band in range(8)
}
#: Active hours the population's pattern is worth in a user's blend.
POPULATION_WEIGHT = 20.0
#: A slot holding under this share of a user's (blended) active hours is outside their pattern.
RARE_SLOT_SHARE = 0.01


def _slot(start_ms: int) -> tuple[bool, int]:
    t = _ts(start_ms)
    return bool(t.dayofweek >= 5), int(t.hour // 3)


def _off_pattern(h: dict, start_ms: int, active: bool) -> float:
    """Share of the user's active hours that fall in this window's slot of the week (their own
    history blended with the population's pattern), then learns the window. A user who works
    weekends has weekend slots in their pattern; one who never did has not."""
    slots: dict = h.setdefault("slots", {})
    total = h.get("active_hours", 0)
    slot = _slot(start_ms)
    share = (slots.get(slot, 0) + POPULATION_WEIGHT * POPULATION_SLOT_SHARE[slot]) / (total + POPULATION_WEIGHT)
    if active:
        slots[slot] = slots.get(slot, 0) + 1
        h["active_hours"] = total + 1
    return share


def _sec_features(ks: KeyState, start_ms: int, acc: dict, ctx: dict) -> tuple[float, dict]:
    seen: set = ks.history.setdefault("pii_seen", set())
    sens = acc.get("sensitive_tables", set())
    first = sens - seen
    # The first windows of a user say nothing about "first access": everything is new then.
    known_for = start_ms - ks.history.setdefault("first_seen_ms", start_ms)
    known = known_for >= 2 * DAY_MS
    first_pii = len(first) if known else 0
    seen.update(sens)
    nets_seen: set = ks.history.setdefault("networks", set())
    nets = {_network(str(ip)) for ip in acc.get("ips", ())}
    new_networks = len(nets - nets_seen) if known else 0
    nets_seen.update(nets)
    # The user's own busiest hours so far: a burst is judged against what this user does.
    sens_max = _own_max(ks.history, "sensitive_reads_hist", start_ms, acc.get("sensitive_reads", 0), known)
    export_max = _own_max(ks.history, "export_count_hist", start_ms, acc.get("export_count", 0), known)
    logins = acc.get("logins", 0)
    events = acc.get("events", 0)
    slot_share = _off_pattern(ks.history, start_ms, events > 0)
    gb = 1024 ** 3
    export_gb = acc.get("export_bytes", 0.0) / gb
    read_gb = sum(acc.get("statements", {}).values()) / gb
    wss = acc.get("workspaces", {})
    f = {
        "user": ks.entity_id,
        "events": float(acc.get("events", 0)),
        "logins": float(logins),
        "failed_logins": float(acc.get("failed_logins", 0)),
        "failed_login_rate": acc.get("failed_logins", 0) / logins if logins else 0.0,
        "distinct_ips": float(len(acc.get("ips", ()))),
        "off_hours_events": float(acc.get("off_hours_events", 0)),
        "weekend_events": float(acc.get("weekend_events", 0)),
        "slot_share": slot_share,
        "off_pattern_events": float(events) if slot_share < RARE_SLOT_SHARE else 0.0,
        "admin_actions": float(acc.get("admin_actions", 0)),
        "off_hours_admin_actions": float(acc.get("off_hours_admin_actions", 0)),
        "tables_touched": float(len(acc.get("tables", ()))),
        "sensitive_table_access": float(acc.get("sensitive_reads", 0)),
        "first_pii_tables": float(first_pii),
        "sensitive_reads_max_30d": sens_max,
        "new_networks": float(new_networks),
        "export_count_max_30d": export_max,
        "grants": float(acc.get("grants", 0)),
        "self_grants": float(acc.get("self_grants", 0)),
        "export_gb": export_gb,
        "export_bytes": float(acc.get("export_bytes", 0.0)),  # documented rule column (domains.py)
        "export_count": float(acc.get("export_count", 0)),
        "read_gb": read_gb,
        "is_service_principal": float(_is_service_principal(ks.entity_id)),
        "sensitivity": 1.0 if sens else (0.3 if acc.get("tables") else 0.0),
        "_workspace_id": max(wss, key=wss.get) if wss else ks.workspace_id,
    }
    return read_gb + export_gb, f


# --------------------------------------------------------------------------------- reliability
def _rel_accumulate(acc: dict, g: pd.DataFrame) -> None:
    runs = acc.setdefault("runs", {})
    cols = ["run_id", "event_time", "job_name", "result_state", "is_failure", "is_retry", "duration_s"]
    # Optional columns (recordings and frames made before they were kept lack them).
    more = [g[c] if c in g.columns else pd.Series(None, index=g.index, dtype=object)
            for c in ("wait_s", "termination_code")]
    for (run_id, t, name, state, fail, retry, dur), wait, code in zip(
            g[cols].itertuples(index=False), *more, strict=True):
        # A run re-delivered (restated) replaces itself: keyed by run id.
        runs[run_id] = (int(pd.Timestamp(t).value // 1_000_000), name, state, bool(fail),
                        bool(retry), _nan(dur), _nan(wait), _str(code))


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
    median_before = float(np.median(durs)) if len(durs) >= 3 else float("nan")
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


@dataclass(frozen=True)
class WindowLogic:
    """How one domain aggregates rows into windows and turns a closed window into features.

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
    logic = _logic(domain)
    for start, g in pdf[~late].groupby(starts[~late]):
        logic.accumulate(ks.open.setdefault(int(start), {}), g)
    return int(late.sum())


def close_windows(domain: str, ks: KeyState, watermark_ms: int, ctx: dict,
                  window_ms: int = HOUR_MS) -> list[dict]:
    """Close every open window whose end is at or before the watermark, oldest first.

    Returns one dict per closed window: window_start/window_end (ms), value and features.
    """
    out = []
    for start in sorted(s for s in ks.open if s + window_ms <= watermark_ms):
        acc = ks.open.pop(start)
        value, feats = _logic(domain).features(ks, start, acc, ctx)
        feats.update(_calendar(start))
        out.append({"window_start": start, "window_end": start + window_ms, "value": value,
                    "features": feats})
        ks.closed_until_ms = max(ks.closed_until_ms, start + window_ms)
    return out


def next_timeout_ms(ks: KeyState, window_ms: int = HOUR_MS) -> int | None:
    """Event time at which the oldest open window can close (the key's timeout), or None."""
    return min(ks.open) + window_ms if ks.open else None
