"""Cost features: daily and hourly spend per workspace, month-to-date budget rows, and per
entity weekly cost profiles (chargeback). Pure ``DataFrame -> DataFrame`` functions."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from health_monitor.features.common import (
    calendar_columns,
    cyclical,
    day_num,
    days_window,
    ratio,
)

_PRODUCT_PCT = {
    "jobs_cost_pct": ["JOBS"],
    "sql_cost_pct": ["SQL"],
    "all_purpose_cost_pct": ["ALL_PURPOSE", "INTERACTIVE"],
    "dlt_cost_pct": ["DLT"],
}


def _cost(col: str = "list_cost") -> F.Column:
    return F.coalesce(F.col(col).cast("double"), F.lit(0.0))


def _mix(cost: F.Column) -> list[F.Column]:
    """Share of cost per billing product (sums of ``cost`` filtered by product)."""
    total = F.sum(cost)
    out = [ratio(F.sum(F.when(F.col("billing_origin_product").isin(*prods), cost).otherwise(0.0)), total)
           .alias(name) for name, prods in _PRODUCT_PCT.items()]
    out.append(ratio(F.sum(F.when(F.col("is_serverless"), cost).otherwise(0.0)), total).alias("serverless_cost_pct"))
    return out


def cost_daily_features(usage: DataFrame, dim_date: DataFrame | None = None) -> DataFrame:
    """One row per (workspace_id, usage_date): the day's spend and its deviation from the
    workspace's own past (7- and 30-day baselines that end the day before)."""
    cost = _cost()
    daily = usage.groupBy("workspace_id", "usage_date").agg(
        F.sum(F.col("usage_quantity").cast("double")).alias("daily_dbu"),
        F.sum(cost).alias("daily_cost"),
        F.countDistinct("sku_name").alias("sku_count"),
        F.countDistinct("cluster_id").alias("cluster_count"),
        F.countDistinct("job_id").alias("job_count"),
        # percent (0-100), the unit of the cost stream's window feature and its rules
        (ratio(F.sum(F.when(~F.coalesce(F.col("is_tagged"), F.lit(False)), cost).otherwise(0.0)), F.sum(cost))
         * 100).alias("untagged_cost_pct"),
        *_mix(cost),
    ).withColumn("_d", day_num("usage_date"))
    ws = ["workspace_id"]
    w7, w30 = days_window(ws, "_d", -7, -1), days_window(ws, "_d", -30, -1)
    prev7, prev14 = days_window(ws, "_d", -7, -1), days_window(ws, "_d", -14, -8)
    out = (
        daily.withColumn("cost_7d_avg", F.avg("daily_cost").over(w7))
        .withColumn("cost_7d_std", F.stddev("daily_cost").over(w7))
        .withColumn("cost_30d_avg", F.avg("daily_cost").over(w30))
        .withColumn("dbu_7d_avg", F.avg("daily_dbu").over(w7))
        .withColumn("cost_lag_1d", F.sum("daily_cost").over(days_window(ws, "_d", -1, -1)))
        .withColumn("cost_lag_7d", F.sum("daily_cost").over(days_window(ws, "_d", -7, -7)))
        .withColumn("_p7", F.sum("daily_cost").over(prev7))
        .withColumn("_p14", F.sum("daily_cost").over(prev14))
    )
    out = out.select(
        "*",
        F.log1p("daily_cost").alias("log_daily_cost"),
        ratio(F.col("daily_cost") - F.col("cost_7d_avg"), F.col("cost_7d_std")).alias("z_score"),
        ratio(F.col("daily_cost") - F.col("cost_7d_avg"), F.col("cost_7d_avg")).alias("pct_change_vs_7d_avg"),
        ratio(F.col("daily_cost") - F.col("cost_30d_avg"), F.col("cost_30d_avg")).alias("pct_change_vs_30d_avg"),
        (ratio(F.col("_p7") - F.col("_p14"), F.col("_p14")) * 100).alias("cost_7d_growth_pct"),
        ratio(F.col("daily_cost"), F.col("cost_lag_1d")).alias("cost_lag_1d_ratio"),
        ratio(F.col("daily_cost"), F.col("cost_lag_7d")).alias("cost_lag_7d_ratio"),
        *calendar_columns("usage_date"),
    ).drop("_p7", "_p14", "_d")
    return _with_holidays(out, "usage_date", dim_date)


def _with_holidays(frame: DataFrame, date_col: str, dim_date: DataFrame | None) -> DataFrame:
    if dim_date is None:
        return frame.withColumn("is_holiday", F.lit(0))
    hol = dim_date.select(F.col("date_key").alias(date_col),
                          F.coalesce(F.col("is_holiday"), F.lit(False)).cast("int").alias("is_holiday"))
    return frame.join(F.broadcast(hol), date_col, "left").fillna({"is_holiday": 0})


def cost_hourly_features(usage: DataFrame) -> DataFrame:
    """One row per (workspace_id, usage_hour): hourly spend against the previous 24 hours and
    the same hour over the previous 7 days (streaming detectors and dashboards use it)."""
    cost = _cost()
    hourly = usage.groupBy("workspace_id", F.date_trunc("hour", "usage_start_time").alias("usage_hour")).agg(
        F.sum(F.col("usage_quantity").cast("double")).alias("hourly_dbu"), F.sum(cost).alias("hourly_cost"))
    hourly = hourly.withColumn("_h", (F.unix_seconds("usage_hour") / 3600).cast("long"))
    w24 = Window.partitionBy("workspace_id").orderBy("_h").rangeBetween(-24, -1)
    same_hour = Window.partitionBy("workspace_id", F.hour("usage_hour")).orderBy("_h").rangeBetween(-24 * 7, -1)
    return hourly.select(
        "workspace_id", "usage_hour", "hourly_dbu", "hourly_cost",
        F.hour("usage_hour").alias("hour_of_day"), *cyclical(F.hour("usage_hour"), 24, "hour"),
        F.avg("hourly_cost").over(w24).alias("cost_24h_avg"),
        F.stddev("hourly_cost").over(w24).alias("cost_24h_std"),
        F.avg("hourly_cost").over(same_hour).alias("cost_same_hour_7d_avg"),
    ).select(
        "*",
        ratio(F.col("hourly_cost") - F.col("cost_24h_avg"), F.col("cost_24h_std")).alias("hourly_z_score"),
        ratio(F.col("hourly_cost") - F.col("cost_24h_avg"), F.col("cost_24h_avg")).alias("pct_change_vs_24h_avg"),
    )


def budget_monthly_features(daily: DataFrame, data_end: F.Column | None = None) -> DataFrame:
    """One row per (workspace_id, as_of_date) from :func:`cost_daily_features`: month-to-date
    spend at the end of the as-of day, run rates and last month; the label is the month's
    actual total where the month is complete in the data."""
    d = daily.select("workspace_id", F.col("usage_date").alias("as_of_date"), "daily_cost", "daily_dbu",
                     (F.col("jobs_cost_pct") * F.col("daily_cost")).alias("_jobs"),
                     (F.col("sql_cost_pct") * F.col("daily_cost")).alias("_sql"),
                     (F.col("dlt_cost_pct") * F.col("daily_cost")).alias("_dlt"))
    d = d.withColumn("month_start", F.trunc("as_of_date", "month")).withColumn("_d", day_num("as_of_date"))
    mtd = Window.partitionBy("workspace_id", "month_start").orderBy("as_of_date").rowsBetween(
        Window.unboundedPreceding, 0)
    month_totals = d.groupBy("workspace_id", "month_start").agg(F.sum("daily_cost").alias("_month_total"))
    prev = month_totals.select("workspace_id", F.add_months("month_start", 1).alias("month_start"),
                               F.col("_month_total").alias("prev_month_cost"))
    prev2 = month_totals.select("workspace_id", F.add_months("month_start", 2).alias("month_start"),
                                F.col("_month_total").alias("_prev2"))
    last_day = d.agg(F.max("as_of_date").alias("_data_end"))
    out = (
        d.withColumn("mtd_cost", F.sum("daily_cost").over(mtd))
        .withColumn("mtd_dbu", F.sum("daily_dbu").over(mtd))
        .withColumn("_mtd_jobs", F.sum("_jobs").over(mtd))
        .withColumn("_mtd_sql", F.sum("_sql").over(mtd))
        .withColumn("_mtd_dlt", F.sum("_dlt").over(mtd))
        .withColumn("cost_7d_avg", F.avg("daily_cost").over(days_window(["workspace_id"], "_d", -6, 0)))
        .join(prev, ["workspace_id", "month_start"], "left")
        .join(prev2, ["workspace_id", "month_start"], "left")
        .join(month_totals, ["workspace_id", "month_start"], "left")
        .crossJoin(F.broadcast(last_day))
    )
    days_in_month = F.dayofmonth(F.last_day("as_of_date"))
    return out.select(
        "workspace_id", "as_of_date", "month_start", "daily_cost", "mtd_cost", "mtd_dbu",
        F.dayofmonth("as_of_date").alias("days_elapsed"),
        days_in_month.alias("days_in_month"),
        (days_in_month - F.dayofmonth("as_of_date")).alias("days_remaining"),
        ratio(F.col("mtd_cost"), F.dayofmonth("as_of_date")).alias("daily_run_rate"),
        (ratio(F.col("mtd_cost"), F.dayofmonth("as_of_date")) * days_in_month).alias("projected_monthly_cost"),
        "cost_7d_avg", "prev_month_cost",
        ratio(F.col("prev_month_cost") - F.col("_prev2"), F.col("_prev2")).alias("mom_growth_rate"),
        ratio(F.col("_mtd_jobs"), F.col("mtd_cost")).alias("jobs_pct"),
        ratio(F.col("_mtd_sql"), F.col("mtd_cost")).alias("sql_pct"),
        ratio(F.col("_mtd_dlt"), F.col("mtd_cost")).alias("dlt_pct"),
        F.month("as_of_date").alias("month_of_year"),
        F.month("as_of_date").isin(3, 6, 9, 12).cast("int").alias("is_quarter_end"),
        (F.month("as_of_date") == 12).cast("int").alias("is_year_end"),
        F.when(F.col("_data_end") >= F.last_day("as_of_date"), F.col("_month_total"))
        .alias("label_month_total_cost"),
    )


def usage_entity() -> Column:
    """The entity a usage row is charged to, as struct(t = type, i = id).

    Precedence job > warehouse > pipeline > cluster > endpoint > SKU; the batch scorer uses the
    same expression so its active entities line up with these feature keys.
    """
    return (
        F.when(F.col("job_id").isNotNull(), F.struct(F.lit("job").alias("t"), F.col("job_id").alias("i")))
        .when(F.col("warehouse_id").isNotNull(), F.struct(F.lit("warehouse").alias("t"), F.col("warehouse_id").alias("i")))
        .when(F.col("dlt_pipeline_id").isNotNull(),
              F.struct(F.lit("pipeline").alias("t"), F.col("dlt_pipeline_id").alias("i")))
        .when(F.col("cluster_id").isNotNull(), F.struct(F.lit("cluster").alias("t"), F.col("cluster_id").alias("i")))
        .when(F.col("endpoint_name").isNotNull(),
              F.struct(F.lit("endpoint").alias("t"), F.col("endpoint_name").alias("i")))
        .otherwise(F.struct(F.lit("sku").alias("t"), F.col("sku_name").alias("i")))
    )


def entity_cost_features(usage: DataFrame) -> DataFrame:
    """One row per (workspace_id, entity_type, entity_id, week_start): what a job, warehouse,
    cluster or pipeline spent in the week, its product mix and its team tag (if any)."""
    entity = usage_entity()
    cost = _cost()
    u = usage.withColumn("_e", entity).withColumn("week_start", F.date_trunc("week", "usage_date").cast("date"))
    out = u.groupBy("workspace_id", F.col("_e.t").alias("entity_type"), F.col("_e.i").alias("entity_id"),
                    "week_start").agg(
        F.sum(cost).alias("cost"),
        F.sum(F.col("usage_quantity").cast("double")).alias("dbu"),
        *_mix(cost),
        F.countDistinct(F.date_trunc("hour", "usage_start_time")).alias("usage_hours"),
        F.countDistinct("usage_date").alias("active_days"),
        F.countDistinct("usage_metadata_job_run_id").alias("run_count"),
        F.max_by("tag_team", F.when(F.col("tag_team").isNotNull(), cost)).alias("tag_team"),
    )
    return out.withColumn("log_cost", F.log1p(F.greatest(F.col("cost"), F.lit(0.0))))
