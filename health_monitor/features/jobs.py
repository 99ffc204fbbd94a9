"""Job features: one row per finished run (history of the job before the run starts, the job's
and cluster's configuration in force, and the run's outcomes as labels) and one row per job and
day (pipeline health components, tag-recommender inputs)."""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from health_monitor.features.common import (
    as_of_join,
    day_num,
    days_window,
    hours_between,
    ratio,
    rows_window,
)

TRANSIENT_CODES = ("CLUSTER_ERROR", "CLOUD_FAILURE", "INTERNAL_ERROR", "STORAGE_ACCESS_ERROR",
                   "MAX_CONCURRENT_RUNS_EXCEEDED", "WORKSPACE_RUN_LIMIT_EXCEEDED",
                   "CLUSTER_REQUEST_LIMIT_EXCEEDED")
RESOURCE_CODES = ("DRIVER_ERROR",)
SCHEDULED_TRIGGERS = ("CRON", "PERIODIC", "SCHEDULE")

_JOB_KEYS = ["workspace_id", "job_id"]
_RUN_KEYS = ["workspace_id", "run_id"]


def run_costs(usage: DataFrame) -> DataFrame:
    """List cost billed to each job run (job compute and serverless jobs carry job_run_id)."""
    return (usage.where(F.col("usage_metadata_job_run_id").isNotNull())
            .groupBy("workspace_id", F.col("usage_metadata_job_run_id").alias("run_id"))
            .agg(F.sum(F.col("list_cost").cast("double")).alias("run_cost")))


def run_utilization(runs: DataFrame, nodes: DataFrame) -> DataFrame:
    """CPU / memory / IO wait of each run's cluster while the run was active."""
    n = nodes.select("cluster_id", "start_time", "cpu_total_percent", "mem_used_percent", "cpu_wait_percent",
                     F.coalesce("driver", F.lit(False)).alias("driver")).where(~F.col("driver"))
    r = runs.where(F.col("cluster_id").isNotNull()).select(
        *_RUN_KEYS, "cluster_id", F.col("period_start_time").alias("_s"), F.col("period_end_time").alias("_e"))
    j = r.join(n, "cluster_id").where((F.col("start_time") >= F.col("_s")) & (F.col("start_time") <= F.col("_e")))
    return j.groupBy(*_RUN_KEYS).agg(
        F.avg("cpu_total_percent").alias("run_avg_cpu"), F.max("cpu_total_percent").alias("run_peak_cpu"),
        F.max("mem_used_percent").alias("run_peak_mem"), F.avg("cpu_wait_percent").alias("run_avg_io_wait"))


def job_tables_30d(runs: DataFrame, lineage: DataFrame) -> DataFrame:
    """(workspace_id, job_id, run_date, table_count_30d): distinct tables the job read or wrote
    in the 30 days before the run's day."""
    touched = (lineage.where(F.col("job_id").isNotNull())
               .select("workspace_id", "job_id", "event_date",
                       F.coalesce("source_table_full_name", "target_table_full_name").alias("t"))
               .where(F.col("t").isNotNull()).distinct())
    days = runs.select(*_JOB_KEYS, "run_date").distinct()
    j = days.join(touched, _JOB_KEYS).where(
        (F.col("event_date") < F.col("run_date")) & (F.col("event_date") >= F.date_sub("run_date", 30)))
    return j.groupBy(*_JOB_KEYS, "run_date").agg(F.countDistinct("t").alias("table_count_30d"))


def job_run_features(runs: DataFrame, dim_job: DataFrame, dim_cluster: DataFrame, usage: DataFrame,
                     nodes: DataFrame, lineage: DataFrame | None = None,
                     sla: DataFrame | None = None, dim_date: DataFrame | None = None) -> DataFrame:
    """One row per finished job run: features known when the run starts, labels from how it ended.

    History windows are ordered by start time and end one row before the run (``-1``); the job
    and cluster attributes are the SCD2 versions in force at the start (a job cluster is created
    by the run itself, so versions up to 15 minutes after the start count). ``success_*``
    columns summarise the job's prior *successful* runs only (a failed run stops early, so its
    duration and cost say little about a completed run); ``prev_code_retry_success_rate`` is
    learned from the estate's own history: how often the run after a failure with the same
    termination code succeeded, counting only runs that started over a day earlier (so their
    outcome is known).
    """
    r = runs.where(F.col("result_state").isNotNull()).select(
        *_RUN_KEYS, "job_id", "run_date", "period_start_time", "period_end_time", "trigger_type",
        "is_retry", "result_state", "termination_code", "cluster_id", "duration_seconds",
        "queue_duration_seconds",
        F.coalesce(F.col("is_failure"), F.lit(False)).cast("int").alias("_fail"),
        F.coalesce(F.col("is_success"), F.lit(False)).cast("int").alias("_ok"),
    )
    r = r.join(run_costs(usage), _RUN_KEYS, "left").join(run_utilization(runs, nodes), _RUN_KEYS, "left")
    r = as_of_join(r, dim_job, _JOB_KEYS, "period_start_time", _RUN_KEYS,
                   ["task_count", "dependency_count", "timeout_seconds"])
    r = as_of_join(r, dim_cluster, ["workspace_id", "cluster_id"], "period_start_time", _RUN_KEYS,
                   ["worker_count", "is_autoscaling", "min_autoscale_workers", "max_autoscale_workers",
                    "worker_cores", "worker_memory_gb", "driver_memory_gb", "dbr_major_version",
                    "is_ml_runtime", "availability", "cluster_source"], tolerance_s=900)
    if sla is not None:
        s = sla.where(F.col("sla_type") == "MAX_DURATION").groupBy(*_JOB_KEYS).agg(
            (F.min("max_duration_minutes") * 60.0).alias("sla_max_duration_s"))
        r = r.join(F.broadcast(s), _JOB_KEYS, "left")
    else:
        r = r.withColumn("sla_max_duration_s", F.lit(None).cast("double"))
    r = r.withColumn("_breach", F.when(F.col("sla_max_duration_s").isNotNull(),
                                       (F.col("duration_seconds") > F.col("sla_max_duration_s")).cast("int")))

    job = ["workspace_id", "job_id"]
    r = r.withColumn("_t", F.unix_seconds("period_start_time")).withColumn(
        "_rn", F.row_number().over(Window.partitionBy(*job).orderBy("period_start_time", "run_id")))
    every = rows_window(job, "_rn", None, -1)
    last30 = rows_window(job, "_rn", -30, -1)
    last5 = rows_window(job, "_rn", -5, -1)
    week = Window.partitionBy(*job).orderBy("_t").rangeBetween(-7 * 86400, -1)
    lag = Window.partitionBy(*job).orderBy("_rn")
    workers = F.coalesce(F.col("worker_count").cast("double"), F.col("max_autoscale_workers").cast("double"))
    ok = F.col("_ok") == 1
    transient = F.col("_prev_code").isin(*TRANSIENT_CODES)
    resource = F.col("_prev_code").isin(*RESOURCE_CODES)
    f = (
        r.withColumn("prior_run_count", F.count("*").over(every))
        .withColumn("historical_failure_rate", F.avg("_fail").over(last30))
        .withColumn("recent_failure_rate_7d", F.avg("_fail").over(week))
        .withColumn("_last_ok_rn", F.max(F.when(F.col("_ok") == 1, F.col("_rn"))).over(every))
        .withColumn("_last_ok_t", F.max(F.when(F.col("_ok") == 1, F.col("period_end_time"))).over(every))
        .withColumn("_last_fail_t", F.max(F.when(F.col("_fail") == 1, F.col("period_end_time"))).over(every))
        .withColumn("prev_run_failed", F.lag("_fail").over(lag))
        .withColumn("_prev_code", F.lag("termination_code").over(lag))
        .withColumn("_prev_end", F.lag("period_end_time").over(lag))
        .withColumn("avg_duration_s", F.avg("duration_seconds").over(last30))
        .withColumn("duration_std_s", F.stddev("duration_seconds").over(last30))
        .withColumn("max_duration_s", F.max("duration_seconds").over(last30))
        .withColumn("last_duration_s", F.lag("duration_seconds").over(lag))
        .withColumn("_avg5", F.avg("duration_seconds").over(last5))
        .withColumn("avg_queue_s", F.avg("queue_duration_seconds").over(last30))
        .withColumn("hist_avg_run_cost", F.avg("run_cost").over(last30))
        .withColumn("hist_std_run_cost", F.stddev("run_cost").over(last30))
        .withColumn("last_run_cost", F.lag("run_cost").over(lag))
        .withColumn("hist_avg_cpu", F.avg("run_avg_cpu").over(last5))
        .withColumn("hist_peak_cpu", F.max("run_peak_cpu").over(last5))
        .withColumn("hist_peak_mem", F.max("run_peak_mem").over(last5))
        .withColumn("hist_avg_io_wait", F.avg("run_avg_io_wait").over(last5))
        .withColumn("prev_dbr_major_version", F.lag("dbr_major_version").over(lag))
        .withColumn("prev_run_breached", F.lag("_breach").over(lag))
        .withColumn("historical_sla_compliance", 1.0 - F.avg("_breach").over(last30))
        .withColumn("recent_sla_breaches_7d", F.sum("_breach").over(week))
        # Successful runs only, on a log scale as well: durations and costs are skewed, and the
        # log mean is the level a multiplicative-noise series varies around.
        .withColumn("success_avg_duration_s", F.avg(F.when(ok, F.col("duration_seconds"))).over(last30))
        .withColumn("success_log_duration_avg", F.avg(F.when(ok, F.log1p("duration_seconds"))).over(last30))
        .withColumn("success_log_duration_std", F.stddev(F.when(ok, F.log1p("duration_seconds"))).over(last30))
        .withColumn("success_avg_run_cost", F.avg(F.when(ok, F.col("run_cost"))).over(last30))
        .withColumn("success_log_run_cost_avg", F.avg(F.when(ok, F.log1p("run_cost"))).over(last30))
    )
    f = f.withColumn("dbr_changed", (F.col("dbr_major_version") != F.col("prev_dbr_major_version")).cast("int"))
    f = f.withColumn("_chg_rn", F.max(F.when(F.col("dbr_changed") == 1, F.col("_rn"))).over(
        rows_window(job, "_rn", None, 0)))
    f = f.withColumn("is_after_failure", F.coalesce(F.col("prev_run_failed") == 1, F.lit(False)))
    f = f.withColumn("historical_retry_success_rate", F.avg(
        F.when(F.col("is_after_failure"), F.col("_ok"))).over(every))
    by_code = Window.partitionBy("_prev_code").orderBy("_t").rangeBetween(Window.unboundedPreceding, -86400)
    f = f.withColumn("prev_code_retry_success_rate", F.when(F.col("is_after_failure"), F.avg(
        F.when(F.col("is_after_failure"), F.col("_ok"))).over(by_code)))
    if lineage is not None:
        f = f.join(job_tables_30d(runs, lineage), [*_JOB_KEYS, "run_date"], "left")
    else:
        f = f.withColumn("table_count_30d", F.lit(None).cast("long"))
    f = _with_holiday(f, dim_date)
    start = F.col("period_start_time")
    hour, dow = F.hour(start), F.dayofweek(start)
    return f.select(
        *_RUN_KEYS, "job_id", "run_date", "period_start_time", "cluster_id",
        "prior_run_count", "historical_failure_rate", "recent_failure_rate_7d",
        (F.col("_rn") - 1 - F.coalesce(F.col("_last_ok_rn"), F.lit(0))).alias("consecutive_failures"),
        hours_between(start, F.col("_last_ok_t")).alias("hours_since_last_success"),
        hours_between(start, F.col("_last_fail_t")).alias("hours_since_last_failure"),
        "prev_run_failed", "avg_duration_s", "duration_std_s", "max_duration_s", "last_duration_s",
        ratio(F.col("_avg5"), F.col("avg_duration_s")).alias("duration_trend"), "avg_queue_s",
        "hist_avg_run_cost", "hist_std_run_cost", "last_run_cost",
        "hist_avg_cpu", "hist_peak_cpu", "hist_peak_mem", "hist_avg_io_wait",
        "task_count", "dependency_count", F.col("timeout_seconds").cast("double").alias("timeout_seconds"),
        F.coalesce(F.col("is_retry"), F.lit(False)).cast("int").alias("is_retry"),
        F.col("trigger_type").isin(*SCHEDULED_TRIGGERS).cast("int").alias("is_scheduled"),
        workers.alias("worker_count"), F.col("is_autoscaling").cast("int").alias("is_autoscaling"),
        F.col("max_autoscale_workers").cast("double").alias("max_workers"), "worker_cores", "worker_memory_gb",
        (F.col("worker_cores") * workers).alias("cluster_cores"),
        (F.col("worker_memory_gb") * workers + F.coalesce(F.col("driver_memory_gb"), F.lit(0.0)))
        .alias("cluster_memory_gb"),
        "dbr_major_version", F.col("is_ml_runtime").cast("int").alias("is_ml_runtime"),
        F.col("availability").startswith("SPOT").cast("int").alias("is_spot"),
        (F.col("cluster_source") == "JOB").cast("int").alias("uses_job_cluster"),
        "prev_dbr_major_version", "dbr_changed",
        (F.col("dbr_major_version") - F.col("prev_dbr_major_version")).alias("dbr_major_jump"),
        (F.col("_rn") - F.col("_chg_rn")).alias("runs_since_dbr_change"),
        "table_count_30d",
        "sla_max_duration_s", F.col("sla_max_duration_s").isNotNull().alias("has_sla"),
        ratio(F.col("sla_max_duration_s"), F.col("avg_duration_s")).alias("sla_buffer_ratio"),
        "historical_sla_compliance", F.coalesce("recent_sla_breaches_7d", F.lit(0)).alias("recent_sla_breaches_7d"),
        "prev_run_breached",
        "is_after_failure", transient.cast("int").alias("prev_term_transient"),
        resource.cast("int").alias("prev_term_resource"),
        (F.col("is_after_failure") & ~transient & ~resource).cast("int").alias("prev_term_user_error"),
        F.when(F.col("is_after_failure"), F.col("_rn") - 1 - F.coalesce(F.col("_last_ok_rn"), F.lit(0)))
        .alias("retry_index"),
        F.when(F.col("is_after_failure"), hours_between(start, F.col("_prev_end"))).alias("hours_since_prev_failure"),
        "historical_retry_success_rate",
        hour.alias("hour_of_day"), dow.alias("day_of_week"),
        ((hour >= 9) & (hour < 18) & ~dow.isin(1, 7)).cast("int").alias("is_business_hours"),
        dow.isin(1, 7).cast("int").alias("is_weekend"),
        F.datediff(F.last_day("run_date"), F.col("run_date")).alias("days_to_month_end"), "is_holiday",
        "success_avg_duration_s", "success_log_duration_avg", "success_log_duration_std",
        "success_avg_run_cost", "success_log_run_cost_avg", "prev_code_retry_success_rate",
        # Labels: how the run ended (never an input).
        F.col("_fail").alias("label_is_failure"), F.col("_ok").alias("label_is_success"),
        F.col("duration_seconds").cast("double").alias("label_duration_s"),
        F.col("run_cost").alias("label_run_cost"), F.col("_breach").alias("label_sla_breached"),
    )


def _with_holiday(frame: DataFrame, dim_date: DataFrame | None) -> DataFrame:
    """``is_holiday`` (0/1) of the run's day from the calendar dimension (0 without one)."""
    if dim_date is None:
        return frame.withColumn("is_holiday", F.lit(0))
    hol = dim_date.select(F.col("date_key").alias("run_date"),
                          F.coalesce(F.col("is_holiday"), F.lit(False)).cast("int").alias("is_holiday"))
    return frame.join(F.broadcast(hol), "run_date", "left").fillna({"is_holiday": 0})


def job_features(runs: DataFrame, dim_job: DataFrame, usage: DataFrame, sla: DataFrame | None = None
                 ) -> DataFrame:
    """One row per (workspace_id, job_id, as_of_date) from the job's first run day on: the five
    pipeline-health components over the trailing 7/30 days (as-of day included, as the score is
    computed at the end of the day) and the tag recommender's inputs; the label is the next
    seven days' success rate."""
    r = runs.where(F.col("result_state").isNotNull()).select(
        *_JOB_KEYS, "run_id", "run_date", "period_start_time", "period_end_time", "duration_seconds",
        "termination_code", F.coalesce(F.col("is_failure"), F.lit(False)).cast("int").alias("_fail"),
        F.coalesce(F.col("is_success"), F.lit(False)).cast("int").alias("_ok"))
    if sla is not None:
        s = sla.where(F.col("sla_type") == "MAX_DURATION").groupBy(*_JOB_KEYS).agg(
            (F.min("max_duration_minutes") * 60.0).alias("_sla_s"))
        r = r.join(F.broadcast(s), _JOB_KEYS, "left")
    else:
        r = r.withColumn("_sla_s", F.lit(None).cast("double"))
    # Recovery: at a success that ends a failure streak, hours since the previous success.
    w = Window.partitionBy(*_JOB_KEYS).orderBy("period_start_time")
    r = (r.withColumn("_prev_fail", F.lag("_fail").over(w))
         .withColumn("_last_ok_end", F.max(F.when(F.col("_ok") == 1, F.col("period_end_time"))).over(
             w.rowsBetween(Window.unboundedPreceding, -1)))
         .withColumn("_recovery_h", F.when((F.col("_ok") == 1) & (F.col("_prev_fail") == 1),
                                           hours_between(F.col("period_end_time"), F.col("_last_ok_end")))))
    daily = r.groupBy(*_JOB_KEYS, F.col("run_date").alias("as_of_date")).agg(
        F.count("*").alias("_n"), F.sum("_ok").alias("_ok"), F.sum("_fail").alias("_fail"),
        F.sum(F.col("duration_seconds").cast("double")).alias("_dsum"),
        F.sum(F.pow(F.col("duration_seconds").cast("double"), 2)).alias("_dsq"),
        F.count(F.col("_sla_s")).alias("_sla_n"),
        F.sum(F.when(F.col("duration_seconds") <= F.col("_sla_s"), 1).otherwise(0)).alias("_sla_ok"),
        F.collect_set(F.when(F.col("_fail") == 1, F.col("termination_code"))).alias("_codes"),
        F.sum("_recovery_h").alias("_rec_sum"), F.count("_recovery_h").alias("_rec_n"),
        F.avg(F.hour("period_start_time")).alias("_start_hour"))
    # Dense calendar per job so that trailing windows also cover days without runs.
    span = daily.groupBy(*_JOB_KEYS).agg(F.min("as_of_date").alias("_first"))
    end = daily.agg(F.max("as_of_date").alias("_end"))
    grid = span.crossJoin(end).select(*_JOB_KEYS, F.explode(F.sequence("_first", "_end")).alias("as_of_date"))
    g = grid.join(daily, [*_JOB_KEYS, "as_of_date"], "left").withColumn("_d", day_num("as_of_date"))
    w7, w30 = days_window(_JOB_KEYS, "_d", -6, 0), days_window(_JOB_KEYS, "_d", -29, 0)
    nxt = days_window(_JOB_KEYS, "_d", 1, 7)
    n7, ok7 = F.sum("_n").over(w7), F.sum("_ok").over(w7)
    mean7 = ratio(F.sum("_dsum").over(w7), n7)
    var7 = ratio(F.sum("_dsq").over(w7), n7) - mean7 * mean7
    g = g.select(
        "*",
        F.coalesce(n7, F.lit(0)).alias("run_count_7d"),
        ratio(ok7, n7).alias("success_rate_7d"),
        ratio(F.sqrt(F.greatest(var7, F.lit(0.0))), mean7).alias("duration_cv_7d"),
        ratio(F.sum("_sla_ok").over(w7), F.sum("_sla_n").over(w7)).alias("sla_compliance_7d"),
        F.size(F.array_distinct(F.flatten(F.collect_list(F.coalesce("_codes", F.array().cast("array<string>")))
                                          .over(w30)))).alias("error_type_count_30d"),
        ratio(F.sum("_rec_sum").over(w30), F.sum("_rec_n").over(w30)).alias("recovery_hours_30d"),
        F.coalesce(F.sum("_n").over(w30), F.lit(0)).alias("run_count_30d"),
        ratio(F.sum("_dsum").over(w30), F.sum("_n").over(w30)).alias("avg_duration_s_30d"),
        ratio(F.sum("_ok").over(nxt), F.sum("_n").over(nxt)).alias("label_next_7d_success_rate"),
    )
    g = as_of_join(g.withColumn("_asof_end", F.to_timestamp(F.date_add("as_of_date", 1))),
                   dim_job, _JOB_KEYS, "_asof_end", [*_JOB_KEYS, "as_of_date"],
                   ["name", "tag_team", "tag_project", "tag_cost_center", "schedule_cron"])
    g = g.join(_primary_sku(usage, g.select(*_JOB_KEYS, "as_of_date")), [*_JOB_KEYS, "as_of_date"], "left")
    cron_hour = F.expr("try_cast(split(schedule_cron, ' ')[2] AS INT)")
    return g.select(
        *_JOB_KEYS, "as_of_date", "run_count_7d", "success_rate_7d", "duration_cv_7d", "sla_compliance_7d",
        "error_type_count_30d", "recovery_hours_30d", "run_count_30d", "avg_duration_s_30d",
        F.col("name").alias("job_name"), "primary_sku", cron_hour.alias("schedule_hour"),
        "tag_team", "tag_project", "tag_cost_center", "label_next_7d_success_rate",
    )


def _primary_sku(usage: DataFrame, grid: DataFrame) -> DataFrame:
    """The SKU with the most cost for each job over its usage up to each as-of day."""
    per_day = (usage.where(F.col("job_id").isNotNull())
               .groupBy("workspace_id", "job_id", F.col("usage_date").alias("as_of_date"), "sku_name")
               .agg(F.sum(F.col("list_cost").cast("double")).alias("_c"))
               .groupBy("workspace_id", "job_id", "as_of_date").agg(F.max_by("sku_name", "_c").alias("_sku")))
    g = grid.join(per_day, [*_JOB_KEYS, "as_of_date"], "left")
    w = Window.partitionBy(*_JOB_KEYS).orderBy("as_of_date").rowsBetween(Window.unboundedPreceding, 0)
    return g.select(*_JOB_KEYS, "as_of_date", F.last("_sku", ignorenulls=True).over(w).alias("primary_sku"))
