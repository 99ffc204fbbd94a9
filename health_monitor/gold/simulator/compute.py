"""Clusters: configurations (SCD), uptime of all-purpose clusters and node utilization.

``compute.node_timeline`` is per minute in Databricks (kept 90 days); the simulator writes one
row per node per 10 minutes (same columns, ``end_time - start_time`` = 10 minutes) and only for
the last :data:`NODE_TIMELINE_DAYS` days of a simulation (every hour in live mode) to keep
volumes sane.
Utilization follows the work on the cluster: job runs load their nodes in proportion to the
job's data volume and memory pressure; interactive clusters idle most of the time with bursts;
an over-provisioned cluster shows many nodes at low CPU.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from health_monitor.gold.simulator.calendar import Calendar, Window, split_intervals
from health_monitor.gold.simulator.entities import NODES, Cluster, Estate
from health_monitor.gold.simulator.frames import json_col
from health_monitor.gold.simulator.incidents import Plan

NODE_SLOT = "10min"
NODE_TIMELINE_DAYS = 30


def untagged_clusters(estate: Estate, plan: Plan) -> list[Cluster]:
    """Clusters that exist only because an ``untagged_spend`` incident created them."""
    out = []
    for inc in plan.of("untagged_spend"):
        ws = next(w for w in estate.workspaces if w.workspace_id == inc.workspace_id)
        owner = estate.users_in(ws.workspace_id, ("engineer", "data_scientist", "analyst"))[0]
        out.append(Cluster(inc.extra["cluster_id"], ws.workspace_id, f"tmp-{inc.incident_id[:6]}", owner.email,
                           "shared", "r5d.2xlarge", "r5d.2xlarge", inc.extra["workers"], inc.extra["workers"],
                           "16.4.x-scala2.12", "ON_DEMAND", 0, False, {}, inc.start, 24.0, "USER_ISOLATION"))
    return out


def sessions(estate: Estate, plan: Plan, window: Window, rng: np.random.Generator, cal: Calendar,
             extra: pd.DataFrame | None = None) -> pd.DataFrame:
    """Uptime sessions of all-purpose clusters: (cluster_id, start, end, workers, load).

    ``extra`` are job runs on all-purpose clusters: a job starts its cluster when it is down.
    """
    days = window.days
    dayf = cal.day_factors(days, 0.15, 0.2, 1.1)
    rows = []
    for c in estate.clusters:
        ws = next(w for w in estate.workspaces if w.workspace_id == c.workspace_id)
        owner_tz = next((u.tz_offset for u in estate.users if u.email == c.owner), ws.tz_offset)
        p_on = np.clip((0.95 if c.kind == "shared" else 0.65) * dayf, 0, 1)
        on = rng.random(len(days)) < p_on
        start = days + pd.to_timedelta(9 - owner_tz + rng.normal(0, 0.8, len(days)), unit="h")
        hours = c.hours_per_day * rng.lognormal(0, 0.3, len(days))
        forgot = (c.auto_termination == 0) & (rng.random(len(days)) < 0.3)
        hours = np.where(forgot, hours + rng.uniform(6, 14, len(days)), hours)
        end = start + pd.to_timedelta(hours * 3600 + c.auto_termination * 60, unit="s")
        span = max(c.max_workers - c.min_workers, 0)
        workers = c.min_workers + np.round(span * rng.beta(2, 3, len(days)))
        load = rng.beta(2, 6, len(days))
        for inc in plan.of("budget_overrun"):
            if inc.workspace_id == c.workspace_id:
                a = inc.active(days.to_numpy())
                frac = np.clip((days - inc.start) / (inc.end - inc.start), 0, 1)
                f = 1 + (inc.extra["factor"] - 1) * frac * 1.6
                on = on | a
                end = pd.DatetimeIndex(np.where(a, (start + pd.to_timedelta(hours * f * 3600, unit="s")).to_numpy(), end.to_numpy()))
                workers = np.where(a, np.ceil(np.maximum(workers, 1) * f), workers)
        for d in range(len(days)):
            if on[d]:
                rows.append((c.cluster_id, c.workspace_id, start[d], end[d], workers[d], load[d], c.worker_node,
                             c.driver_node, c.photon))
    for c in untagged_clusters(estate, plan):
        rows.append((c.cluster_id, c.workspace_id, c.create_time, next(i.end for i in plan.of("untagged_spend")
                                                                     if i.extra["cluster_id"] == c.cluster_id),
                     c.min_workers, 0.5, c.worker_node, c.driver_node, c.photon))
    byid = {c.cluster_id: c for c in estate.clusters}
    if extra is not None and len(extra):
        for r in extra.itertuples(index=False):
            c = byid[r.cluster_id]
            rows.append((c.cluster_id, c.workspace_id, r.start - pd.Timedelta(minutes=3),
                         r.end + pd.Timedelta(minutes=c.auto_termination or 10), max(c.min_workers, 1), 0.7,
                         c.worker_node, c.driver_node, c.photon))
    df = pd.DataFrame(rows, columns=["cluster_id", "workspace_id", "start", "end", "workers", "load", "node_type",
                                     "driver_node", "photon"])
    df["start"] = pd.to_datetime(df["start"]).dt.floor("s")
    df["end"] = pd.to_datetime(df["end"]).dt.floor("s")
    for inc in plan.of("cluster_over_provisioning"):
        a = (df["cluster_id"] == inc.entity_id) & (df["end"] > inc.start) & (df["start"] < inc.end)
        # The same work spread over many more nodes: each node is busy a fraction of the time.
        df.loc[a, "load"] = df.loc[a, "load"] * (df.loc[a, "workers"] + 1) / (inc.extra["workers"] + 1)
        df.loc[a, "workers"] = inc.extra["workers"]
    # Sessions of one cluster never overlap; clip to the window.
    df = df.sort_values(["cluster_id", "start"]).reset_index(drop=True)
    prev_end = df.assign(cm=df.groupby("cluster_id")["end"].cummax()).groupby("cluster_id")["cm"].shift()
    df["start"] = df["start"].where(prev_end.isna() | (df["start"] > prev_end), prev_end + pd.Timedelta(minutes=1))
    df["start"] = df["start"].clip(lower=window.start)
    df["end"] = df["end"].clip(upper=window.end)
    return df[df["end"] > df["start"] + pd.Timedelta(minutes=5)].reset_index(drop=True)


def node_timeline(estate: Estate, sess: pd.DataFrame, runs: pd.DataFrame, rng: np.random.Generator,
                  since: pd.Timestamp | None = None) -> pd.DataFrame:
    """One row per node per 10 minutes for all-purpose sessions and job-cluster runs after ``since``."""
    jr = runs[runs["compute"] == "job_cluster"] if not runs.empty else runs
    work = pd.concat([
        pd.DataFrame({"cluster_id": sess["cluster_id"], "workspace_id": sess["workspace_id"], "start": sess["start"],
                      "end": sess["end"], "workers": sess["workers"].astype(int), "node_type": sess["node_type"],
                      "cpu": 2 + 50 * sess["load"], "mem": 22 + 40 * sess["load"], "interactive": True}),
        pd.DataFrame({"cluster_id": jr["cluster_id"], "workspace_id": jr["workspace_id"], "start": jr["start"],
                      "end": jr["end"], "workers": jr["workers"].astype(int), "node_type": jr["node_type"],
                      "cpu": np.clip(35 + 30 * jr["volume"] ** 0.5, 10, 97),
                      "mem": np.clip(20 + 70 * jr["mem"], 5, 99.5), "interactive": False}),
    ], ignore_index=True)
    if since is not None:
        work = work[work["end"] > since].reset_index(drop=True)
        work["start"] = work["start"].clip(lower=since)
    if work.empty:
        return pd.DataFrame()
    # Nodes: one driver plus the workers (single-node clusters are a driver only).
    nodes = work.loc[work.index.repeat(work["workers"] + 1)].reset_index()
    nodes["k"] = nodes.groupby("index").cumcount()
    nodes["driver"] = nodes["k"] == 0
    nodes["instance_id"] = "i-0" + pd.Series(rng.integers(0, 2**62, len(nodes))).map("{:016x}".format)
    nodes["private_ip"] = ("10." + pd.Series(rng.integers(0, 255, len(nodes))).astype(str) + "."
                           + pd.Series(rng.integers(0, 255, len(nodes))).astype(str) + "."
                           + pd.Series(rng.integers(1, 255, len(nodes))).astype(str))
    idx, p_start, p_end = split_intervals(nodes["start"].to_numpy(), nodes["end"].to_numpy(), NODE_SLOT)
    r = nodes.iloc[idx].reset_index(drop=True)
    m = len(r)
    tod = pd.DatetimeIndex(p_start).hour.to_numpy()
    wave = np.where(r["interactive"], 0.4 + 0.8 * np.exp(-0.5 * ((tod - 14) / 4) ** 2), 1.0)
    burst = np.where(r["interactive"] & (rng.random(m) < 0.08), rng.uniform(20, 60, m), 0)
    cpu = np.clip(r["cpu"].to_numpy() * wave * rng.lognormal(0, 0.25, m) + burst, 0.2, 99)
    cpu = np.where(r["driver"], cpu * 0.4, cpu)
    mem = np.clip(r["mem"].to_numpy() * rng.lognormal(0, 0.06, m), 3, 99.8)
    mem_gb = np.array([NODES[n].memory_mb for n in r["node_type"]]) * 1024 * 1024
    disk = (mem_gb * 4 * np.clip(1 - mem / 150, 0.1, 1)).astype("int64")
    net_scale = cpu * 2.5e6
    return pd.DataFrame({
        "account_id": estate.account_id, "workspace_id": r["workspace_id"], "cluster_id": r["cluster_id"],
        "instance_id": r["instance_id"], "start_time": pd.DatetimeIndex(p_start).floor("min"),
        "end_time": pd.DatetimeIndex(p_start).floor("min") + pd.Timedelta(NODE_SLOT), "driver": r["driver"],
        "cpu_user_percent": np.round(cpu * 0.85, 2), "cpu_system_percent": np.round(cpu * 0.12, 2),
        "cpu_wait_percent": np.round(rng.exponential(0.6, m) + np.clip(mem - 85, 0, None) * 0.3, 2),
        "mem_used_percent": np.round(mem, 2),
        "mem_swap_percent": np.round(np.clip(mem - 92, 0, None) * 2.0, 2),
        "network_sent_bytes": (net_scale * rng.lognormal(0, 0.4, m)).astype("int64"),
        "network_received_bytes": (net_scale * 1.6 * rng.lognormal(0, 0.4, m)).astype("int64"),
        "disk_free_bytes_per_mount_point": '{"/local_disk0":' + pd.Series(disk).astype(str) + "}",
        "node_type": r["node_type"], "private_ip": r["private_ip"],
    }).loc[p_end > p_start].reset_index(drop=True)


def clusters_table(estate: Estate, plan: Plan, window: Window, runs: pd.DataFrame, include_static: bool = True) -> pd.DataFrame:
    """``compute.clusters``: all-purpose clusters with their edits, plus one row per job cluster."""
    rows = []

    def row(c: Cluster, change: pd.Timestamp, workers: int | None = None, dbr: str | None = None,
            delete: pd.Timestamp | None = None) -> dict:
        autoscale = c.max_workers > c.min_workers and workers is None
        return {
            "account_id": estate.account_id, "workspace_id": c.workspace_id, "cluster_id": c.cluster_id,
            "cluster_name": c.name, "owned_by": c.owner, "create_time": c.create_time, "delete_time": delete,
            "driver_node_type": c.driver_node, "worker_node_type": c.worker_node,
            "worker_count": None if autoscale else (workers if workers is not None else c.min_workers),
            "min_autoscale_workers": c.min_workers if autoscale else None,
            "max_autoscale_workers": c.max_workers if autoscale else None,
            "auto_termination_minutes": c.auto_termination, "enable_elastic_disk": True, "tags": c.tags,
            "cluster_source": "UI" if c.kind == "personal" else "API", "init_scripts": [],
            "aws_attributes.availability": c.availability, "aws_attributes.first_on_demand": 1,
            "aws_attributes.spot_bid_price_percent": 100, "aws_attributes.zone_id": "us-east-1a",
            "dbr_version": dbr or c.dbr, "change_time": change, "change_date": change.floor("D"),
            "data_security_mode": c.data_security_mode, "policy_id": None,
        }

    if include_static:
        for c in estate.clusters:
            rows.append(row(c, c.create_time))
            for when, new in c.upgrades:
                rows.append(row(c, when, dbr=new))
    # Changes made by incidents, each written in the window it happens in (live ticks included).
    inc_rows = []
    for inc in plan.of("cluster_over_provisioning"):
        c = next(x for x in estate.clusters if x.cluster_id == inc.entity_id)
        inc_rows += [row(c, inc.start, workers=inc.extra["workers"]), row(c, inc.end)]
    for c in untagged_clusters(estate, plan):
        end = next(i.end for i in plan.of("untagged_spend") if i.extra["cluster_id"] == c.cluster_id)
        inc_rows += [row(c, c.create_time), row(c, end, delete=end)]
    rows += [r for r in inc_rows if window.start <= r["change_time"] < window.end]
    jr = runs[runs["compute"] == "job_cluster"] if not runs.empty else runs
    df = pd.DataFrame(rows)
    if len(jr):
        job = {j.job_id: j for j in estate.jobs}
        owners = [job[j].run_as for j in jr["job_id"]]
        start = pd.DatetimeIndex(jr["start"])
        jc = pd.DataFrame({
            "account_id": estate.account_id, "workspace_id": jr["workspace_id"].to_numpy(),
            "cluster_id": jr["cluster_id"].to_numpy(),
            "cluster_name": ["job-" + j + "-run-" + r for j, r in zip(jr["job_id"], jr["run_id"], strict=True)],
            "owned_by": owners, "create_time": start, "delete_time": pd.DatetimeIndex(jr["end"]),
            "driver_node_type": jr["node_type"].to_numpy(), "worker_node_type": jr["node_type"].to_numpy(),
            "worker_count": jr["workers"].to_numpy(), "auto_termination_minutes": 0, "enable_elastic_disk": True,
            "tags": [job[j].tags for j in jr["job_id"]], "cluster_source": "JOB",
            "aws_attributes.availability": jr["availability"].to_numpy(), "aws_attributes.first_on_demand": 1,
            "aws_attributes.spot_bid_price_percent": 100, "aws_attributes.zone_id": "us-east-1a",
            "dbr_version": jr["dbr"].to_numpy(), "change_time": start, "change_date": start.floor("D"),
            "data_security_mode": "SINGLE_USER",
        })
        df = pd.concat([df, jc], ignore_index=True) if len(df) else jc
    if df.empty:
        return df
    df["tags"] = json_col(df["tags"])
    for c in ("worker_count", "min_autoscale_workers", "max_autoscale_workers", "auto_termination_minutes"):
        if c in df:
            df[c] = df[c].astype("Int64")
    if "init_scripts" in df:
        df["init_scripts"] = [v if isinstance(v, list) else None for v in df["init_scripts"]]
    return df


def node_types_table(estate: Estate) -> pd.DataFrame:
    """``compute.node_types``: hardware of every node type the estate uses."""
    return pd.DataFrame({"account_id": estate.account_id, "node_type": [n.node_type for n in NODES.values()],
                         "core_count": [float(n.cores) for n in NODES.values()],
                         "memory_mb": [n.memory_mb for n in NODES.values()],
                         "gpu_count": [n.gpus for n in NODES.values()]})

