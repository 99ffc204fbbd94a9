"""Security features: one row per (user_id, event_date) from the audit log, table lineage and
query history. Baselines compare a day with the user's previous days and with peers that day."""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from health_monitor.features.common import day_num, days_window, first_seen_flags, ratio
from health_monitor.vocabulary import SENSITIVE_TABLE_REGEX

#: Table names that hold personal or regulated data: the stream's definition (one for both).
SENSITIVE_PATTERN = SENSITIVE_TABLE_REGEX
GB = 1_000_000_000


def _lower(col: str) -> F.Column:
    return F.lower(F.coalesce(F.col(col), F.lit("")))


def audit_daily(audit: DataFrame) -> DataFrame:
    """Per user-day counts of logins, permission changes, self-grants, admin actions, ..."""
    action, service = _lower("action_name"), _lower("service_name")
    failed = F.coalesce(F.col("is_failed"), F.lit(False))
    is_login = action.contains("login")
    is_perm = (action.contains("permission") | action.contains("grant") | action.contains("acl")
               | action.contains("privilege"))
    is_grant = is_perm & ~action.contains("revoke")
    is_group = action.contains("group") | action.contains("principal") | action.contains("role")
    is_admin = (action.contains("admin") | action.contains("workspaceconf") | action.contains("policy")
                | service.isin("accounts", "workspace", "globalinitscripts", "clusterpolicies")) & ~is_login
    is_token = action.contains("token") & ~is_login
    is_download = action.contains("download") | action.contains("export")
    email = F.lower(F.coalesce(F.col("user_email"), F.lit("")))
    # Self-grant: a permission change whose parameters name the actor as the grantee.
    self_grant = is_grant & F.exists(F.map_values(F.coalesce(F.col("request_params"),
                                                             F.create_map().cast("map<string,string>"))),
                                     lambda v: (F.length(email) > 0) & F.lower(v).contains(email))
    hour = F.hour("event_time")
    off = (hour < 6) | (hour >= 22)
    a = audit.where(F.col("user_email").isNotNull()).withColumn("user_id", F.lower("user_email"))
    return a.groupBy("user_id", "event_date").agg(
        F.count("*").alias("audit_events"),
        F.sum(is_login.cast("int")).alias("login_count"),
        F.sum((is_login & failed).cast("int")).alias("failed_login_count"),
        F.countDistinct("source_ip_address").alias("unique_ip_count"),
        F.sum(off.cast("int")).alias("_off_audit"),
        F.sum(is_perm.cast("int")).alias("permission_change_count"),
        F.sum(is_grant.cast("int")).alias("grant_count"),
        F.sum(is_group.cast("int")).alias("group_change_count"),
        F.sum(is_admin.cast("int")).alias("admin_action_count"),
        F.sum((is_admin & off).cast("int")).alias("off_hours_admin_count"),
        F.sum(is_token.cast("int")).alias("token_event_count"),
        F.sum(is_download.cast("int")).alias("download_count"),
        F.sum((failed & ~is_login & F.col("status_code").isin(401, 403)).cast("int")).alias("failed_access_count"),
        F.sum((service == "jobs").cast("int")).alias("job_run_count"),
        F.sum(self_grant.cast("int")).alias("self_grant_count"),
        F.sum((is_perm & failed).cast("int")).alias("denied_permission_change_count"),
        F.collect_set("workspace_id").alias("_ws_audit"),
    )


def lineage_daily(lineage: DataFrame) -> DataFrame:
    """Per user-day table access counts (distinct, sensitive) and read/write mix."""
    table = F.coalesce("source_table_full_name", "target_table_full_name")
    sensitive = F.lower(F.coalesce(F.col("source_table_full_name"), F.lit(""))).rlike(SENSITIVE_PATTERN)
    hour = F.hour("event_time")
    lin = lineage.where(F.col("created_by").isNotNull()).withColumn("user_id", F.lower("created_by"))
    return lin.groupBy("user_id", "event_date").agg(
        F.count("*").alias("lineage_events"),
        F.countDistinct(table).alias("tables_accessed"),
        F.sum((sensitive & F.coalesce(F.col("is_read"), F.lit(False))).cast("int")).alias("sensitive_table_access_count"),
        F.sum(F.coalesce(F.col("is_read"), F.lit(False)).cast("int")).alias("_reads"),
        F.sum(F.coalesce(F.col("is_write"), F.lit(False)).cast("int")).alias("_writes"),
        F.sum(((hour < 6) | (hour >= 22)).cast("int")).alias("_off_lineage"),
        F.collect_set("workspace_id").alias("_ws_lineage"),
    )


def query_daily(queries: DataFrame) -> DataFrame:
    """Per user-day query volume: bytes read, large scans, exports, off-hours share."""
    hour = F.hour("start_time")
    off = (hour < 6) | (hour >= 22)
    text = _lower("statement_text")
    export = (F.col("statement_type") == "COPY") | text.contains("export") | text.contains("unload") \
        | text.rlike(r"copy\s+into\s+'") | text.contains("insert overwrite directory")
    read = F.coalesce(F.col("read_bytes"), F.lit(0)).cast("double")
    q = queries.where(F.col("executed_by").isNotNull()).withColumn("user_id", F.lower("executed_by"))
    return q.groupBy("user_id", F.col("query_date").alias("event_date")).agg(
        F.count("*").alias("query_count"),
        F.sum(read).alias("bytes_read"),
        F.sum((read > GB).cast("int")).alias("large_query_count"),
        F.sum(export.cast("int")).alias("export_statement_count"),
        F.sum(F.when(off, read).otherwise(0.0)).alias("_off_bytes"),
        F.sum(off.cast("int")).alias("_off_queries"),
        F.collect_set("workspace_id").alias("_ws_query"),
    )


def user_daily_features(audit: DataFrame, lineage: DataFrame, queries: DataFrame) -> DataFrame:
    """One row per (user_id, event_date) with the user's activity that day, its deviation from
    the user's previous 7 days (windows end the day before) and from peers the same day.
    ``label_escalation`` (a self-grant or a denied permission change) is the privilege
    escalation detector's label; the two columns it is made of are not its features (the
    unsupervised behaviour baseline reads ``self_grant_count`` as a rule: a self-grant flags the
    day whatever the label of any supervised model says)."""
    keys = ["user_id", "event_date"]
    days = audit_daily(audit).join(lineage_daily(lineage), keys, "full").join(query_daily(queries), keys, "full")
    counts = [c for c in days.columns if c not in keys and not c.startswith("_ws")]
    days = days.fillna(0, subset=counts)
    ws = F.array_distinct(F.concat(*[F.coalesce(F.col(c), F.array().cast("array<string>"))
                                     for c in ("_ws_audit", "_ws_lineage", "_ws_query")]))
    events = F.col("audit_events") + F.col("query_count") + F.col("lineage_events")
    d = days.select(
        "*", events.alias("event_count"), F.size(ws).alias("cross_workspace_count"),
        F.log1p("bytes_read").alias("log_bytes_read"),
        ratio(F.col("_off_audit") + F.col("_off_lineage") + F.col("_off_queries"), events).alias("off_hours_rate"),
        ratio(F.col("failed_login_count"), F.col("login_count")).alias("failed_login_rate"),
        ratio(F.col("_off_bytes"), F.col("bytes_read")).alias("off_hours_bytes_read_pct"),
        ratio(F.col("_reads"), F.col("_writes") + 1).alias("read_write_ratio"),
        F.dayofweek("event_date").isin(1, 7).cast("int").alias("is_weekend"),
    ).withColumn("_d", day_num("event_date"))
    # First-time tables / schemas / IPs: dates of first sight depend only on the past.
    lin = lineage.where(F.col("created_by").isNotNull()).withColumn("user_id", F.lower("created_by"))
    new_tables = first_seen_flags(lin.withColumn("_t", F.col("source_table_full_name")), "user_id", "_t",
                                  "event_date").withColumnRenamed("new_count", "new_table_access_count")
    schema = F.concat_ws(".", "source_table_catalog", "source_table_schema")
    new_schemas = first_seen_flags(lin.withColumn("_s", F.when(F.col("source_table_schema").isNotNull(), schema)),
                                   "user_id", "_s", "event_date").withColumnRenamed("new_count",
                                                                                    "new_schema_access_count")
    aud = audit.where(F.col("user_email").isNotNull()).withColumn("user_id", F.lower("user_email"))
    new_ips = first_seen_flags(aud, "user_id", "source_ip_address", "event_date").withColumnRenamed(
        "new_count", "new_ip_count")
    for extra in (new_tables, new_schemas, new_ips):
        d = d.join(extra, keys, "left")
    d = d.fillna(0, subset=["new_table_access_count", "new_schema_access_count", "new_ip_count"])
    # A user's first days make everything "new": only count novelty after a week of history.
    first_day = F.min("_d").over(Window.partitionBy("user_id"))
    settled = (F.col("_d") - first_day) >= 7
    for c in ("new_table_access_count", "new_schema_access_count", "new_ip_count"):
        d = d.withColumn(c, F.when(settled, F.col(c)).otherwise(0))
    w7 = days_window(["user_id"], "_d", -7, -1)
    peers = Window.partitionBy("event_date")
    prev_day = Window.partitionBy("user_id").orderBy("_d")
    d = d.select(
        "*",
        F.avg("event_count").over(w7).alias("event_7d_avg"),
        F.stddev("event_count").over(w7).alias("event_7d_std"),
        F.avg("bytes_read").over(w7).alias("bytes_7d_avg"),
        F.avg("permission_change_count").over(w7).alias("_perm_7d_avg"),
        F.percentile_approx("event_count", 0.5).over(peers).alias("_peer_events"),
        F.percentile_approx("bytes_read", 0.5).over(peers).alias("_peer_bytes"),
        ((F.col("_d") - F.lag("_d").over(prev_day)) * 24.0).alias("hours_since_last_activity"),
    )
    return d.select(
        "user_id", "event_date", "event_count", "login_count", "failed_login_count", "failed_login_rate",
        "unique_ip_count", "new_ip_count", "off_hours_rate", "is_weekend", "tables_accessed",
        "sensitive_table_access_count", "new_table_access_count", "new_schema_access_count",
        "permission_change_count", "grant_count", "group_change_count", "admin_action_count",
        "off_hours_admin_count", "token_event_count", "failed_access_count", "download_count",
        "job_run_count", "cross_workspace_count", "query_count", "bytes_read", "log_bytes_read",
        "large_query_count", "export_statement_count", "off_hours_bytes_read_pct", "read_write_ratio",
        "event_7d_avg", "bytes_7d_avg",
        ratio(F.col("event_count") - F.col("event_7d_avg"), F.col("event_7d_std")).alias("event_z_score"),
        ratio(F.col("bytes_read"), F.col("bytes_7d_avg") + 1e6).alias("bytes_read_vs_avg"),
        ratio(F.col("bytes_read"), F.col("_peer_bytes") + 1e6).alias("bytes_read_vs_peer"),
        ratio(F.col("event_count"), F.col("_peer_events")).alias("activity_vs_peer"),
        (F.col("permission_change_count") - F.coalesce(F.col("_perm_7d_avg"), F.lit(0.0))).alias(
            "permission_velocity"),
        "hours_since_last_activity",
        "self_grant_count", "denied_permission_change_count",
        ((F.col("self_grant_count") + F.col("denied_permission_change_count")) > 0).cast("int")
        .alias("label_escalation"),
    )
