"""Quality features: per monitored table and day (quality score, arrival lag and its history,
upstream jobs' recent behaviour) and per table snapshot (schema changes against the previous
snapshot, how many tables and jobs read the table)."""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from health_monitor.features.common import day_num, days_window, hours_between, ratio


def _healthy(col: str) -> F.Column:
    """1 for Healthy, 0 for Unhealthy, NULL for Unknown/missing (left out of the average)."""
    s = F.lower(F.col(col))
    return F.when(s == "healthy", 1.0).when(s == "unhealthy", 0.0)


def table_quality_features(results: DataFrame, runs: DataFrame) -> DataFrame:
    """One row per (table_id, event_date). Inputs are the table's previous days (windows end
    the day before) and its upstream jobs' runs the day before; today's score and arrival lag
    are labels."""
    checks = results.select(
        "table_id", "table_full_name", "event_date", "event_time", "num_downstream_tables",
        "upstream_job_ids",
        F.coalesce(_healthy("status"), _healthy("freshness_status"), _healthy("completeness_status")).alias("_any"),
        _healthy("status").alias("_s"), _healthy("freshness_status").alias("_f"),
        _healthy("completeness_status").alias("_c"),
        hours_between(F.col("event_time"), F.col("commit_freshness_last_value")).alias("_lag"),
        F.hour("commit_freshness_last_value").alias("_arrival_hour"),
    )
    score = (F.coalesce("_s", F.lit(0.0)) + F.coalesce("_f", F.lit(0.0)) + F.coalesce("_c", F.lit(0.0))) / F.nullif(
        F.col("_s").isNotNull().cast("double") + F.col("_f").isNotNull().cast("double")
        + F.col("_c").isNotNull().cast("double"), F.lit(0.0))
    day = checks.groupBy("table_id", "event_date").agg(
        F.first("table_full_name").alias("table_full_name"),
        F.avg(score).alias("label_quality_score"),
        F.avg("_lag").alias("label_freshness_lag_h"),
        F.avg("_arrival_hour").alias("_arrival"),
        F.max("num_downstream_tables").alias("_downstream"),
        F.array_distinct(F.flatten(F.collect_list(F.coalesce("upstream_job_ids", F.array().cast("array<string>")))))
        .alias("_upstream"),
        F.sum((F.col("_s") == 0.0).cast("int")).alias("_unhealthy"),
    ).withColumn("_d", day_num("event_date"))
    tbl = ["table_id"]
    w7, w14 = days_window(tbl, "_d", -7, -1), days_window(tbl, "_d", -14, -1)
    prev = Window.partitionBy("table_id").orderBy("_d")
    day = day.select(
        "*",
        F.avg("label_freshness_lag_h").over(w7).alias("lag_7d_avg_h"),
        F.stddev("label_freshness_lag_h").over(w7).alias("lag_7d_std_h"),
        F.sum("label_freshness_lag_h").over(days_window(tbl, "_d", -1, -1)).alias("lag_prev_h"),
        F.avg("_arrival").over(w14).alias("typical_arrival_hour"),
        F.avg("label_quality_score").over(w7).alias("quality_score_7d_avg"),
        F.avg("label_quality_score").over(days_window(tbl, "_d", -14, -8)).alias("_q_prev_week"),
        F.sum("label_quality_score").over(days_window(tbl, "_d", -1, -1)).alias("quality_score_prev"),
        F.sum("_unhealthy").over(w7).alias("unhealthy_count_7d"),
        F.lag("_downstream").over(prev).alias("num_downstream_tables"),
        F.lag("_upstream").over(prev).alias("_up_prev"),
    )
    # Upstream jobs (from the previous check's root-cause list): failures the day before and
    # their usual end hour over the previous week.
    r = runs.where(F.col("result_state").isNotNull())
    job_day = r.groupBy(F.col("job_id").alias("_job"), F.col("run_date").alias("_rd")).agg(
        F.sum(F.coalesce(F.col("is_failure"), F.lit(False)).cast("int")).alias("_fails"),
        F.avg(F.hour("period_end_time") + F.minute("period_end_time") / 60.0).alias("_end_h"))
    ups = day.select("table_id", "event_date", F.explode("_up_prev").alias("_job"))
    j = ups.join(job_day, "_job").where((F.col("_rd") < F.col("event_date"))
                                        & (F.col("_rd") >= F.date_sub("event_date", 7)))
    up = j.groupBy("table_id", "event_date").agg(
        F.sum(F.when(F.col("_rd") == F.date_sub("event_date", 1), F.col("_fails")).otherwise(0))
        .alias("upstream_failures_prev_day"),
        F.avg("_end_h").alias("upstream_avg_end_hour_7d"))
    day = day.join(up, ["table_id", "event_date"], "left")
    return day.select(
        "table_id", "table_full_name", "event_date", "lag_7d_avg_h", "lag_7d_std_h", "lag_prev_h",
        "typical_arrival_hour", F.dayofweek("event_date").alias("day_of_week"),
        F.dayofweek("event_date").isin(1, 7).cast("int").alias("is_weekend"),
        F.coalesce(F.size("_up_prev"), F.lit(0)).alias("upstream_job_count"),
        F.coalesce("upstream_failures_prev_day", F.lit(0)).alias("upstream_failures_prev_day"),
        "upstream_avg_end_hour_7d", "num_downstream_tables", "quality_score_7d_avg", "quality_score_prev",
        (F.col("quality_score_7d_avg") - F.col("_q_prev_week")).alias("quality_trend"),
        F.coalesce("unhealthy_count_7d", F.lit(0)).alias("unhealthy_count_7d"),
        "label_quality_score", "label_freshness_lag_h",
    )


def schema_change_features(history: DataFrame, lineage: DataFrame) -> DataFrame:
    """One row per (table_full_name, snapshot_date): column changes since the previous snapshot
    (renames guessed as a removed and an added column of the same type), the table's change
    history before the snapshot and how many tables / jobs read it in the previous 30 days."""
    snap = history.withColumn("snapshot_date", F.to_date("snapshot_time")).groupBy(
        "table_full_name", "snapshot_date").agg(
        F.array_sort(F.collect_set(F.lower("column_name"))).alias("_names"),
        F.array_sort(F.collect_set(F.concat_ws(":", F.lower("column_name"), F.lower("full_data_type"))))
        .alias("_typed"),
        F.array_sort(F.collect_set(F.concat_ws(":", F.lower("column_name"), F.col("is_nullable"))))
        .alias("_nulls"),
        F.array_sort(F.collect_set(F.concat_ws(":", F.lower("column_name"), F.lower("data_type"))))
        .alias("_types"),
    )
    w = Window.partitionBy("table_full_name").orderBy("snapshot_date")
    for c in ("_names", "_typed", "_nulls", "_types"):
        snap = snap.withColumn(f"_p{c}", F.lag(c).over(w))
    has_prev = F.col("_p_names").isNotNull()
    added = F.array_except("_names", "_p_names")
    removed = F.array_except("_p_names", "_names")
    type_of = lambda arr, names: F.transform(  # noqa: E731
        F.filter(arr, lambda x: F.array_contains(names, F.split(x, ":")[0])), lambda x: F.split(x, ":")[1])
    renamed = F.size(F.array_intersect(type_of(F.col("_types"), added), type_of(F.col("_p_types"), removed)))
    snap = snap.select(
        "table_full_name", "snapshot_date",
        F.when(has_prev, F.size(added)).otherwise(0).alias("_added"),
        F.when(has_prev, F.size(removed)).otherwise(0).alias("_removed"),
        F.when(has_prev, F.least(renamed, F.size(added), F.size(removed))).otherwise(0).alias("columns_renamed"),
        # Same name, different type: typed entries that changed, minus added/removed names.
        F.when(has_prev, F.size(F.array_except("_typed", "_p_typed")) - F.size(added)).otherwise(0)
        .alias("type_changes"),
        F.when(has_prev, F.size(F.array_except("_nulls", "_p_nulls")) - F.size(added)).otherwise(0)
        .alias("nullability_changes"),
        F.size("_names").alias("column_count"),
        F.size("_p_names").alias("_prev_count"),
    )
    snap = snap.select(
        "*", (F.col("_added") - F.col("columns_renamed")).alias("columns_added"),
        (F.col("_removed") - F.col("columns_renamed")).alias("columns_removed"),
    )
    change = (F.col("columns_added") + F.col("columns_removed") + F.col("columns_renamed") + F.col("type_changes")
              + F.col("nullability_changes"))
    snap = snap.withColumn("change_count", change).withColumn("_d", day_num("snapshot_date"))
    every = w.rowsBetween(Window.unboundedPreceding, -1)
    snap = snap.select(
        "*",
        (F.col("_d") - F.max(F.when(F.col("change_count") > 0, F.col("_d"))).over(every)).alias("days_since_last_change"),
        F.coalesce(F.sum((F.col("change_count") > 0).cast("int")).over(days_window(["table_full_name"], "_d", -30, -1)),
                   F.lit(0)).alias("changes_30d"),
    )
    reads = (lineage.where(F.col("source_table_full_name").isNotNull())
             .groupBy(F.col("source_table_full_name").alias("table_full_name"), "event_date")
             .agg(F.countDistinct("target_table_full_name").alias("_targets"), F.countDistinct("job_id").alias("_jobs"))
             .withColumn("_d", day_num("event_date")))
    reads = reads.select("table_full_name", "_d",
                         F.max("_targets").over(days_window(["table_full_name"], "_d", -30, -1)).alias("_t30"),
                         F.max("_jobs").over(days_window(["table_full_name"], "_d", -30, -1)).alias("_j30"))
    # As-of: the latest lineage day strictly before the snapshot day carries the 30-day maxima.
    snap = snap.join(reads.withColumnRenamed("_d", "_rd"), "table_full_name", "left").where(
        F.col("_rd").isNull() | (F.col("_rd") < F.col("_d")))
    rank = Window.partitionBy("table_full_name", "snapshot_date").orderBy(F.col("_rd").desc_nulls_last())
    snap = snap.withColumn("_rank", F.row_number().over(rank)).where("_rank = 1")
    return snap.select(
        "table_full_name", "snapshot_date", "columns_added", "columns_removed", "columns_renamed", "type_changes",
        "nullability_changes", "column_count",
        ratio(F.col("column_count") - F.col("_prev_count"), F.col("_prev_count")).alias("column_count_change_pct"),
        F.coalesce("_t30", F.lit(0)).alias("downstream_table_count"),
        F.coalesce("_j30", F.lit(0)).alias("downstream_job_count"),
        "days_since_last_change", "changes_30d", "change_count",
    )


def calendar_features(dim_date: DataFrame) -> DataFrame:
    """Shared calendar: cyclical day-of-week and month, weekends, month/quarter ends, holidays."""
    import math

    d = F.col("date_key")
    return dim_date.select(
        "date_key", "year", "month", "day_of_month", "day_of_week", "days_in_month",
        F.sin(2 * math.pi * F.col("day_of_week") / 7).alias("dow_sin"),
        F.cos(2 * math.pi * F.col("day_of_week") / 7).alias("dow_cos"),
        F.sin(2 * math.pi * F.col("month") / 12).alias("month_sin"),
        F.cos(2 * math.pi * F.col("month") / 12).alias("month_cos"),
        F.col("is_weekend").cast("int").alias("is_weekend"),
        (F.dayofmonth(d) >= 25).cast("int").alias("is_month_end_window"),
        F.col("is_month_end").cast("int").alias("is_last_day_of_month"),
        F.col("is_quarter_end").cast("int").alias("is_quarter_end"),
        F.coalesce(F.col("is_holiday"), F.lit(False)).cast("int").alias("is_holiday"),
        "holiday_name",
    )
