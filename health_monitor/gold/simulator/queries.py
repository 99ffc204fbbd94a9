"""SQL warehouses: statements, scaling events and the warehouse hours that get billed.

Statement load per warehouse follows office hours in its workspace's timezone, weekdays,
month ends and growth. Statements are real SQL over the estate's tables (joins, ``SELECT *``,
window functions, CTEs, aggregations with and without partition filters, MERGE, COPY INTO,
exports); their I/O follows from the table's size and whether the partition filter prunes,
and their queueing from how busy the warehouse is in that hour. A warehouse is running in the
hours it has statements (plus its auto-stop tail) and scales clusters with the load.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from health_monitor.gold.simulator.calendar import Calendar, Window, office_curve
from health_monitor.gold.simulator.entities import WAREHOUSE_SIZES, Estate, Table, uids
from health_monitor.gold.simulator.incidents import Plan

_CLIENTS = {"analyst": ["Databricks SQL Editor", "Tableau", "Power BI", "Databricks SQL Dashboard"],
            "engineer": ["Databricks SQL Editor", "dbt", "Databricks JDBC Driver", "Notebook"],
            "data_scientist": ["Notebook", "Databricks SQL Editor", "databricks-sql-python"],
            "admin": ["Databricks SQL Editor"], "service_principal": ["Databricks SQL Dashboard", "dbt", "Jobs"]}


@dataclass
class QueryOutput:
    """Statements, warehouse events and the warehouse hours to bill."""

    history: pd.DataFrame
    events: pd.DataFrame
    billed: pd.DataFrame  # warehouse_id, workspace_id, hour, fraction, clusters, sku, dbu_per_hour


def _cols(t: Table) -> dict[str, str]:
    strings = [c for c, ty in t.columns if ty == "string"]
    nums = [c for c, ty in t.columns if ty in ("double", "int") or ty.startswith("decimal")] or [t.columns[0][0]]
    ts = [c for c, ty in t.columns if ty == "timestamp"] or [t.columns[0][0]]
    return {"k": t.columns[0][0], "c1": (strings or [t.columns[0][0]])[0], "c2": (strings[1:] or strings or [t.columns[0][0]])[0],
            "num": nums[-1], "ts": ts[0], "part": t.partition_col or t.columns[0][0], "t": t.full_name,
            "schema": f"{t.catalog}.{t.schema}", "name": t.name}


# (statement_type, text, scan fraction: "full" | "part" | "limit" | "meta" | "write")
_TEMPLATES = [
    ("SELECT", "SELECT * FROM {t}", "full", 0.05),
    ("SELECT", "SELECT * FROM {t} LIMIT 1000", "limit", 0.1),
    ("SELECT", "SELECT {c1}, COUNT(*) AS n, SUM({num}) AS total\nFROM {t}\nWHERE {part} >= current_date() - INTERVAL 7 DAYS\nGROUP BY {c1}\nORDER BY total DESC", "part", 0.2),
    ("SELECT", "SELECT {c1}, SUM({num}) AS total FROM {t} WHERE {c2} = 'active' GROUP BY {c1}", "full", 0.08),
    ("SELECT", "SELECT a.*, b.{num} AS b_{num}\nFROM {t} a\nJOIN {t2} b ON a.{k} = b.{k2}\nWHERE a.{part} = current_date() - 1", "part", 0.12),
    ("SELECT", "SELECT {c1}, {num}, ROW_NUMBER() OVER (PARTITION BY {c1} ORDER BY {ts} DESC) AS rn\nFROM {t}\nQUALIFY rn = 1", "full", 0.06),
    ("SELECT", "WITH recent AS (\n  SELECT * FROM {t} WHERE {part} >= date_sub(current_date(), 30)\n)\nSELECT {c1}, AVG({num}) AS avg_{num}, PERCENTILE_APPROX({num}, 0.95) AS p95\nFROM recent GROUP BY {c1} ORDER BY 2 DESC", "part", 0.12),
    ("SELECT", "SELECT date_trunc('month', {ts}) AS month, {c1}, SUM({num}) OVER (PARTITION BY {c1} ORDER BY date_trunc('month', {ts})) AS running\nFROM {t} WHERE {part} >= '2026-01-01'", "part", 0.05),
    ("MERGE", "MERGE INTO {t} AS tgt\nUSING (SELECT * FROM {t2} WHERE {part2} = current_date()) AS src\nON tgt.{k} = src.{k}\nWHEN MATCHED THEN UPDATE SET *\nWHEN NOT MATCHED THEN INSERT *", "write", 0.06),
    ("INSERT", "INSERT INTO {t} SELECT * FROM {t2} WHERE {part2} = current_date() - 1", "write", 0.04),
    ("COPY", "COPY INTO {t}\nFROM 's3://acme-landing/{schema}/{name}/'\nFILEFORMAT = PARQUET\nCOPY_OPTIONS ('mergeSchema' = 'true')", "write", 0.03),
    ("DESCRIBE", "DESCRIBE TABLE EXTENDED {t}", "meta", 0.05),
    ("SHOW", "SHOW TABLES IN {schema}", "meta", 0.04),
]
#: Statements per hour one warehouse cluster of size SMALL serves before statements queue.
HOURLY_CAPACITY = 12
_TPL_P = np.array([t[3] for t in _TEMPLATES]) / sum(t[3] for t in _TEMPLATES)


def table_bytes(t: Table, t_days: np.ndarray | float) -> np.ndarray:
    """Size of a table: a year of daily rows at ~150 bytes a row, growing slowly."""
    return t.daily_rows * 150 * 365 * np.exp(0.002 * np.asarray(t_days))


def generate_queries(estate: Estate, plan: Plan, window: Window, rng: np.random.Generator, cal: Calendar,
                     runs: pd.DataFrame) -> QueryOutput:
    """Statements of the window on every warehouse, plus scaling events and billed hours."""
    hours = window.hours
    h_np = hours.to_numpy()
    dayf = cal.day_factors(hours.floor("D"), 0.3, 0.35, 1.3)
    t_days_h = (hours - estate.epoch) / pd.Timedelta(days=1)
    parts: list[pd.DataFrame] = []
    events: list[tuple] = []
    billed: list[pd.DataFrame] = []
    for wh in estate.warehouses:
        ws = next(w for w in estate.workspaces if w.workspace_id == wh.workspace_id)
        local = hours.hour.to_numpy() + ws.tz_offset
        curve = office_curve(local)
        rate = wh.queries_per_day * curve / curve.sum() * len(hours) / 24 * dayf
        rate = rate * np.exp(ws.growth * t_days_h) * rng.lognormal(0, 0.15, len(hours))
        capacity = wh.max_clusters * HOURLY_CAPACITY * (WAREHOUSE_SIZES[wh.size] / 12) ** 0.3
        for inc in plan.of("warehouse_saturation"):
            if inc.entity_id == wh.warehouse_id:
                # A surge beyond what even the largest cluster count can serve.
                surge = np.maximum(rate * inc.extra["factor"], capacity * (1.1 + 0.5 * inc.magnitude))
                rate = np.where(inc.active(h_np), surge, rate)
        for inc in plan.of("budget_overrun"):
            if inc.workspace_id == wh.workspace_id:
                frac = np.clip((hours - inc.start) / (inc.end - inc.start), 0, 1)
                rate = np.where(inc.active(h_np), rate * (1 + (inc.extra["factor"] - 1) * frac * 1.5), rate)
        n = rng.poisson(rate)
        # Reporting jobs on this warehouse add their statements inside their runs.
        jr = runs[(runs["compute"] == "warehouse") & (runs["warehouse_id"] == wh.warehouse_id)] if not runs.empty else runs
        q = _statements(estate, wh, ws, np.repeat(h_np, n), rng, plan, jr, n, h_np)
        if q.empty:
            continue
        parts.append(q)
        ev, bill = _scaling(wh, q, rng, window)
        events += ev
        billed.append(bill)
    history = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    history = _inject_security(estate, plan, window, rng, history)
    ev = pd.DataFrame(events, columns=["account_id", "workspace_id", "warehouse_id", "event_type", "cluster_count",
                                       "event_time"])
    ev["event_time"] = pd.to_datetime(ev["event_time"].astype("int64")).dt.floor("ms")
    ev["cluster_count"] = ev["cluster_count"].astype("int32")
    ev["account_id"] = estate.account_id
    return QueryOutput(history, ev, pd.concat(billed, ignore_index=True) if billed else pd.DataFrame())


def _statements(estate: Estate, wh, ws, hour_of_row: np.ndarray, rng: np.random.Generator,  # noqa: ANN001
                plan: Plan, job_runs: pd.DataFrame, per_hour: np.ndarray, h_np: np.ndarray) -> pd.DataFrame:
    m = len(hour_of_row)
    start = hour_of_row + (rng.uniform(0, 3600, m) * 1e9).astype("timedelta64[ns]")
    people = estate.users_in(wh.workspace_id, ("analyst", "engineer", "data_scientist", "admin"))
    sps = estate.users_in(wh.workspace_id, ("service_principal",))
    weights = np.array([u.activity * (3 if u.role == "analyst" else 1) for u in people])
    who = [people[i] for i in rng.choice(len(people), m, p=weights / weights.sum())]
    dash = rng.random(m) < 0.25
    if sps:
        for i in np.flatnonzero(dash):
            who[i] = sps[int(rng.integers(0, len(sps)))]
    src_job = np.full(m, None, dtype=object)
    src_run = np.full(m, None, dtype=object)
    if len(job_runs):
        k = rng.integers(3, 9, len(job_runs))
        js = np.repeat(np.arange(len(job_runs)), k)
        jstart = job_runs["start"].to_numpy()[js]
        jdur = (job_runs["end"].to_numpy()[js] - jstart)
        jt = jstart + (rng.uniform(0.05, 0.9, len(js)) * jdur.astype("int64")).astype("timedelta64[ns]")
        start = np.concatenate([start, jt])
        runas = {u.email: u for u in estate.users}
        who += [runas.get(e) or people[0] for e in job_runs["run_as"].to_numpy()[js]]
        src_job = np.concatenate([src_job, job_runs["job_id"].to_numpy()[js]])
        src_run = np.concatenate([src_run, job_runs["run_id"].to_numpy()[js]])
        dash = np.concatenate([dash, np.zeros(len(js), bool)])
        m = len(start)
    tables = estate.tables
    tw = np.array([0.3 if t.sensitive else 1.0 for t in tables]) * np.array([1 + np.log10(t.daily_rows) for t in tables])
    ti = rng.choice(len(tables), m, p=tw / tw.sum())
    ti2 = rng.choice(len(tables), m, p=tw / tw.sum())
    tpl = rng.choice(len(_TEMPLATES), m, p=_TPL_P)
    # Dashboards run cached aggregates; jobs write.
    tpl = np.where(dash, rng.choice([2, 3, 6, 7], m), tpl)
    tpl = np.where(src_job != None, rng.choice([2, 8, 9, 10], m), tpl)  # noqa: E711
    t_days = (pd.DatetimeIndex(start) - estate.epoch) / pd.Timedelta(days=1)
    texts, stypes, scan = [], [], []
    tcols = [_cols(t) for t in tables]
    for i in range(m):
        st, text, kind, _ = _TEMPLATES[tpl[i]]
        a, b = tcols[ti[i]], tcols[ti2[i]]
        texts.append(text.format(**a, t2=b["t"], k2=b["k"], part2=b["part"]))
        stypes.append(st)
        scan.append(kind)
    scan = np.array(scan)
    size = np.array([table_bytes(t, 0) for t in tables])[ti] * np.exp(0.002 * t_days.to_numpy())
    frac = np.select([scan == "full", scan == "part", scan == "limit", scan == "meta", scan == "write"],
                     [1.0, rng.uniform(1 / 365, 30 / 365, m), 0.0005, 0.0, rng.uniform(0.001, 0.01, m)])
    read_bytes = (size * frac * rng.lognormal(0, 0.3, m)).astype("int64")
    dbu = WAREHOUSE_SIZES[wh.size]
    throughput = 150e6 * dbu ** 0.8  # bytes per second of execution
    cached = dash & (rng.random(m) < 0.35)
    exec_ms = (150 + read_bytes / throughput * 1000 * rng.lognormal(0, 0.5, m)
               + np.where(tpl == 4, read_bytes / throughput * 600, 0)).astype("int64")
    exec_ms = np.where(cached, rng.integers(5, 40, m), exec_ms)
    comp_ms = rng.lognormal(np.log(120), 0.6, m).astype("int64")
    # Queueing: statements in busy hours wait for capacity.
    busy = per_hour[np.clip(np.searchsorted(h_np, pd.DatetimeIndex(start).floor("h").to_numpy()), 0, len(h_np) - 1)]
    capacity = wh.max_clusters * HOURLY_CAPACITY * (dbu / 12) ** 0.3
    rho = busy / capacity
    wait_cap = np.where(rho > 0.5, rng.exponential(1, m) * 30000 * np.clip(rho - 0.5, 0, None) ** 1.5, 0).astype("int64")
    cold = rng.random(m) < (0.02 if wh.wtype == "SERVERLESS" else 0.05)
    wait_compute = np.where(cold, rng.uniform(4000, 9000, m) if wh.wtype == "SERVERLESS" else rng.uniform(60000, 240000, m), 0).astype("int64")
    fetch_ms = np.where(scan == "full", rng.lognormal(np.log(800), 0.8, m), rng.lognormal(np.log(30), 0.6, m)).astype("int64")
    status = rng.choice(["FINISHED", "FAILED", "CANCELED"], m, p=[0.968, 0.022, 0.01])
    err = np.where(status == "FAILED", rng.choice([
        "[TABLE_OR_VIEW_NOT_FOUND] The table or view cannot be found.",
        "[PARSE_SYNTAX_ERROR] Syntax error at or near 'FROM'.",
        "[DIVIDE_BY_ZERO] Division by zero. Use `try_divide` to tolerate divisor being 0.",
        "[CAST_INVALID_INPUT] The value cannot be cast because it is malformed."], m), None)
    for inc in plan.of("breaking_schema_change"):
        hit = (np.array([tables[i].full_name for i in ti]) == inc.entity_id) & (start >= inc.start.to_datetime64()) & (start < inc.end.to_datetime64()) & (scan != "meta")
        status = np.where(hit & (rng.random(m) < 0.8), "FAILED", status)
        err = np.where(hit & (status == "FAILED"),
                       f"[UNRESOLVED_COLUMN.WITH_SUGGESTION] A column with name `{inc.extra['column']}` cannot be resolved.", err)
    failed = status != "FINISHED"
    exec_ms = np.where(failed, (exec_ms * rng.uniform(0.01, 0.5, m)).astype("int64"), exec_ms)
    total = wait_compute + wait_cap + comp_ms + exec_ms + fetch_ms
    rows_read = (read_bytes / 150).astype("int64")
    produced = np.select([scan == "limit", scan == "full", scan == "meta", scan == "write"],
                         [np.minimum(1000, rows_read), rows_read, rng.integers(5, 60, m), 0],
                         (rng.lognormal(np.log(200), 1.5, m)).astype("int64"))
    written = np.where(scan == "write", (rows_read * rng.uniform(0.5, 1.5, m)).astype("int64"), 0)
    files = np.maximum(np.where(scan == "meta", 0, 1), (read_bytes / 128e6).astype("int64"))
    pruned = np.where(scan == "part", (files * rng.uniform(5, 60, m)).astype("int64"), 0)
    spill = np.where((tpl == 4) & (read_bytes > throughput * 20), read_bytes * rng.uniform(0.1, 0.6, m), 0).astype("int64")
    start_ts = pd.DatetimeIndex(start).floor("ms")
    end_ts = start_ts + pd.to_timedelta(total, unit="ms")
    clients = [_CLIENTS[u.role][int(rng.integers(0, len(_CLIENTS[u.role])))] for u in who]
    return pd.DataFrame({
        "account_id": estate.account_id, "workspace_id": wh.workspace_id, "statement_id": uids(rng, m),
        "executed_by": [u.email for u in who], "session_id": uids(rng, m), "execution_status": status,
        "compute.type": "WAREHOUSE", "compute.warehouse_id": wh.warehouse_id,
        "executed_by_user_id": [u.user_id for u in who], "statement_text": texts, "statement_type": stypes,
        "error_message": err,
        "client_application": np.where(dash, "Databricks SQL Dashboard", np.where(src_job != None, "Jobs", clients)),  # noqa: E711
        "client_driver": None, "total_duration_ms": total, "waiting_for_compute_duration_ms": wait_compute,
        "waiting_at_capacity_duration_ms": wait_cap, "execution_duration_ms": exec_ms,
        "compilation_duration_ms": comp_ms, "total_task_duration_ms": (exec_ms * rng.uniform(1, 8 * max(1, dbu / 12), m)).astype("int64"),
        "result_fetch_duration_ms": fetch_ms, "start_time": start_ts, "end_time": end_ts, "update_time": end_ts,
        "read_partitions": np.where(scan == "full", (files / 4).astype("int64") + 1, np.maximum(1, files // 20)),
        "pruned_files": pruned, "read_files": files, "read_rows": rows_read, "produced_rows": produced,
        "read_bytes": read_bytes, "read_io_cache_percent": rng.integers(0, 100, m).astype("int32"),
        "from_result_cache": cached, "spilled_local_bytes": spill, "written_bytes": written * 150,
        "shuffle_read_bytes": np.where(np.isin(tpl, [2, 3, 4, 5, 6, 7]), read_bytes * 0.2, 0).astype("int64"),
        "query_source.job_info.job_id": src_job, "query_source.job_info.job_run_id": src_run,
        "query_source.dashboard_id": np.where(dash, "01ef" + pd.Series(ti).astype(str).str.zfill(4).to_numpy() + "a1b2c3d4e5f6a7b8c9d0e1f2", None),
        "executed_as": [u.email for u in who], "written_rows": written, "written_files": np.where(scan == "write", np.maximum(1, written // 500000), 0),
        "pruned_files_bytes": pruned * 128_000_000, "read_files_bytes": read_bytes,
        "_table": [tables[i].full_name for i in ti], "_table2": [tables[i].full_name for i in ti2], "_tpl": tpl,
    })


def _scaling(wh, q: pd.DataFrame, rng: np.random.Generator, window: Window) -> tuple[list[tuple], pd.DataFrame]:  # noqa: ANN001
    """Running hours, cluster counts and the STARTING/RUNNING/SCALED/STOPPING events of one warehouse."""
    # Integer nanoseconds: this loop runs once per busy hour of every warehouse.
    H, MIN, SEC = 3_600_000_000_000, 60_000_000_000, 1_000_000_000
    st = pd.DatetimeIndex(q["start_time"]).asi8
    en = pd.DatetimeIndex(q["end_time"]).asi8
    hr = st - st % H
    idx, inv = np.unique(hr, return_inverse=True)
    per_hour = np.bincount(inv)
    first = np.full(len(idx), np.iinfo(np.int64).max)
    np.minimum.at(first, inv, st)
    last = np.zeros(len(idx), np.int64)
    np.maximum.at(last, inv, en)
    need = np.clip(np.ceil(per_hour / (HOURLY_CAPACITY * (WAREHOUSE_SIZES[wh.size] / 12) ** 0.3)),
                   wh.min_clusters, wh.max_clusters).astype(int)
    stop_ns = wh.auto_stop * MIN
    jitter = rng.integers(3, 120, size=(len(idx), 2))
    events, bills = [], []
    prev_h, prev_c = None, 0
    for i in range(len(idx)):
        h, c = int(idx[i]), int(need[i])
        if prev_h is None or h - prev_h > H:
            if prev_h is not None:
                stop = min(int(last[i - 1]) + stop_ns, h)
                events += [("STOPPING", prev_c, stop), ("STOPPED", 0, stop + 20 * SEC)]
            t0 = int(first[i]) - int(jitter[i, 0] % 40 + 3) * SEC
            events += [("STARTING", c, t0), ("RUNNING", c, t0 + int(jitter[i, 1]) * SEC)]
            frac = 1 - (int(first[i]) - h) / H
        else:
            if c > prev_c:
                events.append(("SCALED_UP", c, int(first[i])))
            elif c < prev_c:
                events.append(("SCALED_DOWN", c, h + int(jitter[i, 0] % 20 + 1) * MIN))
            frac = 1.0
        if i + 1 == len(idx) or int(idx[i + 1]) - h > H:
            frac = min(frac, max(0.02, (int(last[i]) - h + stop_ns) / H))
        bills.append((h, min(1.0, max(0.02, frac)), c))
        prev_h, prev_c = h, c
    if prev_h is not None:
        stop = int(last[-1]) + stop_ns
        if stop < window.end.value:
            events += [("STOPPING", prev_c, stop), ("STOPPED", 0, stop + 20 * SEC)]
    events = [(None, wh.workspace_id, wh.warehouse_id, e, c, t) for e, c, t in events]
    bills = [(pd.Timestamp(h), f, c) for h, f, c in bills]
    b = pd.DataFrame(bills, columns=["hour", "fraction", "clusters"])
    b["warehouse_id"] = wh.warehouse_id
    b["workspace_id"] = wh.workspace_id
    b["dbu_per_hour"] = WAREHOUSE_SIZES[wh.size]
    b["wtype"] = wh.wtype
    b["tags"] = [wh.tags] * len(b)
    return events, b


def _inject_security(estate: Estate, plan: Plan, window: Window, rng: np.random.Generator,
                     history: pd.DataFrame) -> pd.DataFrame:
    """Statements of stolen credentials and bulk exfiltration: wide reads of sensitive tables."""
    extra = []
    for inc in plan.of("bulk_exfiltration") + plan.of("credential_compromise"):
        user = next(u for u in estate.users if u.email == inc.entity_id)
        whs = [w for w in estate.warehouses if w.workspace_id in user.workspaces]
        if not whs:
            continue
        wh = whs[0]
        span = (inc.end - inc.start) / pd.Timedelta(seconds=1)
        k = int(6 + 25 * inc.magnitude) if inc.incident_type == "bulk_exfiltration" else int(4 + 8 * inc.magnitude)
        starts = inc.start + pd.to_timedelta(np.sort(rng.uniform(0, span, k)), unit="s")
        sens = [estate.table(t) for t in inc.extra["tables"]]
        for s in starts:
            t = sens[int(rng.integers(0, len(sens)))]
            meta = inc.incident_type == "credential_compromise" and rng.random() < 0.4
            text = (f"SHOW TABLES IN {t.catalog}.{t.schema}" if meta else f"SELECT * FROM {t.full_name}")
            rb = 0 if meta else int(table_bytes(t, 0) * rng.uniform(0.6, 1.0) * (1 + 2 * inc.magnitude))
            dur = int(400 + rb / (150e6 * WAREHOUSE_SIZES[wh.size] ** 0.8) * 1000)
            extra.append({
                "account_id": estate.account_id, "workspace_id": wh.workspace_id, "statement_id": None,
                "executed_by": user.email, "session_id": None, "execution_status": "FINISHED",
                "compute.type": "WAREHOUSE", "compute.warehouse_id": wh.warehouse_id,
                "executed_by_user_id": user.user_id, "statement_text": text,
                "statement_type": "SHOW" if meta else "SELECT", "error_message": None,
                "client_application": "Databricks SQL Editor" if inc.incident_type == "bulk_exfiltration" else "databricks-sql-python",
                "client_driver": None, "total_duration_ms": dur + 900, "waiting_for_compute_duration_ms": 0,
                "waiting_at_capacity_duration_ms": 0, "execution_duration_ms": dur, "compilation_duration_ms": 150,
                "total_task_duration_ms": dur * 4, "result_fetch_duration_ms": 750 + rb // 2_000_000,
                "start_time": s.floor("ms"), "end_time": (s + pd.Timedelta(milliseconds=dur + 900)).floor("ms"),
                "update_time": (s + pd.Timedelta(milliseconds=dur + 900)).floor("ms"),
                "read_partitions": 1, "pruned_files": 0, "read_files": max(1, rb // 128_000_000), "read_rows": rb // 150,
                "produced_rows": rb // 150, "read_bytes": rb, "read_io_cache_percent": 0, "from_result_cache": False,
                "spilled_local_bytes": 0, "written_bytes": 0, "shuffle_read_bytes": 0,
                "query_source.job_info.job_id": None, "query_source.job_info.job_run_id": None,
                "query_source.dashboard_id": None, "executed_as": user.email, "written_rows": 0, "written_files": 0,
                "pruned_files_bytes": 0, "read_files_bytes": rb, "_table": t.full_name, "_table2": None, "_tpl": 0 if not meta else 12,
            })
    if not extra:
        return history
    ex = pd.DataFrame(extra)
    ex["statement_id"] = uids(rng, len(ex))
    ex["session_id"] = uids(rng, len(ex))
    ex = ex[(ex["start_time"] >= window.start) & (ex["start_time"] < window.end)]
    return pd.concat([history, ex], ignore_index=True) if len(history) else ex
