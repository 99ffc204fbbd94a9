"""Billing: hourly usage records for every kind of compute, list prices, and billing's quirks.

Records are per SKU, resource and clock hour, like ``system.billing.usage``. Job-cluster runs
bill under JOBS SKUs with job_id and job_run_id; all-purpose clusters bill by uptime with a
cluster_id and no job_id (jobs on them are attributed through cluster_id downstream); serverless
jobs bill without a cluster_id; warehouses, DLT pipelines and serving endpoints bill by hour.
Billing is imperfect on purpose: rows arrive late (ingestion_date after usage_date), some hours
are missing, and some records are corrected later by a RETRACTION plus a RESTATEMENT.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from health_monitor.gold.simulator.calendar import Window, split_intervals
from health_monitor.gold.simulator.entities import CLOUD, NODES, SKUS, WAREHOUSE_SKU, Estate, uids
from health_monitor.gold.simulator.frames import json_col
from health_monitor.gold.simulator.incidents import Plan

_H = pd.Timedelta(hours=1)


def _pieces(df: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """Cut [start, end) intervals at clock hours: rows repeated per hour and the hour fraction."""
    idx, s, e = split_intervals(df["start"].to_numpy(), df["end"].to_numpy())
    r = df.iloc[idx].reset_index(drop=True)
    r["hour"] = pd.DatetimeIndex(s).floor("h")
    return r, (e - s) / np.timedelta64(1, "h")


def usage_records(estate: Estate, plan: Plan, window: Window, rng: np.random.Generator, runs: pd.DataFrame,
                  sess: pd.DataFrame, billed_wh: pd.DataFrame) -> pd.DataFrame:
    """All ORIGINAL records of the window (before corrections and lateness)."""
    jobs = {j.job_id: j for j in estate.jobs}
    cl_tags = {c.cluster_id: c for c in estate.clusters}
    frames = []
    if not runs.empty:
        jc = runs[runs["compute"].isin(["job_cluster", "serverless"])]
        r, frac = _pieces(jc)
        nodes = r["workers"].to_numpy() + 1
        rate = np.array([NODES[n].dbu_per_hour for n in r["node_type"]])
        serverless = (r["compute"] == "serverless").to_numpy()
        qty = np.where(serverless, nodes * 1.1, nodes * rate) * frac
        photon = r["photon"].to_numpy().astype(bool)
        sku = np.where(serverless, "PREMIUM_JOBS_SERVERLESS_COMPUTE_US_EAST",
                       np.where(photon, "PREMIUM_JOBS_COMPUTE_(PHOTON)", "PREMIUM_JOBS_COMPUTE"))
        frames.append(pd.DataFrame({
            "workspace_id": r["workspace_id"], "sku_name": sku, "hour": r["hour"], "qty": qty,
            "usage_metadata.cluster_id": r["cluster_id"].where(~serverless, None),
            "usage_metadata.job_id": r["job_id"], "usage_metadata.job_run_id": r["run_id"],
            "usage_metadata.node_type": r["node_type"].where(~serverless, None),
            "usage_metadata.job_name": r["run_name"], "usage_metadata.run_name": r["run_name"],
            "identity_metadata.run_as": r["run_as"], "tags": [jobs[j].tags for j in r["job_id"]],
            "is_serverless": serverless, "is_photon": photon | serverless,
            "billing_origin_product": "JOBS", "jobs_tier": "PREMIUM",
        }))
    if not sess.empty:
        r, frac = _pieces(sess)
        nodes = r["workers"].to_numpy() + 1
        rate = np.array([NODES[n].dbu_per_hour for n in r["node_type"]])
        photon = r["photon"].to_numpy().astype(bool)
        owners = [cl_tags[c].owner if c in cl_tags else None for c in r["cluster_id"]]
        frames.append(pd.DataFrame({
            "workspace_id": r["workspace_id"], "hour": r["hour"], "qty": nodes * rate * frac,
            "sku_name": np.where(photon, "PREMIUM_ALL_PURPOSE_COMPUTE_(PHOTON)", "PREMIUM_ALL_PURPOSE_COMPUTE"),
            "usage_metadata.cluster_id": r["cluster_id"], "usage_metadata.node_type": r["node_type"],
            "identity_metadata.owned_by": owners,
            "tags": [cl_tags[c].tags if c in cl_tags else {} for c in r["cluster_id"]],
            "is_serverless": False, "is_photon": photon, "billing_origin_product": "ALL_PURPOSE",
        }))
    if not billed_wh.empty:
        b = billed_wh
        frames.append(pd.DataFrame({
            "workspace_id": b["workspace_id"], "hour": b["hour"],
            "qty": b["dbu_per_hour"] * b["clusters"] * b["fraction"],
            "sku_name": b["wtype"].map(WAREHOUSE_SKU), "usage_metadata.warehouse_id": b["warehouse_id"],
            "tags": b["tags"], "is_serverless": (b["wtype"] == "SERVERLESS").to_numpy(), "is_photon": True,
            "billing_origin_product": "SQL", "sql_tier": b["wtype"].map({"SERVERLESS": "SERVERLESS", "PRO": "PRO", "CLASSIC": "CLASSIC"}),
        }))
    hours = window.hours
    for p in estate.pipelines:
        on = rng.random(len(hours)) < 0.85
        h = hours[on]
        frames.append(pd.DataFrame({
            "workspace_id": p.workspace_id, "hour": h, "qty": p.dbu_per_hour * rng.lognormal(0, 0.2, len(h)),
            "sku_name": p.sku, "usage_metadata.dlt_pipeline_id": p.pipeline_id, "tags": [p.tags] * len(h),
            "identity_metadata.run_as": p.owner, "is_serverless": False, "is_photon": "PHOTON" in p.sku,
            "billing_origin_product": "DLT", "dlt_tier": "ADVANCED" if "ADVANCED" in p.sku else "CORE",
        }))
    for ws in estate.workspaces:
        if ws.serving_endpoint:
            local = (hours.hour.to_numpy() + ws.tz_offset) % 24
            q = ws.serving_dbu * (0.4 + 0.6 * np.exp(-0.5 * ((local - 13) / 4) ** 2)) * rng.lognormal(0, 0.15, len(hours))
            frames.append(pd.DataFrame({
                "workspace_id": ws.workspace_id, "hour": hours, "qty": q,
                "sku_name": "PREMIUM_SERVERLESS_REAL_TIME_INFERENCE_US_EAST",
                "usage_metadata.endpoint_name": ws.serving_endpoint,
                "usage_metadata.endpoint_id": ws.workspace_id[-6:] + "-" + ws.serving_endpoint[:6],
                "tags": [{"team": "ml-platform", "project": "serving"}] * len(hours), "is_serverless": True,
                "is_photon": False, "billing_origin_product": "MODEL_SERVING", "serving_type": "MODEL",
            }))
    df = pd.concat(frames, ignore_index=True)
    # One record per SKU, resource and hour: merge pieces of one hour (e.g. two sessions of a cluster).
    key = ["workspace_id", "sku_name", "hour", "usage_metadata.cluster_id", "usage_metadata.job_run_id",
           "usage_metadata.warehouse_id", "usage_metadata.dlt_pipeline_id", "usage_metadata.endpoint_name"]
    for k in key:
        if k not in df:
            df[k] = None
    # Hours after the window are kept: they become visible later (see generate.split_pending).
    df = df[df["hour"] >= window.start]
    agg = {c: "first" for c in df.columns if c not in key and c != "qty"}
    agg["qty"] = "sum"
    df = df.groupby(key, dropna=False, sort=False).agg(agg).reset_index()
    df = df[df["qty"] > 1e-4].reset_index(drop=True)
    df["qty"] = df["qty"].round(6)
    _billing_errors(estate, plan, df, rng)
    return df


def _billing_errors(estate: Estate, plan: Plan, df: pd.DataFrame, rng: np.random.Generator) -> None:
    for inc in plan.of("billing_error"):
        in_ws = (df["workspace_id"] == inc.workspace_id) & (df["hour"] >= inc.start.floor("h")) & (df["hour"] < inc.end)
        skus = df.loc[in_ws, "sku_name"].value_counts()
        if skus.empty:
            continue
        sku = inc.extra["sku"] if inc.extra["sku"] in skus.index else str(skus.index[0])
        inc.entity_id = inc.extra["sku"] = sku
        inc.description = inc.description.split(" records of ")[0] + f" records of {sku} in " + inc.description.split(" in ", 1)[1]
        hit = in_ws & (df["sku_name"] == sku)
        df.loc[hit, "true_qty"] = df.loc[hit, "qty"]
        df.loc[hit, "qty"] = (df.loc[hit, "qty"] * inc.extra["factor"]).round(6)
        df.loc[hit, "billing_error"] = inc.incident_id


def finalize_usage(estate: Estate, plan: Plan, df: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Record ids, late arrival, missing hours, corrections; flat columns of ``billing.usage``.

    ``_arrival`` (not a table column) is when the record becomes visible in the system table.
    """
    n = len(df)
    # Missing hours: a workspace's records of a whole hour never arrive.
    wh = df["workspace_id"] + "|" + df["hour"].astype(str)
    uniq = wh.unique()
    lost = set(uniq[rng.random(len(uniq)) < 0.002])
    keep = ~wh.isin(lost).to_numpy()
    df = df[keep].reset_index(drop=True)
    n = len(df)
    lag_days = rng.choice([0, 1, 2, 3, 5, 7], n, p=[0.7, 0.2, 0.05, 0.03, 0.015, 0.005])
    arrival = df["hour"] + _H + pd.to_timedelta(rng.uniform(0.5, 6, n), unit="h") + pd.to_timedelta(lag_days, unit="D")
    base = {
        "record_type": np.full(n, "ORIGINAL", dtype=object), "usage_quantity": df["qty"].to_numpy(),
        "_arrival": arrival.to_numpy(),
    }
    out = df.assign(**base)
    # Corrections: a small share of records is retracted and restated days later.
    corr = rng.random(n) < 0.004
    if "billing_error" in df:
        fixed = {i.incident_id for i in plan.of("billing_error") if i.extra.get("corrected")}
        corr |= df["billing_error"].isin(fixed).to_numpy()
    c = out[corr].copy()
    if len(c):
        later = c["_arrival"] + pd.to_timedelta(rng.integers(2, 9, len(c)), unit="D")
        retr = c.assign(record_type="RETRACTION", usage_quantity=-c["usage_quantity"], _arrival=later)
        true_q = c["true_qty"] if "true_qty" in c else pd.Series(np.nan, index=c.index)
        restated = np.where(true_q.notna(), true_q, (c["usage_quantity"] * rng.uniform(0.85, 1.1, len(c))).round(6))
        rest = c.assign(record_type="RESTATEMENT", usage_quantity=restated, _arrival=later + pd.Timedelta(minutes=5))
        out = pd.concat([out, retr, rest], ignore_index=True)
    m = len(out)
    tags = out["tags"]
    result = pd.DataFrame({
        "account_id": estate.account_id, "workspace_id": out["workspace_id"], "record_id": uids(rng, m),
        "sku_name": out["sku_name"], "cloud": CLOUD, "usage_start_time": out["hour"],
        "usage_end_time": out["hour"] + _H, "usage_date": out["hour"].dt.floor("D"),
        "custom_tags": json_col([t if isinstance(t, dict) else {} for t in tags]),
        "usage_unit": "DBU", "usage_quantity": out["usage_quantity"].astype(float),
        "record_type": out["record_type"],
        "ingestion_date": pd.DatetimeIndex(out["_arrival"]).floor("D"),
        "billing_origin_product": out["billing_origin_product"],
        "product_features.is_serverless": out["is_serverless"].astype(bool),
        "product_features.is_photon": out["is_photon"].astype(bool),
        "usage_type": "COMPUTE_TIME", "_arrival": out["_arrival"],
    })
    for c in out.columns:
        if c.startswith(("usage_metadata.", "identity_metadata.")):
            result[c] = out[c].to_numpy()
    for c, dst in (("jobs_tier", "product_features.jobs_tier"), ("sql_tier", "product_features.sql_tier"),
                   ("dlt_tier", "product_features.dlt_tier"), ("serving_type", "product_features.serving_type")):
        if c in out:
            result[dst] = out[c].to_numpy()
    return result


def list_prices(estate: Estate) -> pd.DataFrame:
    """``billing.list_prices``: one open-ended price per SKU, two periods where the price changed."""
    rows = []
    since = pd.Timestamp("2024-01-01")
    for sku, (price, _, unit) in SKUS.items():
        change = estate.price_changes.get(sku)
        periods = [(since, change[0] if change else None, price)]
        if change:
            periods.append((change[0], None, change[1]))
        for start, end, p in periods:
            rows.append({"account_id": estate.account_id, "price_start_time": start, "price_end_time": end,
                         "sku_name": sku, "cloud": CLOUD, "currency_code": "USD", "usage_unit": unit,
                         "pricing.default": p, "pricing.promotional.default": p,
                         "pricing.effective_list.default": p})
    return pd.DataFrame(rows)
