"""Data quality: monitoring results, column snapshots, and the two user-configuration tables.

Freshness comes from when the tables' producer jobs last succeeded, so a stalled or failing
producer makes its table stale; completeness from the table's daily volume with its own
growth, weekday rhythm and noise. ``information_schema.columns`` is snapshotted daily; now and
then a table gains a nullable column (benign), and breaking changes (drop, type change, rename)
come only from incidents.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from health_monitor.gold.simulator.calendar import Calendar, Window
from health_monitor.gold.simulator.entities import Estate
from health_monitor.gold.simulator.frames import json_col
from health_monitor.gold.simulator.incidents import Plan

CHECK_EVERY = "6h"
SNAPSHOT_OFFSET = pd.Timedelta(minutes=30)


def commits(estate: Estate, runs: pd.DataFrame) -> pd.DataFrame:
    """(table, commit_time) for every successful write by a job run."""
    if runs.empty:
        return pd.DataFrame(columns=["table", "commit_time", "job_id"])
    ok = runs[runs["result"] == "SUCCEEDED"]
    writes = {j.job_id: j.writes for j in estate.jobs}
    rec = [(t, e, j) for j, e in zip(ok["job_id"], ok["end"], strict=True) for t in writes[j]]
    return pd.DataFrame(rec, columns=["table", "commit_time", "job_id"])


def dq_results(estate: Estate, plan: Plan, window: Window, rng: np.random.Generator, cal: Calendar,
               runs: pd.DataFrame, last_commit: dict[str, pd.Timestamp] | None = None) -> pd.DataFrame:
    """``data_quality_monitoring.table_results`` rows: a check of every monitored table every 6 hours."""
    checks = pd.date_range(window.start.ceil(CHECK_EVERY), window.end, freq=CHECK_EVERY, inclusive="left")
    if len(checks) == 0:
        return pd.DataFrame()
    cm = commits(estate, runs)
    writers: dict[str, list] = {}
    for j in estate.jobs:
        for t in j.writes:
            writers.setdefault(t, []).append(j)
    readers = {t.full_name: sum(t.full_name in j.reads for j in estate.jobs) for t in estate.tables}
    rows = []
    for t in estate.tables:
        if not t.monitored:
            continue
        c = cm[cm["table"] == t.full_name].sort_values("commit_time")
        if t.full_name not in writers:  # loaded by an outside process, daily around 02:00
            days = pd.date_range(window.start.floor("D") - pd.Timedelta(days=1), window.end, freq="D")
            c = pd.DataFrame({"commit_time": days + pd.to_timedelta(2 + rng.uniform(0, 1, len(days)), unit="h")})
        for inc in plan.of("late_data"):
            if inc.entity_id == t.full_name:  # the producer stalled: nothing landed meanwhile
                c = c[(c["commit_time"] < inc.start) | (c["commit_time"] >= inc.end)]
        times = c["commit_time"].to_numpy()
        pos = np.searchsorted(times, checks.to_numpy(), side="right") - 1
        nat = np.datetime64("NaT", "ns")
        times = times.astype("datetime64[ns]")
        last = np.where(pos >= 0, times[np.clip(pos, 0, None)], nat) if len(times) else np.full(len(checks), nat)
        prior = (last_commit or {}).get(t.full_name)
        if prior is not None:
            last = np.where(pd.isna(last), np.datetime64(prior, "ns"), last)
        gaps = np.diff(times).astype("timedelta64[s]").astype(float) if len(times) > 1 else np.array([86400.0])
        interval = float(np.median(gaps)) if len(gaps) else 86400.0
        # Stale means later than the table's usual longest gap (nights, weekends), not its median.
        tolerance = float(np.quantile(gaps, 0.95)) if len(gaps) else 86400.0
        last_ts = pd.DatetimeIndex(last)
        age = (checks - last_ts) / pd.Timedelta(seconds=1)
        fresh_bad = ~np.isfinite(age.to_numpy(float)) | (age.to_numpy(float) > 1.5 * tolerance + 3600)
        d = checks.floor("D")
        t_days = (d - estate.epoch) / pd.Timedelta(days=1)
        expected = t.daily_rows * np.exp(0.0025 * t_days.to_numpy()) * cal.day_factors(d, 0.6, 0.7, 1.1)
        daily = expected * rng.lognormal(0, 0.08, len(checks))
        for inc in plan.of("quality_degradation") + plan.of("late_data"):
            if inc.entity_id == t.full_name:
                a = inc.active(checks.to_numpy())
                f = inc.extra.get("factor", 0.3)
                daily = np.where(a, daily * f, daily)
        daily = daily.astype("int64")
        lo, hi = (expected * 0.75).astype("int64"), (expected * 1.3).astype("int64")
        comp_bad = (daily < lo) | (daily > hi)
        total = (t.daily_rows * 365 * np.exp(0.0025 * t_days.to_numpy())).astype("int64")
        status = np.where(fresh_bad | comp_bad, "Unhealthy", "Healthy")
        impact = np.where(status == "Unhealthy", np.minimum(4, 1 + readers[t.full_name]), 0)
        upstream = json_col([[{"job_id": j.job_id, "workspace_id": j.workspace_id, "job_name": j.name,
                               "last_run_status": "SUCCEEDED" if not fresh_bad[i] else "FAILED",
                               "run_page_url": f"https://{j.workspace_id}.cloud.databricks.com/jobs/{j.job_id}"}
                              for j in writers.get(t.full_name, [])] for i in range(len(checks))])
        pred = last_ts + pd.Timedelta(seconds=interval)
        rows.append(pd.DataFrame({
            "event_time": checks, "catalog_name": t.catalog, "schema_name": t.schema, "table_name": t.name,
            "catalog_id": f"cat-{t.catalog}", "schema_id": f"sch-{t.catalog}-{t.schema}", "table_id": t.table_id,
            "status": status, "freshness.status": np.where(fresh_bad, "Unhealthy", "Healthy"),
            "freshness.commit_freshness.status": np.where(fresh_bad, "Unhealthy", "Healthy"),
            "freshness.commit_freshness.error_code": None,
            "freshness.commit_freshness.last_value": last_ts, "freshness.commit_freshness.predicted_value": pred,
            "completeness.status": np.where(comp_bad, "Unhealthy", "Healthy"),
            "completeness.total_row_count.status": "Healthy", "completeness.total_row_count.last_value": total,
            "completeness.total_row_count.min_predicted_value": (total * 0.97).astype("int64"),
            "completeness.total_row_count.max_predicted_value": (total * 1.03).astype("int64"),
            "completeness.daily_row_count.status": np.where(comp_bad, "Unhealthy", "Healthy"),
            "completeness.daily_row_count.last_value": daily,
            "completeness.daily_row_count.min_predicted_value": lo,
            "completeness.daily_row_count.max_predicted_value": hi,
            "downstream_impact.impact_level": impact.astype("int32"),
            "downstream_impact.num_downstream_tables": readers[t.full_name],
            "downstream_impact.num_queries_on_affected_tables": np.where(status == "Unhealthy", rng.integers(0, 200, len(checks)), 0),
            "root_cause_analysis.upstream_jobs": upstream,
        }))
    return pd.concat(rows, ignore_index=True)


def _full_type(ty: str) -> tuple[str, str]:
    base = ty.split("(")[0].upper()
    return {"STRING": "STRING", "BIGINT": "LONG", "INT": "INT", "DOUBLE": "DOUBLE", "TIMESTAMP": "TIMESTAMP",
            "DATE": "DATE", "DECIMAL": "DECIMAL"}.get(base, base), ty


def column_snapshots(estate: Estate, plan: Plan, window: Window) -> pd.DataFrame:
    """Daily ``information_schema.columns`` snapshots with benign and breaking schema changes."""
    snaps = pd.date_range(window.start.floor("D") + SNAPSHOT_OFFSET, window.end, freq="D", inclusive="left")
    snaps = snaps[snaps >= window.start]
    if len(snaps) == 0:
        return pd.DataFrame()
    # Benign additions are a property of the estate, not of the window: their own stable seed.
    srng = np.random.default_rng([estate.seed, 77])
    total_days = 3650
    rows = []
    for t in estate.tables:
        add_at = (estate.epoch + pd.Timedelta(days=float(srng.uniform(5, 200)))) if srng.random() < 0.3 else None
        add_col = str(srng.choice(["ingest_source", "updated_by", "_rescued_data", "region_code"]))
        breaks = [i for i in plan.of("breaking_schema_change") if i.entity_id == t.full_name]
        for s in snaps:
            cols = list(t.columns)
            if add_at is not None and s >= add_at:
                cols.append((add_col, "string"))
            for inc in breaks:
                if inc.active(s):
                    col = inc.extra["column"]
                    if inc.extra["change"] == "drop":
                        cols = [c for c in cols if c[0] != col]
                    elif inc.extra["change"] == "rename":
                        cols = [(f"{n}_v2", ty) if n == col else (n, ty) for n, ty in cols]
                    else:
                        cols = [(n, "string" if ty != "string" else "int") if n == col else (n, ty) for n, ty in cols]
            for pos, (name, ty) in enumerate(cols, start=1):
                dt, full = _full_type(ty)
                rows.append((s, t.catalog, t.schema, t.name, name, pos, dt, full,
                             "NO" if pos == 1 else "YES", 0 if name == t.partition_col else None))
    del total_days
    df = pd.DataFrame(rows, columns=["snapshot_time", "table_catalog", "table_schema", "table_name", "column_name",
                                     "ordinal_position", "data_type", "full_data_type", "is_nullable", "partition_index"])
    df["partition_index"] = df["partition_index"].astype("Int64")
    df["ordinal_position"] = df["ordinal_position"].astype("int32")
    df["comment"] = None
    return df


def user_config(estate: Estate, plan: Plan, yearly_cost: dict[str, float]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``commit_configurations`` (sized from projected spend) and ``sla_definitions``."""
    w = estate.window
    years = sorted({w.start.year, (w.end - pd.Timedelta(seconds=1)).year})
    now = w.end
    total = sum(yearly_cost.values())
    commits_ = []
    for y in years:
        commits_.append({"account_id": estate.account_id, "commit_year": y, "workspace_id": None,
                         "commit_amount": round(total * 1.08, -3) or 1000.0, "currency_code": "USD",
                         "start_date": pd.Timestamp(y, 1, 1), "end_date": pd.Timestamp(y, 12, 31), "updated_at": now})
        for ws, cost in sorted(yearly_cost.items(), key=lambda kv: -kv[1])[:2]:
            commits_.append({"account_id": estate.account_id, "commit_year": y, "workspace_id": ws,
                             "commit_amount": round(cost * 1.05, -2) or 100.0, "currency_code": "USD",
                             "start_date": pd.Timestamp(y, 1, 1), "end_date": pd.Timestamp(y, 12, 31), "updated_at": now})
    breach_jobs = {i.entity_id for i in plan.of("sla_breach")}
    rng = np.random.default_rng([estate.seed, 5])
    slas = []
    for j in estate.jobs:
        wanted = j.archetype in ("etl_nightly", "reporting", "ml_scoring", "month_end_close", "ingest_4h", "hourly_ingest")
        if j.job_id in breach_jobs or (wanted and rng.random() < 0.6):
            slas.append({"workspace_id": j.workspace_id, "job_id": j.job_id, "sla_type": "MAX_DURATION",
                         "max_duration_minutes": round(j.base_minutes * (2.2 + j.sigma) + 5, 1), "complete_by_time": None,
                         "timezone": "UTC", "owner": j.creator, "created_at": j.create_time})
            if j.schedule == "daily":
                done = pd.Timestamp(2000, 1, 1, j.hour, j.minute) + pd.Timedelta(minutes=j.base_minutes * 3 + 30)
                slas.append({"workspace_id": j.workspace_id, "job_id": j.job_id, "sla_type": "COMPLETE_BY",
                             "max_duration_minutes": None, "complete_by_time": f"{done:%H:%M}", "timezone": "UTC",
                             "owner": j.creator, "created_at": j.create_time})
    return pd.DataFrame(commits_), pd.DataFrame(slas)
