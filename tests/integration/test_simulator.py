"""The estate simulator: contracts, incidents, invariants, determinism and live mode.

Most checks read the session's ``tiny_estate`` (simulated once, Gold built); determinism and
live mode use their own very small estates without the Gold build to stay fast.
"""

from __future__ import annotations

from datetime import date

import pytest
from pyspark.sql import functions as F

from health_monitor.gold.schemas import GOLD_TABLES, GROUND_TRUTH
from health_monitor.gold.simulator import simulate, simulate_live
from health_monitor.gold.simulator.incidents import INCIDENT_TYPES
from health_monitor.gold.system_schemas import SYSTEM_TABLES
from health_monitor.runtime import Lakehouse
from health_monitor.settings import load_settings

SMALL = {"days": 3, "workspaces": 1, "scale": 0.1, "end_date": date(2026, 3, 1), "build": False}


def _strip(dt):  # noqa: ANN001, ANN202 - compare types without nullability
    from pyspark.sql import types as T

    if isinstance(dt, T.StructType):
        return T.StructType([T.StructField(f.name, _strip(f.dataType)) for f in dt.fields])
    if isinstance(dt, T.ArrayType):
        return T.ArrayType(_strip(dt.elementType))
    if isinstance(dt, T.MapType):
        return T.MapType(_strip(dt.keyType), _strip(dt.valueType))
    return dt


def _fingerprint(lake: Lakehouse, table: str) -> list[str]:
    df = lake.read(table, "system")
    return sorted(r[0] for r in df.select(F.sha2(F.to_json(F.struct(*df.columns)), 256)).collect())


@pytest.mark.parametrize("name", list(SYSTEM_TABLES))
def test_system_tables_non_empty_and_match_contract(tiny_estate: Lakehouse, name: str) -> None:
    df = tiny_estate.read(name, "system")
    spec = SYSTEM_TABLES[name]
    assert df.columns == spec.column_names
    assert _strip(df.schema) == _strip(spec.schema)
    assert df.count() > 0
    required = [c for c in spec.required]
    nulls = df.select([F.sum(F.col(c).isNull().cast("int")).alias(c) for c in required]).first().asDict()
    assert all((v or 0) == 0 for v in nulls.values()), nulls
    if spec.primary_key:
        assert df.count() == df.dropDuplicates(spec.primary_key).count()


def test_ground_truth_covers_every_domain_with_many_types(tiny_estate: Lakehouse) -> None:
    truth = tiny_estate.read(GROUND_TRUTH.name, "simulator").toPandas()
    assert truth["incident_type"].nunique() >= 14
    assert set(truth["domain"]) == {"cost", "security", "performance", "reliability", "quality"}
    assert (truth["end_time"] > truth["start_time"]).all()
    assert all(INCIDENT_TYPES[t][0] == d for t, d in zip(truth["incident_type"], truth["domain"], strict=True))
    jobs = {r[0] for r in tiny_estate.read("lakeflow.jobs", "system").select("job_id").distinct().collect()}
    users = {r[0] for r in tiny_estate.read("access.audit", "system").select("user_identity.email").distinct().collect()}
    for row in truth.itertuples():
        if row.entity_type == "job":
            assert row.entity_id in jobs
        if row.entity_type == "user":
            assert row.entity_id in users


def test_incidents_leave_traces_only_in_system_data(tiny_estate: Lakehouse) -> None:
    """No system column names the answer; the self-grant shows up as a grant to its own actor."""
    for name in SYSTEM_TABLES:
        assert not any("incident" in c or "anomal" in c for c in tiny_estate.read(name, "system").columns)
    truth = tiny_estate.read(GROUND_TRUTH.name, "simulator").toPandas()
    grant = truth[truth["incident_type"] == "privilege_self_grant"].iloc[0]
    audit = tiny_estate.read("access.audit", "system")
    self_grants = audit.where("action_name = 'updatePermissions'").where(
        F.col("request_params")["changes"].contains(F.col("user_identity.email")))
    assert self_grants.where(F.col("user_identity.email") == grant.entity_id).count() == 1
    streak = truth[truth["incident_type"] == "failing_job_streak"].iloc[0]
    runs = tiny_estate.read("lakeflow.job_run_timeline", "system").where(
        (F.col("job_id") == streak.entity_id) & F.col("result_state").isNotNull()
        & (F.col("period_start_time") >= F.lit(streak.start_time)) & (F.col("period_start_time") < F.lit(streak.end_time)))
    states = {r[0] for r in runs.select("result_state").collect()}
    assert states and "SUCCEEDED" not in states


def test_billing_semantics(tiny_estate: Lakehouse) -> None:
    usage = tiny_estate.read("billing.usage", "system")
    kinds = {r[0] for r in usage.select("record_type").distinct().collect()}
    assert {"ORIGINAL", "RETRACTION", "RESTATEMENT"} <= kinds
    assert usage.where("record_type = 'RETRACTION' AND usage_quantity >= 0").count() == 0
    assert usage.where("ingestion_date > usage_date").count() > 0  # late-arriving rows
    # All-purpose compute carries a cluster but never a job; serverless carries no cluster.
    ap = usage.where("billing_origin_product = 'ALL_PURPOSE'")
    assert ap.count() > 0 and ap.where("usage_metadata.job_id IS NOT NULL").count() == 0
    assert usage.where("product_features.is_serverless AND usage_metadata.cluster_id IS NOT NULL").count() == 0
    prices = tiny_estate.read("billing.list_prices", "system")
    assert prices.where("price_end_time IS NOT NULL").count() > 0  # a price changed mid-period


def test_job_runs_split_hourly_with_state_on_final_row(tiny_estate: Lakehouse) -> None:
    tl = tiny_estate.read("lakeflow.job_run_timeline", "system")
    per_run = tl.groupBy("run_id").agg(
        F.count("*").alias("n"), F.count("result_state").alias("states"), F.count("termination_code").alias("codes"),
        F.max("period_end_time").alias("end"),
        F.max(F.when(F.col("result_state").isNotNull(), F.col("period_end_time"))).alias("state_end"))
    assert per_run.where("n > 1").count() > 0
    assert per_run.where("states <> 1 OR codes <> 1 OR state_end <> end").count() == 0
    assert tl.where("trigger_type = 'RETRY'").count() > 0
    assert tl.where("result_state IN ('FAILED', 'ERROR', 'TIMED_OUT')").count() > 0
    hours = tl.select(((F.col("period_end_time").cast("long") - F.col("period_start_time").cast("long")) / 3600).alias("h"))
    assert hours.where("h > 1").count() == 0


def test_referential_integrity(tiny_estate: Lakehouse) -> None:
    def ids(table: str, col: str) -> set:
        return {r[0] for r in tiny_estate.read(table, "system").select(col).distinct().collect() if r[0] is not None}

    workspaces = ids("access.workspaces_latest", "workspace_id")
    clusters = ids("compute.clusters", "cluster_id")
    warehouses = ids("compute.warehouses", "warehouse_id")
    jobs = ids("lakeflow.jobs", "job_id")
    assert ids("lakeflow.job_run_timeline", "job_id") <= jobs
    assert ids("lakeflow.job_tasks", "job_id") <= jobs
    assert ids("billing.usage", "usage_metadata.cluster_id") <= clusters
    assert ids("billing.usage", "usage_metadata.warehouse_id") <= warehouses
    assert ids("billing.usage", "usage_metadata.job_id") <= jobs
    assert ids("compute.node_timeline", "cluster_id") <= clusters
    assert ids("compute.node_timeline", "node_type") <= ids("compute.node_types", "node_type")
    assert ids("query.history", "compute.warehouse_id") <= warehouses
    assert ids("compute.warehouse_events", "warehouse_id") <= warehouses
    assert ids("billing.usage", "sku_name") <= ids("billing.list_prices", "sku_name")
    for table in ("billing.usage", "lakeflow.jobs", "compute.clusters", "query.history", "access.table_lineage"):
        assert ids(table, "workspace_id") <= workspaces
    assert ids("access.audit", "workspace_id") <= workspaces | {"0"}
    runs = ids("lakeflow.job_run_timeline", "run_id")
    assert ids("billing.usage", "usage_metadata.job_run_id") <= runs


def test_user_config_and_gold_cost_invariant(tiny_estate: Lakehouse) -> None:
    for name in ("commit_configurations", "sla_definitions"):
        df = tiny_estate.read(name, "gold")
        assert df.count() > 0 and df.columns == GOLD_TABLES[name].column_names
    usage = tiny_estate.read("fact_usage", "gold")
    assert usage.count() > 0
    assert usage.where("list_cost IS NULL OR list_cost <> usage_quantity * list_price").count() == 0
    # The price changes mid-period: rows on both sides use their own period's price.
    assert usage.select("sku_name", "list_price").distinct().groupBy("sku_name").count().where("count > 1").count() > 0


def test_same_seed_same_estate(tmp_path, spark) -> None:  # noqa: ANN001
    lakes = []
    for i, seed in enumerate((3, 3, 4)):
        lake = Lakehouse(load_settings(tmp_path / f"hm{i}"), spark)
        simulate(lake, seed=seed, **SMALL)
        lakes.append(lake)
    for table in ("billing.usage", "lakeflow.job_run_timeline", "access.audit", "query.history"):
        a, b, c = (_fingerprint(lake, table) for lake in lakes)
        assert a == b, table
        assert a != c, table
    truth = [lk.read(GROUND_TRUTH.name, "simulator").orderBy("incident_id").toPandas() for lk in lakes[:2]]
    assert truth[0].equals(truth[1])


def test_live_appends_without_duplicates(tmp_path, spark) -> None:  # noqa: ANN001
    lake = Lakehouse(load_settings(tmp_path / "hm"), spark)
    simulate(lake, seed=5, **SMALL)
    before = {n: lake.count(n, "system") for n in SYSTEM_TABLES}
    summary = simulate_live(lake, ticks=2, hours_per_tick=3, build=False)
    assert summary.end is not None and summary.end > summary.start
    grew = [n for n in ("billing.usage", "access.audit", "lakeflow.job_run_timeline", "query.history")
            if lake.count(n, "system") > before[n]]
    assert len(grew) >= 3, grew
    for name, spec in SYSTEM_TABLES.items():
        df = lake.read(name, "system")
        assert df.count() == df.dropDuplicates(spec.primary_key).count(), name
    # Nothing from the future: no usage later than the live clock.
    latest = lake.read("billing.usage", "system").agg(F.max("usage_end_time")).first()[0]
    assert latest <= summary.end


def test_scale_10_estate_draws_unique_people() -> None:
    """--scale 10 has more people than first x last name pairs: drawing must still end, uniquely."""
    from health_monitor.gold.simulator.calendar import Window
    from health_monitor.gold.simulator.entities import build_estate

    estate = build_estate(7, Window.for_days(date(2026, 3, 31), 3), 8, 10.0)
    emails = [u.email for u in estate.users]
    assert len(emails) > 1000 and len(set(emails)) == len(emails)


def test_to_arrow_builds_contract_types_exactly(spark, tmp_path) -> None:  # noqa: ANN001
    """Flat generator columns become the contract's nested and exact types, through Spark or a bulk load."""
    import json
    from datetime import datetime
    from decimal import Decimal

    import numpy as np
    import pandas as pd

    from health_monitor.gold.ddl import TableSpec, parse_columns
    from health_monitor.gold.simulator.frames import to_arrow, to_spark

    spec = TableSpec("frames_check", "simulator", parse_columns("""
        id string NOT NULL
        qty decimal(38,18)
        day date
        at timestamp
        tags map<string,string>
        md struct<a:string,b:bigint>
        items array<struct<k:string>>
        n bigint
    """), ["id"])
    pdf = pd.DataFrame({
        "id": ["x", "y"], "qty": [0.1, np.nan],
        "day": pd.to_datetime(["2026-11-01 13:00", "2026-11-02 00:00"]),
        "at": pd.to_datetime(["2026-11-01 13:00:00.123456789", None]),
        "tags": [json.dumps({"team": "a"}), None], "md.a": ["p", None],
        "items": [json.dumps([{"k": "v"}]), None], "n": [1.0, np.nan],
    })
    lake = Lakehouse(load_settings(tmp_path), spark)
    lake.write_arrow(to_arrow(pdf, spec), spec.name, "simulator")
    for df in (to_spark(spark, pdf, spec), lake.read(spec.name, "simulator")):
        assert _strip(df.schema) == _strip(spec.schema)
        x, y = sorted(df.collect(), key=lambda r: r.id)
        assert x.qty == Decimal("0.1") and y.qty is None  # the double's shortest text, exactly
        assert x.day == date(2026, 11, 1) and x.at == datetime(2026, 11, 1, 13, 0, 0, 123456) and y.at is None
        assert x.tags == {"team": "a"} and y.tags is None
        assert x.md.a == "p" and x.md.b is None and y.md.a is None
        assert x.items[0].k == "v" and y.items is None
        assert x.n == 1 and y.n is None
    with pytest.raises(ValueError, match="unknown columns"):
        to_arrow(pdf.assign(bogus=1), spec)
