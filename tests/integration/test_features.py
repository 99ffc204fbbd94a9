"""Feature tables: keyed, complete for the catalog, and point-in-time correct."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from model_estate import featured_lake
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from health_monitor.catalog import MODELS
from health_monitor.features import FEATURE_TABLES, GoldInputs, cost, jobs, performance, quality, security
from health_monitor.runtime import Lakehouse


@pytest.fixture(scope="module")
def lake(tmp_path_factory, spark) -> Lakehouse:  # noqa: ANN001
    return featured_lake(tmp_path_factory, spark)


def test_feature_tables_exist_with_unique_keys(lake: Lakehouse) -> None:
    assert len(FEATURE_TABLES) >= 10
    for name, table in FEATURE_TABLES.items():
        df = lake.read(name, "features")
        n = df.count()
        assert n > 0, name
        assert df.select(*table.keys).distinct().count() == n, f"{name}: keys {table.keys} not unique"
        assert table.time_key in df.columns


@pytest.mark.parametrize("spec", MODELS, ids=lambda m: m.name)
def test_catalog_features_and_labels_are_columns(lake: Lakehouse, spec) -> None:  # noqa: ANN001
    cols = set(lake.read(spec.feature_table, "features").columns)
    needed = set(spec.features) | set(spec.entity_keys) | {spec.time_key}
    needed |= {c for c in (spec.label or "").split(",") if c}
    assert needed <= cols, f"{spec.name}: missing {sorted(needed - cols)}"
    # Inputs never include outcomes.
    assert not [f for f in spec.features if f.startswith("label_")]


def _rounded(df: DataFrame) -> DataFrame:
    out = []
    for f in df.schema.fields:
        c = F.col(f.name)
        out.append(F.round(c, 6).alias(f.name) if isinstance(f.dataType, T.DoubleType | T.FloatType) else c)
    return df.select(*out)


def _same_before(before: DataFrame, after: DataFrame, time_col: str, cut) -> None:  # noqa: ANN001
    cols = [c for c in before.columns if not c.startswith("label_")]
    a = _rounded(before.where(F.col(time_col) <= F.lit(cut)).select(*cols))
    b = _rounded(after.where(F.col(time_col) <= F.lit(cut)).select(*cols))
    assert a.count() == b.count() > 0
    assert a.exceptAll(b).count() == 0 and b.exceptAll(a).count() == 0


def test_changing_gold_after_t_does_not_change_features_at_t(lake: Lakehouse) -> None:
    """Leakage: rewrite every fact after t (costs x10, outcomes flipped, durations x5) and
    recompute; every feature row at or before t is unchanged (labels may look ahead)."""
    g = GoldInputs(lake)
    day = date(2026, 8, 20)
    t = datetime(2026, 8, 20, 23, 59, 59)
    after = F.col("usage_date") > F.lit(day)
    usage = g.get("fact_usage")
    usage2 = usage.withColumn("list_cost", F.when(after, F.col("list_cost") * 10).otherwise(F.col("list_cost")))
    _same_before(cost.cost_daily_features(usage), cost.cost_daily_features(usage2), "usage_date", day)

    runs = g.get("fact_job_run_timeline")
    late = F.col("period_start_time") > F.lit(t)
    runs2 = (runs.withColumn("is_failure", F.when(late, ~F.col("is_failure")).otherwise(F.col("is_failure")))
             .withColumn("is_success", F.when(late, ~F.col("is_success")).otherwise(F.col("is_success")))
             .withColumn("duration_seconds", F.when(late, F.col("duration_seconds") * 5)
                         .otherwise(F.col("duration_seconds"))))
    args = (g.get("dim_job"), g.get("dim_cluster"), usage, g.get("fact_node_timeline"),
            g.get("fact_table_lineage"), g.get("sla_definitions"))
    _same_before(jobs.job_run_features(runs, *args), jobs.job_run_features(runs2, *args), "period_start_time", t)

    q = g.get("fact_query_history")
    q2 = q.withColumn("total_duration_ms", F.when(F.col("start_time") > F.lit(t), F.col("total_duration_ms") * 5)
                      .otherwise(F.col("total_duration_ms")))
    _same_before(performance.query_features(q, g.get("dim_warehouse")),
                 performance.query_features(q2, g.get("dim_warehouse")), "start_time", t)

    audit = g.get("fact_audit_events")
    audit2 = audit.unionByName(audit.where(F.col("event_date") > F.lit(day)).withColumn(
        "event_id", F.concat(F.col("event_id"), F.lit("-dup"))))
    lin, qh = g.get("fact_table_lineage"), g.get("fact_query_history")
    _same_before(security.user_daily_features(audit, lin, qh), security.user_daily_features(audit2, lin, qh),
                 "event_date", day)

    dq = g.get("fact_data_quality_monitoring_table_results")
    dq2 = dq.withColumn("status", F.when(F.col("event_date") > F.lit(day), F.lit("Unhealthy"))
                        .otherwise(F.col("status")))
    _same_before(quality.table_quality_features(dq, runs), quality.table_quality_features(dq2, runs2),
                 "event_date", day)


def test_as_of_build_cuts_gold(lake: Lakehouse) -> None:
    """Building at as_of uses only Gold before it: no feature row after the cut."""
    cut = datetime(2026, 8, 15)
    df = FEATURE_TABLES["cost_daily_features"].compute(GoldInputs(lake, cut))
    assert df.agg(F.max("usage_date")).first()[0] < cut.date()


def test_rolling_baselines_exclude_the_day_itself(spark) -> None:  # noqa: ANN001
    """Ten rows: a spike on the last day shows in its z-score, not in its own baseline."""
    rows = [("w", date(2026, 1, d), 10.0 if d < 10 else 100.0) for d in range(1, 11)]
    usage = spark.createDataFrame(rows, "workspace_id string, usage_date date, list_cost double").select(
        "*", F.lit(1.0).alias("usage_quantity"), F.lit("SKU").alias("sku_name"), F.lit(None).cast("string")
        .alias("cluster_id"), F.lit(None).cast("string").alias("job_id"), F.lit(True).alias("is_tagged"),
        F.lit("JOBS").alias("billing_origin_product"), F.lit(False).alias("is_serverless"))
    out = {r.usage_date.day: r for r in cost.cost_daily_features(usage).collect()}
    assert out[10].cost_7d_avg == pytest.approx(10.0)
    assert out[10].pct_change_vs_7d_avg == pytest.approx(9.0)
    assert out[1].cost_7d_avg is None
