"""Performance features: per query (text shape and the history of the same query text before it
ran), per warehouse-hour (load and queueing) and per cluster-day (utilization and cores used)."""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from health_monitor.features.common import as_of_join, day_num, days_window, hours_between, ratio, rows_window

GB = 1_000_000_000
WRITE_TYPES = ("INSERT", "MERGE", "UPDATE", "DELETE", "COPY", "CREATE", "REPLACE", "OPTIMIZE")


def _count(text: F.Column, pattern: str) -> F.Column:
    return F.regexp_count(text, F.lit(pattern)).cast("int")


def query_features(queries: DataFrame, dim_warehouse: DataFrame | None = None) -> DataFrame:
    """One row per statement: what is known before it runs (text shape, the same text's and the
    user's past runs, the warehouse and its load in the previous hour) and, as labels, what
    happened (duration, cache hit, spill, pruning, shuffle, scan size)."""
    text = F.lower(F.coalesce(F.col("statement_text"), F.lit("")))
    # Same query text modulo literals: the unit the history features follow.
    norm = F.regexp_replace(F.regexp_replace(F.regexp_replace(text, r"'[^']*'", "?"), r"\b\d+(\.\d+)?\b", "?"),
                            r"\s+", " ")
    q = queries.select(
        "statement_id", "workspace_id", "warehouse_id", "executed_by", "start_time", "query_date",
        "statement_type", "execution_status",
        F.sha2(F.concat_ws("|", "workspace_id", norm), 256).alias("query_hash"),
        F.length(text).alias("query_text_length"),
        _count(text, r"\bjoin\b").alias("join_count"),
        _count(text, r"\b(from|join)\s+[a-z_`]").alias("table_count"),
        _count(text, r"\(\s*select\b").alias("subquery_count"),
        text.rlike(r"group\s+by").cast("int").alias("has_aggregation"),
        text.rlike(r"\bover\s*\(").cast("int").alias("has_window_function"),
        text.rlike(r"select\s+(distinct\s+)?\*").cast("int").alias("has_select_star"),
        text.rlike(r"\bwhere\b").cast("int").alias("has_where"),
        text.rlike(r"\blimit\s+\d").cast("int").alias("has_limit"),
        text.rlike(r"order\s+by").cast("int").alias("has_order_by"),
        (F.col("statement_type") == "SELECT").cast("int").alias("is_select"),
        F.col("statement_type").isin(*WRITE_TYPES).cast("int").alias("is_write_statement"),
        (F.col("statement_type") == "COPY").cast("int").alias("is_copy"),
        F.col("total_duration_ms").cast("double").alias("_dur"),
        F.coalesce(F.col("read_bytes"), F.lit(0)).cast("double").alias("_read"),
        F.coalesce(F.col("spilled_local_bytes"), F.lit(0)).cast("double").alias("_spill"),
        F.coalesce(F.col("shuffle_read_bytes"), F.lit(0)).cast("double").alias("_shuffle"),
        F.coalesce(F.col("from_result_cache"), F.lit(False)).cast("int").alias("_cache"),
        F.coalesce(F.col("read_files"), F.lit(0)).cast("double").alias("_files"),
        F.coalesce(F.col("pruned_files"), F.lit(0)).cast("double").alias("_pruned"),
    )
    q = q.select(
        "*",
        (F.col("_spill") > 0).cast("int").alias("label_spill"),
        ((F.col("_files") >= 20) & (F.col("_pruned") < 0.25 * F.col("_files"))).cast("int").alias("label_poor_pruning"),
        ((F.col("_shuffle") > F.col("_read")) & (F.col("_shuffle") > 0.1 * GB)).cast("int")
        .alias("label_excessive_shuffle"),
        (F.col("_read") > 10 * GB).cast("int").alias("label_large_scan"),
        ratio(F.col("_pruned"), F.col("_pruned") + F.col("_files")).alias("_pruned_pct"),
        F.unix_seconds("start_time").alias("_t"),
        # Duration of a statement that really executed (finished, not served from the cache).
        F.when((F.col("execution_status") == "FINISHED") & (F.col("_cache") == 0) & (F.col("_dur") > 0),
               F.col("_dur")).alias("_exec_dur"),
    )
    # Row order inside a hash: start time, then id, so ties are deterministic.
    q = q.withColumn("_rn", F.row_number().over(
        Window.partitionBy("query_hash").orderBy("start_time", "statement_id")))
    hist = rows_window(["query_hash"], "_rn", -50, -1)
    every = rows_window(["query_hash"], "_rn", None, -1)
    user = Window.partitionBy("executed_by").orderBy("_t", "statement_id").rowsBetween(-50, -1)
    lag = Window.partitionBy("query_hash").orderBy("_rn")
    q = q.select(
        "*",
        F.count("*").over(every).alias("hash_prior_count"),
        F.avg("_dur").over(hist).alias("hash_avg_duration_ms"),
        F.avg("_exec_dur").over(hist).alias("hash_exec_avg_duration_ms"),
        # Log scale: durations have multiplicative noise, the log mean is their typical level.
        F.avg(F.log1p("_exec_dur")).over(hist).alias("hash_exec_log_duration_avg"),
        F.stddev(F.log1p("_exec_dur")).over(hist).alias("hash_exec_log_duration_std"),
        F.max("_dur").over(hist).alias("hash_max_duration_ms"),
        F.avg("_read").over(hist).alias("hash_avg_read_bytes"),
        F.avg("_spill").over(hist).alias("hash_avg_spill_bytes"),
        F.avg("_shuffle").over(hist).alias("hash_avg_shuffle_bytes"),
        F.avg("_cache").over(hist).alias("hash_cache_hit_rate"),
        F.avg("_pruned_pct").over(hist).alias("hash_avg_pruned_pct"),
        F.avg("label_spill").over(hist).alias("hash_spill_rate"),
        F.avg("label_poor_pruning").over(hist).alias("hash_poor_pruning_rate"),
        F.avg("label_excessive_shuffle").over(hist).alias("hash_shuffle_rate"),
        F.avg("label_large_scan").over(hist).alias("hash_large_scan_rate"),
        hours_between(F.col("start_time"), F.lag("start_time").over(lag)).alias("hours_since_same_hash"),
        F.avg(F.when(F.col("_cache") == 0, F.col("_dur"))).over(user).alias("user_avg_duration_ms"),
        F.count("*").over(Window.partitionBy("warehouse_id").orderBy("_t").rangeBetween(-3600, -1))
        .alias("warehouse_load_1h"),
    )
    if dim_warehouse is not None:
        q = as_of_join(q, dim_warehouse, ["workspace_id", "warehouse_id"], "start_time", ["statement_id"],
                       ["warehouse_size_rank", "max_clusters", "warehouse_type"])
    else:
        q = q.withColumn("warehouse_size_rank", F.lit(None).cast("int")).withColumn(
            "max_clusters", F.lit(None).cast("int")).withColumn("warehouse_type", F.lit(None).cast("string"))
    hour, dow = F.hour("start_time"), F.dayofweek("start_time")
    executed = (F.col("execution_status") == "FINISHED") & (F.col("_cache") == 0) & (F.col("_dur") > 0)
    return q.select(
        "statement_id", "workspace_id", "warehouse_id", "executed_by", "start_time", "query_date", "query_hash",
        "query_text_length", "join_count", "table_count", "subquery_count", "has_aggregation",
        "has_window_function", "has_select_star", "has_where", "has_limit", "has_order_by", "is_select",
        "is_write_statement", "is_copy", "hash_prior_count", "hash_avg_duration_ms", "hash_max_duration_ms",
        "hash_exec_avg_duration_ms", "hash_exec_log_duration_avg", "hash_exec_log_duration_std",
        "hash_avg_read_bytes", "hash_avg_spill_bytes", "hash_avg_shuffle_bytes", "hash_cache_hit_rate",
        "hash_avg_pruned_pct", "hash_spill_rate", "hash_poor_pruning_rate", "hash_shuffle_rate",
        "hash_large_scan_rate", "hours_since_same_hash", "user_avg_duration_ms",
        "warehouse_size_rank", F.col("max_clusters").alias("warehouse_max_clusters"),
        (F.col("warehouse_type") == "SERVERLESS").cast("int").alias("is_serverless_warehouse"),
        "warehouse_load_1h",
        hour.alias("hour_of_day"), dow.alias("day_of_week"),
        ((hour >= 9) & (hour < 17) & ~dow.isin(1, 7)).cast("int").alias("is_peak_hours"),
        executed.alias("is_executed"),
        (F.col("execution_status") == "FINISHED").alias("is_finished"),
        F.when(F.col("execution_status") == "FINISHED", F.col("_dur")).alias("label_duration_ms"),
        F.when(F.col("execution_status") == "FINISHED", F.col("_cache")).alias("label_cache_hit"),
        "label_spill", "label_poor_pruning", "label_excessive_shuffle", "label_large_scan",
    )


def warehouse_hourly_features(queries: DataFrame, usage: DataFrame, dim_warehouse: DataFrame | None = None
                              ) -> DataFrame:
    """One row per (warehouse_id, hour_start) with queries: load, queueing (p95 is the label of
    the warehouse optimizer's queue model), spill and scan rates, cost, and the load the same
    hour had over the previous 7 days (what the optimizer plans for)."""
    q = queries.where(F.col("warehouse_id").isNotNull())
    queue_s = (F.coalesce(F.col("waiting_at_capacity_duration_ms"), F.lit(0))
               + F.coalesce(F.col("waiting_for_compute_duration_ms"), F.lit(0))).cast("double") / 1000.0
    total_s = F.coalesce(F.col("total_duration_ms"), F.lit(0)).cast("double") / 1000.0
    read = F.coalesce(F.col("read_bytes"), F.lit(0)).cast("double")
    h = q.groupBy("workspace_id", "warehouse_id", F.date_trunc("hour", "start_time").alias("hour_start")).agg(
        F.count("*").alias("query_count"),
        (F.sum(F.coalesce(F.col("execution_duration_ms"), F.lit(0)).cast("double")) / 3.6e6)
        .alias("concurrent_query_avg"),
        F.avg(queue_s).alias("queue_time_avg_s"),
        F.percentile_approx(queue_s, 0.95).alias("label_queue_p95_s"),
        F.avg(((queue_s > 0.1 * total_s) & (queue_s > 0)).cast("double")).alias("high_queue_rate"),
        F.avg((F.coalesce(F.col("spilled_local_bytes"), F.lit(0)) > 0).cast("double")).alias("spill_rate"),
        F.avg((read > 10 * GB).cast("double")).alias("high_data_volume_rate"),
        F.log1p(F.sum(read)).alias("log_read_bytes"),
    )
    cost = (usage.where(F.col("warehouse_id").isNotNull())
            .groupBy("warehouse_id", F.date_trunc("hour", "usage_start_time").alias("hour_start"))
            .agg(F.sum(F.col("list_cost").cast("double")).alias("hourly_cost")))
    h = h.join(cost, ["warehouse_id", "hour_start"], "left")
    if dim_warehouse is not None:
        h = as_of_join(h, dim_warehouse, ["workspace_id", "warehouse_id"], "hour_start",
                       ["warehouse_id", "hour_start"], ["warehouse_size_rank", "max_clusters"])
    else:
        h = h.withColumn("warehouse_size_rank", F.lit(None).cast("int")).withColumn(
            "max_clusters", F.lit(None).cast("int"))
    h = h.withColumn("_d", day_num("hour_start")).withColumn("hour_of_day", F.hour("hour_start"))
    same_hour = days_window(["warehouse_id", "hour_of_day"], "_d", -7, -1)
    return h.select(
        "workspace_id", "warehouse_id", "hour_start", "query_count", "concurrent_query_avg", "queue_time_avg_s",
        "high_queue_rate", "spill_rate", "high_data_volume_rate", "log_read_bytes", "hourly_cost",
        "warehouse_size_rank", "max_clusters", "hour_of_day",
        F.dayofweek("hour_start").isin(1, 7).cast("int").alias("is_weekend"),
        F.avg("query_count").over(same_hour).alias("query_count_same_hour_7d_avg"),
        ratio(F.col("hourly_cost"), F.col("query_count")).alias("cost_per_query"),
        "label_queue_p95_s",
    )


def cluster_daily_features(nodes: DataFrame, dim_cluster: DataFrame, usage: DataFrame) -> DataFrame:
    """One row per (cluster_id, node_date): utilization of the workers and the cores in use
    (cpu% x cores per worker, summed over workers per sample), the trailing week up to the day,
    and as label the peak cores in use over the next 7 days (capacity planning)."""
    n = nodes.where(~F.coalesce(F.col("driver"), F.lit(False)))
    dims = dim_cluster.select("workspace_id", "cluster_id", "effective_from", "worker_cores", "worker_count",
                              "max_autoscale_workers", "is_autoscaling")
    per_sample = n.groupBy("workspace_id", "cluster_id", "node_date", "start_time").agg(
        F.sum(F.col("cpu_total_percent") / 100.0).alias("_cpu_nodes"),
        F.avg("cpu_total_percent").alias("_cpu"), F.max("mem_used_percent").alias("_mem"),
        F.avg("cpu_wait_percent").alias("_io"), F.count("*").alias("_nodes"))
    day = per_sample.groupBy("workspace_id", "cluster_id", "node_date").agg(
        F.avg("_cpu").alias("avg_cpu"), F.percentile_approx("_cpu", 0.95).alias("peak_cpu"),
        F.max("_mem").alias("peak_mem"), F.avg("_io").alias("avg_io_wait"),
        F.avg("_cpu_nodes").alias("_avg_node_cpu"), F.percentile_approx("_cpu_nodes", 0.95).alias("_peak_node_cpu"),
        F.avg("_nodes").alias("avg_nodes"), F.countDistinct(F.date_trunc("hour", "start_time")).alias("active_hours"))
    day = day.withColumn("_ts", F.to_timestamp("node_date"))
    day = as_of_join(day, dims, ["workspace_id", "cluster_id"], "_ts", ["cluster_id", "node_date"],
                     ["worker_cores", "worker_count", "max_autoscale_workers", "is_autoscaling"],
                     tolerance_s=86399)
    cost = (usage.where(F.col("cluster_id").isNotNull())
            .groupBy("cluster_id", F.col("usage_date").alias("node_date"))
            .agg(F.sum(F.col("list_cost").cast("double")).alias("daily_cost")))
    cores = F.coalesce(F.col("worker_cores"), F.lit(4.0))
    day = (day.join(cost, ["cluster_id", "node_date"], "left")
           .withColumn("avg_cores_used", F.col("_avg_node_cpu") * cores)
           .withColumn("peak_cores_used", F.col("_peak_node_cpu") * cores)
           .withColumn("_d", day_num("node_date")))
    w7 = days_window(["cluster_id"], "_d", -6, 0)
    nxt = days_window(["cluster_id"], "_d", 1, 7)
    return day.select(
        "workspace_id", "cluster_id", "node_date", "avg_cpu", "peak_cpu", "peak_mem", "avg_io_wait", "avg_nodes",
        "active_hours", "avg_cores_used", "peak_cores_used",
        F.max("peak_cores_used").over(w7).alias("peak_cores_7d_max"),
        F.avg("avg_cores_used").over(w7).alias("avg_cores_7d_avg"),
        F.coalesce(F.col("worker_count").cast("double"), F.col("max_autoscale_workers").cast("double"),
                   F.col("avg_nodes")).alias("worker_count"),
        cores.alias("worker_cores"), F.col("is_autoscaling").cast("int").alias("is_autoscaling"),
        F.coalesce("daily_cost", F.lit(0.0)).alias("daily_cost"),
        F.max("peak_cores_used").over(nxt).alias("label_next_7d_peak_cores"),
    )
