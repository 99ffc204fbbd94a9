"""The streaming inputs of each domain: Gold fact tables read with ``readStream``, projected to
the narrow rows the stateful scorer needs.

Every flag is computed here as a Spark column expression (vectorized, in the JVM), so the Python
side only aggregates. Each projection keeps ``source_table`` so rows that arrive behind the
watermark can be written to ``monitor.late_rows`` with where they came from.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from health_monitor.runtime import Lakehouse
from health_monitor.streaming.windows import SENSITIVE_REGEX

#: Audit actions that are logins (Databricks: login, tokenLogin, samlLogin, oidcBrowserLogin, ...).
LOGIN_REGEX = r"(?i)(login|authenticat)"
#: Permission changes: grants, ACL changes, role and group membership, admin flags.
GRANT_REGEX = (r"(?i)(grant|updatepermissions|changepermissions|permissionsupdate|acl|"
               r"addprincipal|addmember|setadmin|updaterole|assignrole)")
#: Grants whose grantee may be the actor (group membership changes are admin routine, not grants).
SELF_GRANT_REGEX = r"(?i)(grant|updatepermissions|changepermissions|permissionsupdate|acl|setadmin|role)"
#: Administrative actions beyond grants: users, groups, tokens, secrets, settings, policies.
ADMIN_REGEX = (GRANT_REGEX[:-1] + r"|revoke|createuser|deleteuser|creategroup|deletegroup|"
               r"workspaceconf|setting|(create|generate)(db)?token|secret|policy|ipaccesslist)")
#: Exports and downloads of data or notebooks.
EXPORT_REGEX = r"(?i)(download|export)"
#: request_params keys that carry the size of a download/export, when the service logs it.
EXPORT_SIZE_KEYS = ("bytes", "size_bytes", "num_bytes", "result_size_bytes", "download_bytes",
                    "exported_bytes", "byteCount")


@dataclass(frozen=True)
class DomainInput:
    """One domain's streaming input: ``rows`` (one per source row, for the late-row audit) and
    ``keyed`` (one per entity a source row belongs to, what the stateful scorer groups)."""

    rows: DataFrame
    keyed: DataFrame


def _read(lake: Lakehouse, table: str, max_files: int | None, change_feed: bool = False) -> DataFrame:
    # Gold MERGE updates must not stop the stream: skip them, or read them as changes.
    opts = {"readChangeFeed": "true"} if change_feed else {"skipChangeCommits": "true"}
    if max_files:
        opts["maxFilesPerTrigger"] = str(max_files)
    return lake.read_stream(table, "gold", **opts)


def _has_change_feed(lake: Lakehouse, table: str) -> bool:
    props = lake.spark.sql(f"SHOW TBLPROPERTIES {lake.table_name(table, 'gold')}").collect()
    return any(r.key == "delta.enableChangeDataFeed" and r.value.lower() == "true" for r in props)


def _read_upserts(lake: Lakehouse, table: str, max_files: int | None) -> DataFrame:
    """New rows and the new versions of updated rows of a Gold table.

    Reads the change data feed where the table has one (inserts and update post-images), so a
    row that is completed by an update (a job run's final state) reaches the stream. Consumers
    must treat a re-delivered key as a replacement. Tables without the feed (written before it
    was enabled, or by hand) fall back to new rows only.
    """
    if not _has_change_feed(lake, table):
        return _read(lake, table, max_files)
    changes = _read(lake, table, max_files, change_feed=True)
    return (changes.filter(F.col("_change_type").isin("insert", "update_postimage"))
            .drop("_change_type", "_commit_version", "_commit_timestamp"))


def _row_json(df: DataFrame, cols: list[str]) -> Column:
    return F.to_json(F.struct(*[F.col(c) for c in cols]))


def _optional(df: DataFrame, name: str) -> Column:
    """A column of a Gold table written before it existed reads as null."""
    return F.col(name) if name in df.columns else F.lit(None).cast("string")


def cost_input(lake: Lakehouse, max_files: int | None = None) -> DomainInput:
    """Hourly cost from ``fact_usage`` per workspace, workspace x SKU, and per job, SQL warehouse
    and all-purpose cluster where the usage names one (``usage_metadata``).

    A job's spend is diluted in its workspace's and SKU's hours; its own key judges it against
    its own runs. A cluster is keyed only where billing named no job (all-purpose compute): a
    job cluster lives for one run and its spend is the job's.
    """
    u = _read(lake, "fact_usage", max_files)
    rows = u.select(
        F.col("workspace_id"),
        F.col("usage_start_time").alias("event_time"),
        F.coalesce(F.col("list_cost").cast("double"), F.lit(0.0)).alias("cost"),
        F.coalesce(F.col("usage_quantity").cast("double"), F.lit(0.0)).alias("dbus"),
        F.col("sku_name"), F.col("job_id"), F.col("job_name"), F.col("is_tagged"),
        _optional(u, "usage_metadata_job_run_id").cast("string").alias("job_run_id"),
        _optional(u, "warehouse_id").cast("string").alias("warehouse_id"),
        _optional(u, "cluster_id").cast("string").alias("cluster_id"),
        _optional(u, "job_id_source").cast("string").alias("job_id_source"),
        F.col("record_id"),
        F.lit("fact_usage").alias("source_table"),
    )
    billed_job = F.col("job_id").isNotNull() & F.coalesce(F.col("job_id_source") != "CLUSTER_ATTRIBUTION",
                                                          F.lit(True))
    keyed = rows.withColumn("_e", F.explode(F.filter(F.array(
        F.struct(F.lit("workspace").alias("entity_type"), F.col("workspace_id").alias("entity_id")),
        F.struct(F.lit("workspace_sku").alias("entity_type"),
                 F.concat_ws(":", "workspace_id", "sku_name").alias("entity_id")),
        F.struct(F.lit("job").alias("entity_type"), F.col("job_id").cast("string").alias("entity_id")),
        F.struct(F.lit("warehouse").alias("entity_type"), F.col("warehouse_id").alias("entity_id")),
        F.struct(F.lit("cluster").alias("entity_type"),
                 F.when(~billed_job, F.col("cluster_id")).alias("entity_id")),
    ), lambda e: e["entity_id"].isNotNull()))).select("_e.entity_type", "_e.entity_id", *[c for c in rows.columns])
    return DomainInput(rows.withColumn("entity_id", F.col("workspace_id")), keyed)


_SEC_COLS = ["entity_id", "workspace_id", "event_time", "source", "ip", "is_login", "is_failed",
             "is_admin", "is_grant", "is_self_grant", "is_export", "export_bytes", "table_name",
             "is_read", "is_sensitive", "statement_id", "read_bytes", "source_table"]


def security_input(lake: Lakehouse, max_files: int | None = None) -> DomainInput:
    """Per-user activity from ``fact_audit_events`` and ``fact_table_lineage``.

    Lineage rows are joined to ``fact_query_history`` (a batch read: query history is not
    streamable on Databricks) by statement_id for the bytes each query read; Delta re-reads the
    static side every micro-batch, so queries recorded since the stream started are found.
    """
    parts = []
    if lake.exists("fact_audit_events"):
        a = _read(lake, "fact_audit_events", max_files)
        user = F.coalesce(F.col("user_email"), F.col("run_by"), F.col("subject_name"))
        action = F.coalesce(F.col("action_name"), F.lit(""))
        is_grant = action.rlike(GRANT_REGEX) & ~action.rlike("(?i)revoke")
        size = F.coalesce(*[F.expr(f"try_cast(try_element_at(request_params, '{k}') AS double)")
                            for k in EXPORT_SIZE_KEYS])
        parts.append(a.select(
            user.alias("entity_id"), F.col("workspace_id"), F.col("event_time"),
            F.lit("audit").alias("source"), F.col("source_ip_address").alias("ip"),
            action.rlike(LOGIN_REGEX).alias("is_login"),
            F.coalesce(F.col("is_failed"), F.col("status_code") >= 400, F.lit(False)).alias("is_failed"),
            (action.rlike(ADMIN_REGEX) & ~action.rlike(LOGIN_REGEX)).alias("is_admin"),
            is_grant.alias("is_grant"),
            # A permission change naming its own actor as principal (the grantee sits inside the
            # request's JSON "changes", so match the e-mail anywhere in a parameter value).
            (action.rlike(SELF_GRANT_REGEX)
             & F.coalesce(F.exists(F.map_values("request_params"),
                                   lambda v: F.lower(v).contains(F.lower(user))), F.lit(False))
             ).alias("is_self_grant"),
            action.rlike(EXPORT_REGEX).alias("is_export"),
            size.alias("export_bytes"),
            F.lit(None).cast("string").alias("table_name"), F.lit(None).cast("boolean").alias("is_read"),
            F.lit(None).cast("boolean").alias("is_sensitive"),
            F.lit(None).cast("string").alias("statement_id"), F.lit(None).cast("double").alias("read_bytes"),
            F.lit("fact_audit_events").alias("source_table"),
        ))
    if lake.exists("fact_table_lineage"):
        ln = _read(lake, "fact_table_lineage", max_files)
        if lake.exists("fact_query_history"):
            qh = (lake.read("fact_query_history")
                  .select("statement_id", F.col("read_bytes").cast("double").alias("read_bytes")))
            ln = ln.join(qh, "statement_id", "left")
        else:
            ln = ln.withColumn("read_bytes", F.lit(None).cast("double"))
        table_name = F.coalesce(F.col("source_table_full_name"), F.col("target_table_full_name"))
        parts.append(ln.select(
            F.col("created_by").alias("entity_id"), F.col("workspace_id"), F.col("event_time"),
            F.lit("lineage").alias("source"), F.lit(None).cast("string").alias("ip"),
            *[F.lit(False).alias(c) for c in ("is_login", "is_failed", "is_admin", "is_grant",
                                               "is_self_grant", "is_export")],
            F.lit(None).cast("double").alias("export_bytes"),
            table_name.alias("table_name"),
            F.col("source_table_full_name").isNotNull().alias("is_read"),
            F.coalesce(F.col("source_table_full_name").rlike(SENSITIVE_REGEX), F.lit(False)).alias("is_sensitive"),
            F.col("statement_id"), F.col("read_bytes"),
            F.lit("fact_table_lineage").alias("source_table"),
        ))
    if not parts:
        from health_monitor.errors import HealthMonitorError

        raise HealthMonitorError("the security stream needs gold.fact_audit_events or gold.fact_table_lineage")
    rows = parts[0]
    for p in parts[1:]:
        rows = rows.unionByName(p)
    rows = rows.filter(F.col("entity_id").isNotNull())
    keyed = rows.withColumn("entity_type", F.lit("user"))
    return DomainInput(rows, keyed)


def reliability_input(lake: Lakehouse, max_files: int | None = None) -> DomainInput:
    """Finished job runs per job from ``fact_job_run_timeline`` (event time = end of the run)."""
    # A run lands in Gold while it runs and gets its result_state by an update: read upserts.
    r = _read_upserts(lake, "fact_job_run_timeline", max_files)
    rows = r.filter(F.col("result_state").isNotNull()).select(
        F.col("job_id").alias("entity_id"), F.col("workspace_id"),
        F.col("period_end_time").alias("event_time"),
        F.col("run_id"), F.coalesce(F.col("run_name"), F.col("job_id")).alias("job_name"),
        F.col("result_state"),
        F.coalesce(F.col("is_failure"), F.lit(False)).alias("is_failure"),
        F.coalesce(F.col("is_retry"), F.lit(False)).alias("is_retry"),
        # Completion time as an SLA sees it: from trigger to end. Where the timeline starts after
        # the queue, run_duration_seconds (queue included) is the longer of the two.
        F.greatest(F.col("duration_seconds"), F.col("run_duration_seconds")).cast("double").alias("duration_s"),
        F.col("queue_duration_seconds").cast("double").alias("wait_s"),
        F.col("termination_code"),
        F.lit("fact_job_run_timeline").alias("source_table"),
    )
    return DomainInput(rows, rows.withColumn("entity_type", F.lit("job")))
