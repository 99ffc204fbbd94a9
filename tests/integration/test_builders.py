"""Gold builders on tiny hand-written system-table rows: contracts, semantics, incrementality."""

from __future__ import annotations

from datetime import datetime as dt
from decimal import Decimal

import pytest

from health_monitor.errors import HealthMonitorError
from health_monitor.gold.builders import BUILDABLE, build_gold
from health_monitor.gold.schemas import GOLD_TABLES
from health_monitor.gold.system_schemas import SYSTEM_TABLES
from health_monitor.runtime import Lakehouse
from health_monitor.settings import load_settings

WS, ACC = "1001", "acc-1"
JOBS_SKU, AP_SKU = "ENTERPRISE_JOBS_COMPUTE", "ENTERPRISE_ALL_PURPOSE_COMPUTE"


def put(lake: Lakehouse, name: str, rows: list[dict], mode: str = "append") -> None:
    """Write rows (dicts; absent columns are null) to a system-layer table of SYSTEM_TABLES shape."""
    spec = SYSTEM_TABLES[name]
    defaults = {"account_id": ACC, "workspace_id": WS}
    data = [tuple(r.get(c, defaults.get(c)) for c in spec.column_names) for r in rows]
    lake.write(lake.spark.createDataFrame(data, spec.schema), name, "system", mode=mode)


def usage(record_id: str, start: dt, qty: str, sku: str = JOBS_SKU, record_type: str = "ORIGINAL",
          job_id: str | None = None, run_id: str | None = None, cluster_id: str | None = None,
          tags: dict | None = None, product: str = "JOBS") -> dict:
    return {
        "record_id": record_id, "sku_name": sku, "cloud": "AWS", "usage_start_time": start,
        "usage_end_time": start.replace(minute=59), "usage_date": start.date(), "usage_unit": "DBU",
        "usage_quantity": Decimal(qty), "record_type": record_type, "custom_tags": tags or {},
        "billing_origin_product": product,
        "usage_metadata": {"job_id": job_id, "job_run_id": run_id, "cluster_id": cluster_id},
        "identity_metadata": {"run_as": "svc@x.com"}, "product_features": {"is_serverless": False},
    }


def run_row(run_id: str, job_id: str, start: dt, end: dt, state: str | None = None,
            cluster: str = "c-job", trigger: str = "CRON", **extra) -> dict:
    return {
        "job_id": job_id, "run_id": run_id, "period_start_time": start, "period_end_time": end,
        "trigger_type": trigger, "result_state": state, "run_type": "JOB_RUN", "run_name": f"run {run_id}",
        "compute_ids": [cluster], "compute": [{"type": "CLASSIC", "cluster_id": cluster}],
        "termination_code": {"SUCCEEDED": "SUCCESS", "TIMED_OUT": "RUN_EXECUTION_ERROR"}.get(state or "", state),
        **extra,
    }


def d(h: int, m: int = 0, day: int = 1) -> dt:
    return dt(2026, 3, day, h, m)


PRICES = [
    {"sku_name": JOBS_SKU, "cloud": "AWS", "currency_code": "USD", "usage_unit": "DBU",
     "price_start_time": dt(2026, 1, 1), "price_end_time": d(12), "pricing": {"default": Decimal("0.15")}},
    # The price changes at noon on the usage day.
    {"sku_name": JOBS_SKU, "cloud": "AWS", "currency_code": "USD", "usage_unit": "DBU",
     "price_start_time": d(12), "price_end_time": None, "pricing": {"default": Decimal("0.20")}},
    {"sku_name": AP_SKU, "cloud": "AWS", "currency_code": "USD", "usage_unit": "DBU",
     "price_start_time": dt(2026, 1, 1), "price_end_time": None, "pricing": {"default": Decimal("0.55")}},
]

BILLING = [
    usage("u-morning", d(10), "10", job_id="j1", run_id="101"),
    usage("u-afternoon", d(13), "10", job_id="j1", run_id="101"),
    usage("u-afternoon-retract", d(13), "-10", record_type="RETRACTION", job_id="j1", run_id="101"),
    usage("u-afternoon-restate", d(13), "8", record_type="RESTATEMENT", job_id="j1", run_id="101"),
    usage("u-ap", d(10), "4", sku=AP_SKU, product="ALL_PURPOSE", cluster_id="c-ap", tags={"team": "data"}),
    usage("u-ap-idle", d(10), "2", sku=AP_SKU, product="ALL_PURPOSE", cluster_id="c-idle"),
    usage("u-ap-task", d(11), "3", sku=AP_SKU, product="ALL_PURPOSE", cluster_id="c-ap2"),
]

RUNS = [
    # Run 101 lasted 2.5 hours: three hourly rows, only the last one has the outcome.
    run_row("101", "j1", d(8), d(9)),
    run_row("101", "j1", d(9), d(10)),
    run_row("101", "j1", d(10), d(10, 30), "SUCCEEDED", run_duration_seconds=9000),
    run_row("102", "j1", d(14), d(14, 30), "TIMED_OUT"),
    run_row("103", "j1", d(15), d(15, 5), "CANCELLED"),
    run_row("104", "j1", d(16), d(16, 5), "FAILED", trigger="RETRY"),
    run_row("105", "j1", d(17), d(17, 5), "ERROR"),
    # Two runs on the all-purpose cluster: 201 overlaps the 10:00 usage hour by 40 min, 202 by 15.
    run_row("201", "j2", d(10, 10), d(10, 50), "SUCCEEDED", cluster="c-ap"),
    run_row("202", "j3", d(9, 30), d(10, 15), "SUCCEEDED", cluster="c-ap"),
    # As the docs describe all-purpose runs: no compute in the run timeline, only in its tasks'.
    run_row("501", "j5", d(11), d(11, 40), "SUCCEEDED", compute_ids=[], compute=[]),
]
TASK_RUNS = [
    {"job_id": "j5", "run_id": "501-t1", "job_run_id": "501", "parent_run_id": "501", "task_key": "t1",
     "period_start_time": d(11), "period_end_time": d(11, 40), "compute_ids": ["c-ap2"],
     "result_state": "SUCCEEDED"},
]


def put_estate(lake: Lakehouse) -> None:
    """One row or a few of every system table the builders read."""
    put(lake, "billing.list_prices", PRICES)
    put(lake, "billing.usage", BILLING)
    put(lake, "lakeflow.job_run_timeline", RUNS)
    put(lake, "lakeflow.job_task_run_timeline", TASK_RUNS)
    put(lake, "access.workspaces_latest", [{"workspace_name": "prod", "create_time": dt(2025, 1, 1),
                                            "status": "RUNNING"}])
    put(lake, "lakeflow.jobs", [
        {"job_id": "j1", "name": "etl", "change_time": d(1), "tags": {"team": "data"},
         "trigger": {"schedule": {"quartz_cron_expression": "0 0 8 * * ?"}}},
        {"job_id": "j1", "name": "etl v2", "change_time": d(2), "tags": {"team": "data"}},
    ])
    put(lake, "lakeflow.job_tasks", [
        {"job_id": "j1", "task_key": "a", "depends_on_keys": [], "change_time": d(1)},
        {"job_id": "j1", "task_key": "b", "depends_on_keys": ["a"], "change_time": d(1)},
        {"job_id": "j1", "task_key": "c", "depends_on_keys": ["a", "b"], "change_time": d(2, 1)},
    ])
    put(lake, "compute.clusters", [
        {"cluster_id": "c-ap", "change_time": d(1), "dbr_version": "14.3.x-scala2.12",
         "worker_node_type": "i3.xlarge", "driver_node_type": "i3.xlarge", "worker_count": 2,
         "aws_attributes": {"availability": "SPOT_WITH_FALLBACK"}},
        {"cluster_id": "c-ap", "change_time": d(5), "dbr_version": "15.4.x-cpu-ml-scala2.12",
         "worker_node_type": "i3.xlarge", "driver_node_type": "i3.xlarge", "max_autoscale_workers": 8},
    ])
    put(lake, "compute.node_types", [{"node_type": "i3.xlarge", "core_count": 4.0, "memory_mb": 31232}])
    put(lake, "compute.warehouses", [
        {"warehouse_id": "w1", "warehouse_size": "MEDIUM", "change_time": d(1)},
        {"warehouse_id": "w1", "warehouse_size": "X_LARGE", "change_time": d(3)},
    ])
    put(lake, "compute.node_timeline", [
        {"cluster_id": "c-ap", "instance_id": "i-1", "start_time": d(10), "end_time": d(10, 1),
         "cpu_user_percent": 30.0, "cpu_system_percent": 5.0, "driver": True},
    ])
    put(lake, "access.audit", [
        {"event_id": "e1", "event_time": d(9), "event_date": d(9).date(), "service_name": "accounts",
         "action_name": "login", "user_identity": {"email": "a@x.com"}, "response": {"status_code": 200}},
        {"event_id": "e2", "event_time": d(9, 5), "event_date": d(9).date(), "service_name": "unityCatalog",
         "action_name": "getTable", "user_identity": {"email": "a@x.com"}, "response": {"status_code": 403}},
    ])
    put(lake, "access.table_lineage", [
        {"record_id": "l1", "entity_type": "JOB", "entity_id": "j1", "event_time": d(10),
         "event_date": d(10).date(), "source_table_full_name": "main.raw.orders",
         "entity_metadata": {"job_info": {"job_id": "j1", "job_run_id": "101"}}},
    ])
    put(lake, "query.history", [
        {"statement_id": "s1", "start_time": d(11), "end_time": d(11, 1), "execution_status": "FINISHED",
         "compute": {"type": "WAREHOUSE", "warehouse_id": "w1"}, "total_duration_ms": 60000,
         "query_source": {"job_info": {"job_id": "j1"}}},
    ])
    put(lake, "data_quality_monitoring.table_results", [
        {"event_time": d(6), "catalog_name": "main", "schema_name": "raw", "table_name": "orders",
         "table_id": "t1", "status": "Unhealthy", "freshness": {"status": "Stale"},
         "completeness": {"status": "Healthy", "daily_row_count": {"last_value": 10}},
         "root_cause_analysis": {"upstream_jobs": [{"job_id": "j1"}]}},
    ])
    put(lake, "information_schema.columns", [
        {"snapshot_time": d(0), "table_catalog": "main", "table_schema": "raw", "table_name": "orders",
         "column_name": c, "ordinal_position": i, "data_type": "STRING"} for i, c in enumerate(["id", "amount"])
    ])


@pytest.fixture(scope="module")
def estate(tmp_path_factory: pytest.TempPathFactory, spark) -> tuple[Lakehouse, dict[str, int]]:  # noqa: ANN001
    """Every system table filled with the rows above and Gold built once (read-only for tests)."""
    lake = Lakehouse(load_settings(tmp_path_factory.mktemp("builders")), spark)
    put_estate(lake)
    return lake, build_gold(lake)


def rows_by(lake: Lakehouse, table: str, key: str) -> dict:
    return {r[key]: r for r in lake.read(table).collect()}


def test_every_gold_table_is_built_to_its_contract(estate):
    lake, counts = estate
    assert sorted(counts) == sorted(BUILDABLE)
    for name in BUILDABLE:
        spec = GOLD_TABLES[name]
        got = [(f.name, f.dataType) for f in lake.read(name).schema.fields]
        assert got == [(c.name, c.data_type) for c in spec.columns], name
        assert counts[name] > 0, name


def test_hourly_split_run_collapses_to_one_row_with_final_state(estate):
    lake, _ = estate
    runs = rows_by(lake, "fact_job_run_timeline", "run_id")
    assert len(runs) == 8
    r = runs["101"]
    assert (r.period_start_time, r.period_end_time) == (d(8), d(10, 30))
    assert (r.result_state, r.termination_code, r.period_row_count) == ("SUCCEEDED", "SUCCESS", 3)
    assert r.duration_seconds == 9000 and r.run_duration_seconds == 9000
    assert r.cluster_id == "c-job" and r.compute_ids == ["c-job"] and r.run_date == d(8).date()


def test_success_and_failure_classification(estate):
    lake, _ = estate
    runs = rows_by(lake, "fact_job_run_timeline", "run_id")
    outcome = {k: (v.is_success, v.is_failure) for k, v in runs.items()}
    assert outcome["101"] == (True, False)
    assert outcome["102"] == (False, True)  # TIMED_OUT is a failure
    assert outcome["103"] == (False, False)  # CANCELLED is neither
    assert outcome["104"] == (False, True) and runs["104"].is_retry
    assert outcome["105"] == (False, True)
    assert not runs["101"].is_retry


def test_retraction_nets_out_and_price_in_force_at_usage_time(estate):
    lake, _ = estate
    u = rows_by(lake, "fact_usage", "record_id")
    assert len(u) == len(BILLING)
    assert u["u-morning"].list_price == Decimal("0.15")  # before the noon price change
    assert u["u-afternoon"].list_price == Decimal("0.20")  # after it
    assert u["u-morning"].list_cost == Decimal("1.5")
    afternoon = [u[k] for k in ("u-afternoon", "u-afternoon-retract", "u-afternoon-restate")]
    assert sum(r.usage_quantity for r in afternoon) == Decimal("8")
    assert sum(r.list_cost for r in afternoon) == Decimal("1.6")
    assert u["u-afternoon-retract"].record_type == "RETRACTION"
    assert u["u-ap"].is_tagged and u["u-ap"].tag_team == "data" and not u["u-morning"].is_tagged


def test_all_purpose_cost_is_attributed_to_the_most_overlapping_run(estate):
    lake, _ = estate
    u = rows_by(lake, "fact_usage", "record_id")
    assert (u["u-morning"].job_id, u["u-morning"].job_id_source) == ("j1", "BILLING")
    ap = u["u-ap"]
    assert (ap.job_id, ap.usage_metadata_job_run_id, ap.job_id_source) == ("j2", "201", "CLUSTER_ATTRIBUTION")
    idle = u["u-ap-idle"]
    assert (idle.job_id, idle.job_id_source) == (None, None)
    # Run 501 names no compute itself: its task's all-purpose cluster is in the task timeline.
    task = u["u-ap-task"]
    assert (task.job_id, task.usage_metadata_job_run_id, task.job_id_source) == ("j5", "501", "CLUSTER_ATTRIBUTION")


def test_dimensions_are_scd2_with_one_current_row(estate):
    lake, _ = estate
    for name in ("dim_job", "dim_cluster", "dim_warehouse", "dim_sku", "dim_workspace"):
        spec = GOLD_TABLES[name]
        key = [k for k in spec.primary_key if k != "effective_from"]
        df = lake.read(name)
        assert df.filter("is_current").groupBy(*key).count().filter("count != 1").count() == 0, name
        assert df.select(*key).distinct().count() == df.filter("is_current").count(), name
    jobs = sorted(lake.read("dim_job").collect(), key=lambda r: r.effective_from)
    assert [(j.name, j.task_count, j.dependency_count, j.is_current) for j in jobs] == [
        ("etl", 2, 1, False), ("etl v2", 3, 3, True)]
    assert jobs[0].effective_to == d(2) and jobs[0].schedule_cron == "0 0 8 * * ?" and jobs[0].tag_team == "data"
    clusters = sorted(lake.read("dim_cluster").collect(), key=lambda r: r.effective_from)
    assert [(c.dbr_major_version, c.is_ml_runtime, c.is_autoscaling) for c in clusters] == [
        (14, False, False), (15, True, True)]
    assert clusters[0].availability == "SPOT_WITH_FALLBACK" and clusters[0].worker_cores == 4.0
    assert clusters[0].worker_memory_gb == pytest.approx(30.5)
    sizes = sorted(lake.read("dim_warehouse").collect(), key=lambda r: r.effective_from)
    assert [w.warehouse_size_rank for w in sizes] == [4, 6]
    skus = [s for s in lake.read("dim_sku").collect() if s.sku_name == JOBS_SKU]
    assert sorted((s.list_price, s.is_current) for s in skus) == [(Decimal("0.15"), False), (Decimal("0.20"), True)]
    assert {s.sku_category for s in skus} == {"JOBS"}


def test_flattened_facts_and_calendar(estate):
    lake, _ = estate
    audit = rows_by(lake, "fact_audit_events", "event_id")
    assert (audit["e1"].is_failed, audit["e2"].is_failed, audit["e2"].user_email) == (False, True, "a@x.com")
    lin = lake.read("fact_table_lineage").first()
    assert (lin.job_id, lin.job_run_id, lin.is_read, lin.is_write) == ("j1", "101", True, False)
    q = lake.read("fact_query_history").first()
    assert (q.warehouse_id, q.compute_type, q.query_source_job_id) == ("w1", "WAREHOUSE", "j1")
    node = lake.read("fact_node_timeline").first()
    assert node.cpu_total_percent == 35.0
    dq = lake.read("fact_data_quality_monitoring_table_results").first()
    assert (dq.table_full_name, dq.freshness_status, dq.daily_row_count, dq.upstream_job_ids) == (
        "main.raw.orders", "Stale", 10, ["j1"])
    assert lake.count("fact_table_schema_history") == 2
    cal = lake.read("dim_date")
    assert cal.agg({"date_key": "min"}).first()[0] == d(0).date()
    assert cal.count() > 400
    july4 = cal.filter("date_key = DATE'2026-07-04'").first()
    assert july4.is_holiday and july4.holiday_name and july4.is_weekend and july4.day_of_week == 7


def test_rerun_adds_nothing_and_late_rows_are_picked_up(lake):
    put(lake, "billing.list_prices", PRICES)
    put(lake, "billing.usage", BILLING[:1])
    # Run 301 is still running: one hourly row, no outcome yet.
    put(lake, "lakeflow.job_run_timeline", [run_row("301", "j1", d(11), d(12))])
    tables = ["fact_job_run_timeline", "fact_usage"]
    assert build_gold(lake, tables) == {"fact_job_run_timeline": 1, "fact_usage": 1}
    assert lake.read("fact_job_run_timeline").first().result_state is None
    assert build_gold(lake, tables) == {"fact_job_run_timeline": 0, "fact_usage": 0}

    # Later: run 301's final row, a billing row from the past, all-purpose usage and (late) its run.
    put(lake, "lakeflow.job_run_timeline", [run_row("301", "j1", d(12), d(12, 20), "FAILED")])
    put(lake, "billing.usage", [usage("u-late", d(9, day=1), "3", job_id="j1"),
                                usage("u-ap", d(10), "4", sku=AP_SKU, product="ALL_PURPOSE", cluster_id="c-ap")])
    assert build_gold(lake, tables) == {"fact_job_run_timeline": 1, "fact_usage": 2}
    run = lake.read("fact_job_run_timeline").first()
    assert (run.result_state, run.is_failure, run.period_row_count, run.period_end_time) == ("FAILED", True, 2, d(12, 20))
    assert lake.read("fact_usage").filter("job_id_source = 'CLUSTER_ATTRIBUTION'").count() == 0

    put(lake, "lakeflow.job_run_timeline", [run_row("401", "j4", d(10, 5), d(10, 45), "SUCCEEDED", cluster="c-ap")])
    assert build_gold(lake, tables) == {"fact_job_run_timeline": 1, "fact_usage": 1}
    ap = lake.read("fact_usage").filter("record_id = 'u-ap'").first()
    assert (ap.job_id, ap.job_id_source) == ("j4", "CLUSTER_ATTRIBUTION")
    assert lake.count("fact_usage") == 3 and lake.count("fact_job_run_timeline") == 2

    # A rewritten (not appended) source, e.g. a new simulation: its Gold table is rebuilt from it.
    put(lake, "billing.usage", [usage("u-new", d(9, day=2), "1", job_id="j9")], mode="overwrite")
    assert build_gold(lake, ["fact_usage"]) == {"fact_usage": 1}
    assert [r.record_id for r in lake.read("fact_usage").collect()] == ["u-new"]


def test_missing_sources_are_skipped_and_bad_names_are_one_line_errors(lake):
    assert build_gold(lake) == {}
    with pytest.raises(HealthMonitorError, match="user configuration"):
        build_gold(lake, ["sla_definitions"])
    with pytest.raises(HealthMonitorError, match="unknown Gold table"):
        build_gold(lake, ["fact_nope"])


def _streamed(df, name: str) -> list:  # noqa: ANN001 - a streaming DataFrame
    """Everything a streaming read delivers now (availableNow into a memory sink)."""
    q = df.writeStream.format("memory").queryName(name).trigger(availableNow=True).start()
    q.awaitTermination()
    rows = df.sparkSession.table(name).collect()
    q.stop()
    return rows


def test_streams_see_rows_added_by_incremental_builds(lake):
    """Streams read Gold with skipChangeCommits: new rows must never hide inside an update commit,
    and a run completed by an update must still reach the reliability stream."""
    from health_monitor.streaming.sources import cost_input, reliability_input

    put(lake, "billing.list_prices", PRICES)
    put(lake, "billing.usage", BILLING[:1])
    put(lake, "lakeflow.job_run_timeline", [run_row("301", "j1", d(11), d(12))])
    tables = ["fact_job_run_timeline", "fact_usage"]
    build_gold(lake, tables)
    # Second build: new usage, including all-purpose usage whose run is not known yet; run 301 ends.
    put(lake, "billing.usage", [usage("u-ap", d(10), "4", sku=AP_SKU, product="ALL_PURPOSE", cluster_id="c-ap"),
                                usage("u-2", d(14), "5", job_id="j1")])
    put(lake, "lakeflow.job_run_timeline", [run_row("301", "j1", d(12), d(12, 20), "FAILED")])
    build_gold(lake, tables)
    # Third build: u-ap's run lands (u-ap is re-attributed: an update) next to a brand-new row.
    put(lake, "lakeflow.job_run_timeline", [run_row("401", "j4", d(10, 5), d(10, 45), "SUCCEEDED", cluster="c-ap")])
    put(lake, "billing.usage", [usage("u-3", d(15), "1", job_id="j1")])
    build_gold(lake, tables)

    ops = [r.operation for r in lake.spark.sql(
        f"DESCRIBE HISTORY {lake.table_name('fact_usage')}").collect()]
    assert "MERGE" in ops  # the re-attribution of u-ap updated a row in place
    records = sorted(r.record_id for r in _streamed(cost_input(lake).rows, "cost_rows"))
    assert records == ["u-2", "u-3", "u-ap", "u-morning"]
    runs = {(r.run_id, r.result_state) for r in _streamed(reliability_input(lake).rows, "rel_rows")}
    assert runs == {("301", "FAILED"), ("401", "SUCCEEDED")}
