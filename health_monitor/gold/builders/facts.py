"""Event facts: node utilization, audit, lineage (streamed), and query history, data-quality
results and schema snapshots (batch reads with a watermark: those system tables cannot be streamed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyspark.sql import functions as F

from health_monitor.gold.builders.core import gold_sink, read_since, run_stream

if TYPE_CHECKING:
    from collections.abc import Callable

    from pyspark.sql import DataFrame

    from health_monitor.runtime import Lakehouse


def node_timeline(rows: DataFrame) -> DataFrame:
    """Node samples with a date and total CPU (user + system)."""
    return rows.select(
        "*",
        F.to_date("start_time").alias("node_date"),
        (F.col("cpu_user_percent") + F.col("cpu_system_percent")).alias("cpu_total_percent"),
    )


def audit_events(rows: DataFrame) -> DataFrame:
    """Audit events with identity and response flattened; is_failed = status_code >= 400."""
    status = F.col("response.status_code")
    return rows.select(
        "*",
        F.col("user_identity.email").alias("user_email"),
        F.col("user_identity.subject_name").alias("subject_name"),
        status.alias("status_code"),
        F.col("response.error_message").alias("error_message"),
        F.col("response.result").alias("response_result"),
        F.col("identity_metadata.run_by").alias("run_by"),
        F.col("identity_metadata.run_as").alias("run_as"),
        F.coalesce(status >= 400, F.lit(False)).alias("is_failed"),
    )


def table_lineage(rows: DataFrame) -> DataFrame:
    """Lineage with job and notebook ids taken from entity_metadata (or the entity itself)."""
    md, etype = F.col("entity_metadata"), F.col("entity_type")
    return rows.select(
        *[c for c in rows.columns if c != "entity_metadata"],
        F.coalesce(md["job_info"]["job_id"], F.when(etype == "JOB", F.col("entity_id"))).alias("job_id"),
        F.coalesce(md["job_info"]["job_run_id"], F.when(etype == "JOB", F.col("entity_run_id"))).alias("job_run_id"),
        F.coalesce(md["notebook_id"], F.when(etype == "NOTEBOOK", F.col("entity_id"))).alias("notebook_id"),
        F.col("source_table_full_name").isNotNull().alias("is_read"),
        F.col("target_table_full_name").isNotNull().alias("is_write"),
    )


def query_history(rows: DataFrame) -> DataFrame:
    """Statements with compute and query_source flattened."""
    qs = F.col("query_source")
    return rows.select(
        *[c for c in rows.columns if c != "compute"],
        F.col("compute.type").alias("compute_type"),
        F.col("compute.warehouse_id").alias("warehouse_id"),
        F.col("compute.cluster_id").alias("cluster_id"),
        F.to_date("start_time").alias("query_date"),
        qs["job_info"]["job_id"].alias("query_source_job_id"),
        qs["dashboard_id"].alias("query_source_dashboard_id"),
        qs["notebook_id"].alias("query_source_notebook_id"),
    )


def dq_results(rows: DataFrame) -> DataFrame:
    """Data-quality monitoring results with the nested checks flattened."""
    fresh, comp = F.col("freshness"), F.col("completeness")
    total, daily = comp["total_row_count"], comp["daily_row_count"]
    return rows.select(
        "event_time", F.to_date("event_time").alias("event_date"),
        "catalog_name", "schema_name", "table_name",
        F.concat_ws(".", "catalog_name", "schema_name", "table_name").alias("table_full_name"),
        "table_id", "status",
        fresh["status"].alias("freshness_status"),
        fresh["commit_freshness"]["status"].alias("commit_freshness_status"),
        fresh["commit_freshness"]["last_value"].alias("commit_freshness_last_value"),
        fresh["commit_freshness"]["predicted_value"].alias("commit_freshness_predicted_value"),
        comp["status"].alias("completeness_status"),
        total["last_value"].alias("total_row_count"),
        total["min_predicted_value"].alias("total_row_count_min_predicted"),
        total["max_predicted_value"].alias("total_row_count_max_predicted"),
        daily["last_value"].alias("daily_row_count"),
        daily["min_predicted_value"].alias("daily_row_count_min_predicted"),
        daily["max_predicted_value"].alias("daily_row_count_max_predicted"),
        F.col("downstream_impact.impact_level").alias("downstream_impact_level"),
        F.col("downstream_impact.num_downstream_tables").alias("num_downstream_tables"),
        F.col("downstream_impact.num_queries_on_affected_tables").alias("num_queries_on_affected_tables"),
        F.transform("root_cause_analysis.upstream_jobs", lambda j: j["job_id"]).alias("upstream_job_ids"),
    )


def schema_history(rows: DataFrame) -> DataFrame:
    """Column snapshots keyed by their table's full name.

    The real ``information_schema.columns`` is a live view without a snapshot time: its rows are
    stamped with the build's time, so each build adds one dated snapshot.
    """
    return rows.withColumn("snapshot_time", F.coalesce("snapshot_time", F.current_timestamp())).select(
        "*", F.concat_ws(".", "table_catalog", "table_schema", "table_name").alias("table_full_name")
    )


def streamed(source: str, table: str, transform: Callable[[DataFrame], DataFrame]) -> Callable[[Lakehouse], int]:
    """A builder that streams new rows of ``source`` through ``transform`` into ``table``."""

    def build(lake: Lakehouse) -> int:
        sink = gold_sink(lake, table)
        since = sink.version()
        run_stream(lake, source, table, lambda batch: sink.upsert(transform(batch)))
        return sink.committed_rows(since)

    build.__doc__ = f"Stream new rows of system.{source} into {table}."
    return build


def batched(source: str, table: str, transform: Callable[[DataFrame], DataFrame],
            change_time: str) -> Callable[[Lakehouse], int]:
    """A builder that reads ``source`` from its watermark on (change time: SQL expression)."""

    def build(lake: Lakehouse) -> int:
        sink = gold_sink(lake, table)
        rows, mark = read_since(lake, source, table, F.expr(change_time))
        rows = rows.persist()
        try:
            n = sink.upsert(transform(rows.drop("_change_time")))
            mark.advance(rows)
        finally:
            rows.unpersist()
        return n

    build.__doc__ = f"Read system.{source} changed since the last build (by {change_time}) into {table}."
    return build


build_node_timeline = streamed("compute.node_timeline", "fact_node_timeline", node_timeline)
build_audit_events = streamed("access.audit", "fact_audit_events", audit_events)
build_table_lineage = streamed("access.table_lineage", "fact_table_lineage", table_lineage)
# query.history rows change while a statement runs (update_time), so that is the change time.
build_query_history = batched("query.history", "fact_query_history", query_history,
                              "coalesce(update_time, end_time, start_time)")
build_dq_results = batched("data_quality_monitoring.table_results", "fact_data_quality_monitoring_table_results",
                           dq_results, "event_time")
build_schema_history = batched("information_schema.columns", "fact_table_schema_history", schema_history,
                               "coalesce(snapshot_time, current_timestamp())")
