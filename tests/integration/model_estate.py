"""A small, seeded Gold layer for the feature and training tests.

Independent of the simulator on purpose: it writes exactly the Gold contracts the feature code
reads, with latent causes behind outcomes (flaky jobs, a runtime upgrade, heavy query templates,
a table whose arrivals slip) so that models have something real to learn, in a few seconds.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
from pyspark.sql import functions as F
from pyspark.sql import types as T

from health_monitor.gold.schemas import GOLD_TABLES
from health_monitor.runtime import Lakehouse

TEAMS = ["finance", "marketing", "platform"]
WORDS = {"finance": ["ledger", "billing", "revenue"], "marketing": ["campaign", "clicks", "leads"],
         "platform": ["ingest", "compaction", "metrics"]}


def write_gold(lake: Lakehouse, name: str, pdf: pd.DataFrame) -> None:
    """Write ``pdf`` as Gold table ``name``: missing contract columns are null, types conformed."""
    spec = GOLD_TABLES[name]
    pdf = pdf.copy()
    for c in spec.column_names:
        if c not in pdf.columns:
            pdf[c] = None
    for f in spec.schema.fields:
        if isinstance(f.dataType, T.MapType | T.ArrayType | T.StructType):
            pdf[f.name] = [v if isinstance(v, dict | list) else None for v in pdf[f.name]]
    loose = T.StructType([T.StructField(f.name, T.DoubleType() if isinstance(f.dataType, T.DecimalType)
                                        else f.dataType, True) for f in spec.schema.fields])
    df = lake.spark.createDataFrame(pdf[spec.column_names], schema=loose)
    df = df.select(*[F.col(f.name).cast(f.dataType).alias(f.name) for f in spec.schema.fields])
    lake.write(df, name, "gold", mode="overwrite")


def build_estate(lake: Lakehouse, days: int = 34, seed: int = 3, start: datetime | None = None) -> None:
    """Write every Gold table the features read (2 workspaces, ``days`` days)."""
    rng = np.random.default_rng(seed)
    start = start or datetime(2026, 8, 1)
    dates = [start + timedelta(days=d) for d in range(days)]
    ws_ids = ["1001", "1002"]
    write_gold(lake, "dim_date", pd.DataFrame({
        "date_key": [d.date() for d in dates], "year": [d.year for d in dates], "month": [d.month for d in dates],
        "day_of_month": [d.day for d in dates], "day_of_week": [(d.weekday() + 1) % 7 + 1 for d in dates],
        "days_in_month": [31] * days, "is_weekend": [d.weekday() >= 5 for d in dates],
        "is_month_end": [False] * days, "is_quarter_end": [False] * days, "is_year_end": [False] * days,
        "is_holiday": [False] * days}))

    # ---------------------------------------------------------------- jobs, clusters, runs, usage
    jobs, clusters, runs, usage, nodes, lineage = [], [], [], [], [], []
    job_no = 0
    for ws in ws_ids:
        for j in range(8):
            job_no += 1
            team = TEAMS[j % 3]
            jid = f"{ws}-{job_no}"
            name = f"{rng.choice(WORDS[team])}_{rng.choice(['daily', 'hourly', 'load'])}_{job_no}"
            flaky = [0.02, 0.05, 0.3, 0.6][j % 4]
            jobs.append({"account_id": "acc", "workspace_id": ws, "job_id": jid, "name": name,
                         "tag_team": team if j % 4 != 3 else None, "task_count": 1 + j % 3,
                         "dependency_count": j % 2, "timeout_seconds": 7200, "trigger_type": "CRON",
                         "schedule_cron": f"0 0 {j % 24} * * ?", "effective_from": start - timedelta(days=1),
                         "is_current": True, "tags": {"team": team} if j % 4 != 3 else {}})
            base_min = 10 + 15 * (j % 5)
            upgrade_day = days // 2 if j % 3 == 0 else None
            for d, day in enumerate(dates):
                for k in range(1 + (j % 2)):
                    run_no = len(runs)
                    t0 = day + timedelta(hours=(j * 2 + k * 11) % 24, minutes=int(rng.integers(0, 30)))
                    dbr = 15 if upgrade_day is not None and d >= upgrade_day else 14
                    p_fail = flaky + (0.25 if dbr == 15 and d < (upgrade_day or 0) + 5 else 0.0)
                    retry = bool(runs and runs[-1]["job_id"] == jid and runs[-1]["is_failure"])
                    fail = rng.random() < (p_fail * (0.4 if retry else 1.0))
                    dur = float(base_min * 60 * rng.lognormal(0, 0.25) * (1.3 if dbr == 15 else 1.0))
                    cid = f"jc-{run_no}"
                    workers = 2 + j % 3
                    clusters.append({"account_id": "acc", "workspace_id": ws, "cluster_id": cid,
                                     "worker_count": workers, "is_autoscaling": False, "worker_cores": 4.0,
                                     "worker_memory_gb": 16.0, "driver_memory_gb": 16.0, "dbr_version": f"{dbr}.3",
                                     "dbr_major_version": dbr, "is_ml_runtime": j % 4 == 0,
                                     "availability": "SPOT" if j % 2 else "ON_DEMAND", "cluster_source": "JOB",
                                     "effective_from": t0 + timedelta(seconds=30), "is_current": True})
                    t1 = t0 + timedelta(seconds=dur)
                    code = ("CLUSTER_ERROR" if rng.random() < 0.5 else "RUN_EXECUTION_ERROR") if fail else "SUCCESS"
                    runs.append({"account_id": "acc", "workspace_id": ws, "job_id": jid, "run_id": f"r{run_no}",
                                 "trigger_type": "RETRY" if retry else "CRON", "is_retry": retry,
                                 "period_start_time": t0, "period_end_time": t1, "run_date": t0.date(),
                                 "result_state": "FAILED" if fail else "SUCCEEDED", "termination_code": code,
                                 "is_success": not fail, "is_failure": fail, "cluster_id": cid,
                                 "duration_seconds": int(dur), "queue_duration_seconds": int(rng.integers(0, 60)),
                                 "run_duration_seconds": int(dur)})
                    cost = dur / 3600 * workers * 0.3 * (1 + 0.1 * rng.standard_normal())
                    usage.append({"record_id": f"u{len(usage)}", "account_id": "acc", "workspace_id": ws,
                                  "sku_name": "JOBS_COMPUTE", "usage_start_time": t0, "usage_end_time": t1,
                                  "usage_date": t0.date(), "usage_quantity": cost / 0.15, "record_type": "ORIGINAL",
                                  "billing_origin_product": "JOBS", "is_tagged": j % 4 != 3,
                                  "tag_team": team if j % 4 != 3 else None, "cluster_id": cid, "job_id": jid,
                                  "usage_metadata_job_run_id": f"r{run_no}", "list_price": 0.15, "list_cost": cost,
                                  "is_serverless": False})
                    cpu = 25 + 10 * (j % 4)
                    for s in range(max(1, int(dur // 1200))):
                        for node in range(2):
                            st = t0 + timedelta(minutes=20 * s)
                            nodes.append({"account_id": "acc", "workspace_id": ws, "cluster_id": cid,
                                          "instance_id": f"{cid}-{node}", "start_time": st,
                                          "end_time": st + timedelta(minutes=10), "node_date": st.date(),
                                          "driver": node == 0, "cpu_total_percent": cpu + 5 * rng.standard_normal(),
                                          "mem_used_percent": 50 + 10 * rng.random(), "cpu_wait_percent": 2.0})
                    lineage.append({"record_id": f"l{len(lineage)}", "account_id": "acc", "workspace_id": ws,
                                    "entity_type": "JOB", "job_id": jid, "created_by": "svc@corp.com",
                                    "source_table_full_name": f"main.raw.src_{j}",
                                    "target_table_full_name": f"main.{team}.t_{j}", "event_time": t1,
                                    "event_date": t1.date(), "is_read": True, "is_write": True})
    # Spend that is not jobs: warehouses, with a cost spike on one day.
    for ws in ws_ids:
        for d, day in enumerate(dates):
            spike = 6.0 if (ws == "1001" and d == days - 8) else 1.0
            for h in range(8, 20):
                t = day + timedelta(hours=h)
                usage.append({"record_id": f"u{len(usage)}", "account_id": "acc", "workspace_id": ws,
                              "sku_name": "SQL_PRO", "usage_start_time": t, "usage_end_time": t + timedelta(hours=1),
                              "usage_date": t.date(), "usage_quantity": 10.0 * spike, "record_type": "ORIGINAL",
                              "billing_origin_product": "SQL", "is_tagged": False, "warehouse_id": f"wh-{ws}",
                              "list_price": 0.55, "list_cost": 5.5 * spike * (1 + 0.05 * rng.standard_normal()),
                              "is_serverless": ws == "1002"})
    # A shared all-purpose cluster per workspace, busy every working hour (capacity planning).
    for w, ws in enumerate(ws_ids):
        cid = f"ap-{ws}"
        clusters.append({"account_id": "acc", "workspace_id": ws, "cluster_id": cid, "worker_count": 6,
                         "is_autoscaling": False, "worker_cores": 8.0, "worker_memory_gb": 32.0,
                         "dbr_version": "15.4", "dbr_major_version": 15, "cluster_source": "UI",
                         "effective_from": start - timedelta(days=1), "is_current": True})
        for d, day in enumerate(dates):
            load = 20 + 15 * w + 0.5 * d + 10 * rng.random()
            for h in range(9, 18, 2):
                st = day + timedelta(hours=h)
                for node in range(7):
                    nodes.append({"account_id": "acc", "workspace_id": ws, "cluster_id": cid,
                                  "instance_id": f"{cid}-{node}", "start_time": st,
                                  "end_time": st + timedelta(minutes=10), "node_date": st.date(),
                                  "driver": node == 0, "cpu_total_percent": load + 5 * rng.standard_normal(),
                                  "mem_used_percent": 60.0, "cpu_wait_percent": 3.0})
            usage.append({"record_id": f"u{len(usage)}", "account_id": "acc", "workspace_id": ws,
                          "sku_name": "ALL_PURPOSE_COMPUTE", "usage_start_time": day + timedelta(hours=9),
                          "usage_end_time": day + timedelta(hours=18), "usage_date": day.date(),
                          "usage_quantity": 60.0, "record_type": "ORIGINAL", "billing_origin_product": "ALL_PURPOSE",
                          "is_tagged": False, "cluster_id": cid, "list_price": 0.4, "list_cost": 24.0,
                          "is_serverless": False})
    write_gold(lake, "dim_job", pd.DataFrame(jobs))
    write_gold(lake, "dim_cluster", pd.DataFrame(clusters))
    write_gold(lake, "fact_job_run_timeline", pd.DataFrame(runs))
    write_gold(lake, "fact_usage", pd.DataFrame(usage))
    write_gold(lake, "fact_node_timeline", pd.DataFrame(nodes))
    write_gold(lake, "sla_definitions", pd.DataFrame([
        {"workspace_id": r["workspace_id"], "job_id": r["job_id"], "sla_type": "MAX_DURATION",
         "max_duration_minutes": 12.0 + 15 * (i % 5)} for i, r in enumerate(jobs)]))

    # ---------------------------------------------------------------- warehouses and queries
    write_gold(lake, "dim_warehouse", pd.DataFrame([
        {"account_id": "acc", "workspace_id": ws, "warehouse_id": f"wh-{ws}", "warehouse_type": t,
         "warehouse_size": s, "warehouse_size_rank": r, "max_clusters": 2,
         "effective_from": start - timedelta(days=1), "is_current": True}
        for ws, t, s, r in [("1001", "PRO", "SMALL", 3), ("1002", "SERVERLESS", "MEDIUM", 4)]]))
    users = [f"user{i}@corp.com" for i in range(8)]
    templates = [(f"SELECT {'*' if i % 4 == 0 else 'a, b'} FROM main.sales.t{i} "
                  + ("JOIN main.sales.d ON a = d.a " if i % 3 == 0 else "")
                  + ("WHERE ds = '2026-01-01' " if i % 2 else "") + ("GROUP BY a" if i % 5 == 0 else ""),
                  2000 * (1 + i % 6) * (3 if i % 3 == 0 else 1), i) for i in range(16)]
    queries = []
    for day in dates:
        for _ in range(36):
            text, base_ms, i = templates[int(rng.integers(0, len(templates)))]
            t = day + timedelta(hours=int(rng.integers(6, 23)), minutes=int(rng.integers(0, 60)))
            ws = ["1001", "1002"][i % 2]
            cache = i % 4 == 1 and rng.random() < 0.7
            dur = 50.0 if cache else base_ms * rng.lognormal(0, 0.2)
            read = 0 if cache else int(2e8 * (1 + i % 6) * (40 if i % 7 == 0 else 1))
            queries.append({"account_id": "acc", "workspace_id": ws, "statement_id": f"q{len(queries)}",
                            "executed_by": users[i % 8], "execution_status": "FINISHED", "warehouse_id": f"wh-{ws}",
                            "statement_text": text.replace("2026-01-01", str(day.date())),
                            "statement_type": "SELECT", "start_time": t, "end_time": t + timedelta(milliseconds=dur),
                            "query_date": t.date(), "total_duration_ms": int(dur),
                            "execution_duration_ms": int(dur * 0.8), "waiting_at_capacity_duration_ms": int(
                                rng.exponential(2000) if t.hour in (9, 10) else 0),
                            "read_bytes": read, "read_files": 0 if cache else 30, "pruned_files": 30 if i % 2 else 2,
                            "from_result_cache": bool(cache), "spilled_local_bytes": int(1e8) if i % 3 == 0 else 0,
                            "shuffle_read_bytes": int(read * (2 if i % 5 == 0 else 0.2))})
    # One user reads a lot on one late day: the exfiltration-like excursion.
    for k in range(15):
        t = dates[-5] + timedelta(hours=2, minutes=k)
        queries.append({"account_id": "acc", "workspace_id": "1001", "statement_id": f"qx{k}",
                        "executed_by": users[3], "execution_status": "FINISHED", "warehouse_id": "wh-1001",
                        "statement_text": "SELECT * FROM main.hr.employees_pii", "statement_type": "SELECT",
                        "start_time": t, "query_date": t.date(), "total_duration_ms": 9000, "read_bytes": int(5e10),
                        "read_files": 100, "pruned_files": 0, "from_result_cache": False})
    write_gold(lake, "fact_query_history", pd.DataFrame(queries))

    # ---------------------------------------------------------------- audit and user lineage
    audit = []
    for day in dates:
        for u, user in enumerate(users):
            for k in range(3 + u % 3):
                t = day + timedelta(hours=8 + k * 2, minutes=u)
                failed = rng.random() < 0.05
                audit.append({"event_id": f"a{len(audit)}", "account_id": "acc", "workspace_id": "1001",
                              "event_time": t, "event_date": t.date(), "source_ip_address": f"10.0.{u}.1",
                              "user_email": user, "service_name": "accounts", "action_name": "login",
                              "status_code": 401 if failed else 200, "is_failed": failed})
            if rng.random() < 0.15:
                t = day + timedelta(hours=15, minutes=u)
                grantee = user if rng.random() < 0.3 else users[(u + 1) % 8]
                audit.append({"event_id": f"a{len(audit)}", "account_id": "acc", "workspace_id": "1001",
                              "event_time": t, "event_date": t.date(), "source_ip_address": f"10.0.{u}.1",
                              "user_email": user, "service_name": "unityCatalog", "action_name": "updatePermissions",
                              "request_params": {"changes": f'[{{"principal": "{grantee}", "add": ["SELECT"]}}]'},
                              "status_code": 200, "is_failed": False})
            lineage.append({"record_id": f"l{len(lineage)}", "account_id": "acc", "workspace_id": "1001",
                            "created_by": user, "source_table_full_name": f"main.sales.t{u}",
                            "source_table_catalog": "main", "source_table_schema": "sales",
                            "event_time": day + timedelta(hours=11), "event_date": day.date(), "is_read": True,
                            "is_write": False})
    write_gold(lake, "fact_audit_events", pd.DataFrame(audit))
    write_gold(lake, "fact_table_lineage", pd.DataFrame(lineage))

    # ---------------------------------------------------------------- data quality and schemas
    dq, cols = [], []
    for t in range(6):
        table = f"main.{TEAMS[t % 3]}.t_{t}"
        for d, day in enumerate(dates):
            check = day + timedelta(hours=9)
            lag = 3 + t + (6 if t == 2 and d > days // 2 else 0) + rng.random()
            healthy = lag < 8 and rng.random() > 0.1
            dq.append({"event_time": check, "event_date": check.date(), "catalog_name": "main",
                       "schema_name": TEAMS[t % 3], "table_name": f"t_{t}", "table_full_name": table,
                       "table_id": f"tid{t}", "status": "Healthy" if healthy else "Unhealthy",
                       "freshness_status": "Healthy" if lag < 8 else "Unhealthy", "completeness_status": "Healthy",
                       "commit_freshness_last_value": check - timedelta(hours=lag), "num_downstream_tables": t,
                       "upstream_job_ids": [f"1001-{t + 1}"]})
            ncols = 4 + (1 if d > 10 and t == 1 else 0)
            for c in range(ncols):
                name = f"c{c}" if not (t == 3 and d > 20 and c == 2) else "c2_renamed"
                dtype = "INT" if (t == 4 and d > 25 and c == 0) else "STRING"
                cols.append({"snapshot_time": check, "table_catalog": "main", "table_schema": TEAMS[t % 3],
                             "table_name": f"t_{t}", "table_full_name": table, "column_name": name,
                             "ordinal_position": c, "data_type": dtype, "full_data_type": dtype.lower(),
                             "is_nullable": "YES"})
    write_gold(lake, "fact_data_quality_monitoring_table_results", pd.DataFrame(dq))
    write_gold(lake, "fact_table_schema_history", pd.DataFrame(cols))


_SHARED: dict[str, Lakehouse] = {}


def featured_lake(tmp_path_factory, spark) -> Lakehouse:  # noqa: ANN001
    """One estate with its feature tables per test session, shared by the model test files."""
    if "lake" not in _SHARED:
        from health_monitor.features import build_features
        from health_monitor.settings import load_settings

        lake = Lakehouse(load_settings(tmp_path_factory.mktemp("model-estate")), spark)
        build_estate(lake, days=34, seed=3)
        build_features(lake)
        _SHARED["lake"] = lake
    return _SHARED["lake"]
