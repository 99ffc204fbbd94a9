"""One pass of generation: every system table's rows for an hour window, as pandas frames.

``simulate`` runs it once over the whole period; live mode runs it per tick. Rows that belong
to the window but would not be visible yet at its end (billing rows that arrive days late,
the hourly rows of a run still going) are split off as *pending* with the time they become
visible, so the system tables never show the future.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from health_monitor.gold.simulator import audit, compute, jobs, quality, queries, usage
from health_monitor.gold.simulator.calendar import Calendar, Window
from health_monitor.gold.simulator.entities import Estate
from health_monitor.gold.simulator.incidents import Plan

#: When a row of each table becomes visible (defaults to the contract's event time).
VISIBLE_AT = {
    "billing.usage": "_arrival",
    "lakeflow.job_run_timeline": "period_end_time",
    "lakeflow.job_task_run_timeline": "period_end_time",
    "compute.node_timeline": "end_time",
    "query.history": "end_time",
}


@dataclass
class Generated:
    """Generated frames per system table, plus the run list other generators derived from."""

    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    runs: pd.DataFrame | None = None


def rng_for(seed: int, window: Window, part: int) -> np.random.Generator:
    """An independent stream per component and window, so windows and parts never share draws."""
    hours = int((window.start - pd.Timestamp("2000-01-01")) / pd.Timedelta(hours=1))
    return np.random.default_rng([seed, hours, part])


def generate(estate: Estate, plan: Plan, window: Window, seed: int, static: bool = True,
             last_commit: dict[str, pd.Timestamp] | None = None) -> Generated:
    """All system-table rows for ``window``; ``static`` adds the slowly changing tables too."""
    cal = Calendar(range(window.start.year - 1, window.end.year + 2))
    out = Generated()
    runs = jobs.generate_runs(estate, plan, window, rng_for(seed, window, 1), cal)
    out.runs = runs.runs
    out.tables["lakeflow.job_run_timeline"] = runs.timeline
    out.tables["lakeflow.job_task_run_timeline"] = runs.task_timeline
    ap_runs = runs.runs[runs.runs["compute"] == "all_purpose"] if not runs.runs.empty else runs.runs
    sess = compute.sessions(estate, plan, window, rng_for(seed, window, 2), cal, extra=ap_runs)
    since = estate.window.end - pd.Timedelta(days=compute.NODE_TIMELINE_DAYS)
    out.tables["compute.node_timeline"] = compute.node_timeline(estate, sess, runs.runs, rng_for(seed, window, 3), since)
    out.tables["compute.clusters"] = compute.clusters_table(estate, plan, window, runs.runs, static)
    q = queries.generate_queries(estate, plan, window, rng_for(seed, window, 5), cal, runs.runs)
    out.tables["compute.warehouse_events"] = q.events
    raw = usage.usage_records(estate, plan, window, rng_for(seed, window, 6), runs.runs, sess, q.billed)
    out.tables["billing.usage"] = usage.finalize_usage(estate, plan, raw, rng_for(seed, window, 7))
    aud = audit.generate_audit(estate, plan, window, rng_for(seed, window, 8), cal)
    out.tables["access.table_lineage"] = audit.generate_lineage(estate, plan, window, rng_for(seed, window, 9),
                                                                runs.runs, q.history, aud)
    out.tables["query.history"] = q.history.drop(columns=["_table", "_table2", "_tpl"], errors="ignore")
    out.tables["access.audit"] = aud
    out.tables["data_quality_monitoring.table_results"] = quality.dq_results(
        estate, plan, window, rng_for(seed, window, 10), cal, runs.runs, last_commit)
    out.tables["information_schema.columns"] = quality.column_snapshots(estate, plan, window)
    if static:
        out.tables["billing.list_prices"] = usage.list_prices(estate)
        out.tables["access.workspaces_latest"] = pd.DataFrame({
            "account_id": estate.account_id, "workspace_id": [w.workspace_id for w in estate.workspaces],
            "workspace_name": [w.name for w in estate.workspaces], "workspace_url": [w.url for w in estate.workspaces],
            "create_time": [w.create_time for w in estate.workspaces], "status": "RUNNING"})
        out.tables["lakeflow.jobs"], out.tables["lakeflow.job_tasks"] = jobs.jobs_tables(estate, rng_for(seed, window, 11))
        out.tables["compute.node_types"] = compute.node_types_table(estate)
        out.tables["compute.warehouses"] = warehouses_table(estate)
    return out


def warehouses_table(estate: Estate) -> pd.DataFrame:
    """``compute.warehouses``: one row per warehouse."""
    from health_monitor.gold.simulator.frames import json_col

    whs = estate.warehouses
    return pd.DataFrame({
        "warehouse_id": [w.warehouse_id for w in whs], "workspace_id": [w.workspace_id for w in whs],
        "account_id": estate.account_id, "warehouse_name": [w.name for w in whs],
        "warehouse_type": [w.wtype for w in whs], "warehouse_channel": "CHANNEL_NAME_CURRENT",
        "warehouse_size": [w.size for w in whs], "min_clusters": np.array([w.min_clusters for w in whs], "int32"),
        "max_clusters": np.array([w.max_clusters for w in whs], "int32"),
        "auto_stop_minutes": np.array([w.auto_stop for w in whs], "int32"), "tags": json_col([w.tags for w in whs]),
        "change_time": [w.create_time for w in whs], "delete_time": None, "created_by": [w.created_by for w in whs],
    })


def split_pending(name: str, df: pd.DataFrame, event_time: str | None, until: pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(visible by ``until``, pending) parts of a generated frame; pending keeps ``_visible_at``."""
    col = VISIBLE_AT.get(name, event_time)
    if df.empty or col is None or col not in df:
        return df.drop(columns=["_arrival"], errors="ignore"), pd.DataFrame()
    vis = pd.to_datetime(df[col])
    now = (vis < until).to_numpy()
    visible = df[now].drop(columns=["_arrival"], errors="ignore").reset_index(drop=True)
    pending = df[~now].drop(columns=["_arrival"], errors="ignore").reset_index(drop=True)
    pending["_visible_at"] = vis[~now].to_numpy()
    return visible, pending
