"""Job Gold tables: ``fact_job_run_timeline`` (one row per run) and ``dim_job`` (SCD2)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyspark.sql import Column
from pyspark.sql import functions as F

from health_monitor.gold.builders.core import far_future, first_of, gold_sink, run_stream, tag, versions

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from health_monitor.runtime import Lakehouse

RUN_SOURCE = "lakeflow.job_run_timeline"
#: The only record of compute other than job clusters (all-purpose clusters a task ran on).
TASK_SOURCE = "lakeflow.job_task_run_timeline"
FAILURE_STATES = ("ERROR", "FAILED", "TIMED_OUT")
_DURATIONS = ("setup", "queue", "run", "cleanup", "execution")


def run_clusters() -> Column:
    """Every cluster a Gold run used: its compute_ids plus its derived cluster_id (no nulls)."""
    ids = F.concat(F.coalesce("compute_ids", F.array().cast("array<string>")), F.array("cluster_id"))
    return F.array_distinct(F.filter(ids, lambda x: x.isNotNull()))


def task_compute(lake: Lakehouse) -> DataFrame | None:
    """(workspace_id, cluster_id, job_id, run_id, period_start_time, period_end_time) per job run
    and compute its tasks used, from ``job_task_run_timeline`` (None where the table is absent).

    ``job_run_timeline.compute_ids`` names job clusters only; the docs send every other compute
    (all-purpose clusters above all) to the task timeline. ``run_id`` here is the job run's.
    """
    if not lake.exists(TASK_SOURCE, "system"):
        return None
    tasks = lake.read(TASK_SOURCE, "system")
    ids = F.filter(F.coalesce("compute_ids", F.array().cast("array<string>")), lambda x: x.isNotNull())
    return (
        tasks.select("workspace_id", "job_id", F.coalesce("job_run_id", "parent_run_id", "run_id").alias("run_id"),
                     F.explode(ids).alias("cluster_id"), "period_start_time", "period_end_time")
        .groupBy("workspace_id", "cluster_id", "job_id", "run_id")
        .agg(F.min("period_start_time").alias("period_start_time"),
             F.max("period_end_time").alias("period_end_time"))
    )


def collapse_runs(rows: DataFrame) -> DataFrame:
    """One row per (workspace_id, run_id) from ALL of the runs' hourly timeline rows.

    Runs longer than an hour arrive as hourly rows and only the final row carries result_state,
    termination_code and termination_type: those come from the final row (the one with a result,
    else the latest). Names and trigger come from the final row, falling back to any row.
    Durations are summed over the rows: Databricks fills them on the final row only, and a sum is
    also right if a source fills each hourly slice with that slice's share. A run without a final
    row yet has a null result_state and is neither success nor failure until it ends.
    """
    final_key = F.struct(F.col("result_state").isNotNull(), "period_end_time", "period_start_time")
    final = F.max_by(
        F.struct("job_id", "run_name", "run_type", "trigger_type", "result_state", "termination_code",
                 "termination_type"),
        final_key,
    )
    # Compute in time order so "first cluster" means the first one the run used.
    timeline = F.sort_array(F.collect_list(F.struct(
        "period_start_time",
        F.coalesce("compute_ids", F.array().cast("array<string>")).alias("ids"),
        F.coalesce("compute", F.array().cast("array<struct<type:string,cluster_id:string,warehouse_id:string>>"))
        .alias("compute"),
    )))
    agg = rows.groupBy("workspace_id", "run_id").agg(
        F.first("account_id", ignorenulls=True).alias("account_id"),
        final.alias("f"),
        F.first("run_name", ignorenulls=True).alias("any_run_name"),
        F.first("run_type", ignorenulls=True).alias("any_run_type"),
        F.first("trigger_type", ignorenulls=True).alias("any_trigger_type"),
        F.min("period_start_time").alias("period_start_time"),
        F.max("period_end_time").alias("period_end_time"),
        timeline.alias("timeline"),
        F.count(F.lit(1)).alias("period_row_count"),
        *[F.sum(f"{d}_duration_seconds").alias(f"{d}_duration_seconds") for d in _DURATIONS],
    )
    compute = F.flatten(F.transform("timeline", lambda x: x["compute"]))
    clusters = F.filter(compute, lambda c: c["cluster_id"].isNotNull())
    warehouses = F.filter(compute, lambda c: c["warehouse_id"].isNotNull())
    compute_ids = F.array_distinct(F.flatten(F.transform("timeline", lambda x: x["ids"])))
    result_state = F.col("f.result_state")
    trigger_type = F.coalesce("f.trigger_type", "any_trigger_type")
    return agg.select(
        "account_id", "workspace_id", F.col("f.job_id").alias("job_id"), "run_id",
        F.coalesce("f.run_name", "any_run_name").alias("run_name"),
        F.coalesce("f.run_type", "any_run_type").alias("run_type"),
        trigger_type.alias("trigger_type"),
        F.coalesce(trigger_type == "RETRY", F.lit(False)).alias("is_retry"),
        "period_start_time", "period_end_time",
        F.to_date("period_start_time").alias("run_date"),
        result_state.alias("result_state"),
        F.col("f.termination_code").alias("termination_code"),
        F.col("f.termination_type").alias("termination_type"),
        F.coalesce(result_state == "SUCCEEDED", F.lit(False)).alias("is_success"),
        F.coalesce(result_state.isin(*FAILURE_STATES), F.lit(False)).alias("is_failure"),
        compute_ids.alias("compute_ids"),
        # Without compute structs, a lone compute id that is not a warehouse is the cluster.
        F.coalesce(
            first_of(clusters)["cluster_id"],
            F.when(F.size(warehouses) == 0, first_of(compute_ids)),
        ).alias("cluster_id"),
        first_of(warehouses)["warehouse_id"].alias("warehouse_id"),
        first_of(compute)["type"].alias("compute_type"),
        *[f"{d}_duration_seconds" for d in _DURATIONS],
        (F.unix_seconds("period_end_time") - F.unix_seconds("period_start_time")).alias("duration_seconds"),
        "period_row_count",
    )


#: Job-run windows that changed in the current build (monitor layer; replaced by every build).
TOUCHED = "gold_build_touched_clusters"


def build_job_runs(lake: Lakehouse) -> tuple[int, DataFrame | None]:
    """Stream new timeline rows into ``fact_job_run_timeline``.

    Returns the rows written and the (workspace_id, cluster_id, start, end) windows of runs that
    changed, so cost attribution can revisit all-purpose usage on those clusters.
    """
    sink = gold_sink(lake, "fact_job_run_timeline", prune_partitions=False)
    since = sink.version()
    # The windows go through a table, not a Python list captured by the foreachBatch function:
    # under Spark Connect that function runs in a server-side worker and its list never comes back.
    lake.delete_table(TOUCHED, "monitor")
    tasks = task_compute(lake)

    def handle(batch: DataFrame) -> None:
        # A run split across micro-batches is recomputed from all of its rows, not just the new ones.
        if sink.exists:
            keys = batch.select("workspace_id", "run_id").distinct()
            rows = lake.read(RUN_SOURCE, "system").join(keys, ["workspace_id", "run_id"], "left_semi")
        else:
            # First batch of a first build: runs with rows in later batches are recomputed there.
            rows = batch
        runs = collapse_runs(rows).persist()
        try:
            sink.upsert(runs)
            windows = runs.select("workspace_id", F.explode(run_clusters()).alias("cluster_id"),
                                  "period_start_time", "period_end_time")
            if tasks is not None:
                # The all-purpose clusters these runs' tasks used are only in the task timeline.
                windows = windows.unionByName(tasks.join(runs.select("workspace_id", "run_id"),
                                                         ["workspace_id", "run_id"], "left_semi")
                                              .select(*windows.columns))
            windows = (
                windows.groupBy("workspace_id", "cluster_id")
                .agg(F.min("period_start_time").alias("start"), F.max("period_end_time").alias("end"))
            )
            lake.write(windows, TOUCHED, "monitor", mode="append")
        finally:
            runs.unpersist()

    run_stream(lake, RUN_SOURCE, "fact_job_run_timeline", handle)
    if not lake.exists(TOUCHED, "monitor"):
        return sink.committed_rows(since), None
    return sink.committed_rows(since), lake.read(TOUCHED, "monitor")


def build_dim_job(lake: Lakehouse) -> int:
    """SCD2 jobs: one version per ``lakeflow.jobs`` change, with the task graph in force then.

    Task rows are matched "as of" each version: the latest change of every task before the next
    job version starts (tasks edited between two job changes belong to the version in force).
    ``task_count`` counts tasks not deleted; ``dependency_count`` their depends_on edges.
    """
    jobs = versions(lake.read("lakeflow.jobs", "system"), ["workspace_id", "job_id"], "change_time")
    if lake.exists("lakeflow.job_tasks", "system"):
        tasks = lake.read("lakeflow.job_tasks", "system").select(
            "workspace_id", "job_id", "task_key", F.col("change_time").alias("task_change_time"),
            F.col("delete_time").alias("task_delete_time"), "depends_on_keys",
        )
        v = jobs.select("workspace_id", "job_id", "effective_from", "effective_to")
        as_of = (
            v.join(tasks, ["workspace_id", "job_id"])
            .filter(F.col("task_change_time") < F.coalesce("effective_to", far_future()))
            .groupBy("workspace_id", "job_id", "effective_from", "task_key")
            .agg(F.max_by(F.struct("task_delete_time", "depends_on_keys"), "task_change_time").alias("t"))
            .filter(F.col("t.task_delete_time").isNull())
            .groupBy("workspace_id", "job_id", "effective_from")
            .agg(
                F.count(F.lit(1)).cast("int").alias("task_count"),
                F.sum(F.size(F.coalesce("t.depends_on_keys", F.array().cast("array<string>"))))
                .cast("int").alias("dependency_count"),
            )
        )
        jobs = jobs.join(as_of, ["workspace_id", "job_id", "effective_from"], "left").withColumn(
            "task_count", F.coalesce("task_count", F.lit(0))
        ).withColumn("dependency_count", F.coalesce("dependency_count", F.lit(0)))
    else:
        jobs = jobs.withColumn("task_count", F.lit(None)).withColumn("dependency_count", F.lit(None))
    out = jobs.select(
        "*",
        tag("tags", "team").alias("tag_team"),
        tag("tags", "project").alias("tag_project"),
        tag("tags", "cost_center").alias("tag_cost_center"),
        F.col("trigger.schedule.quartz_cron_expression").alias("schedule_cron"),
    )
    return gold_sink(lake, "dim_job").upsert(out)
