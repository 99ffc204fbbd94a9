"""The feature columns each streaming domain's window frame carries: the vocabulary rules use.

The streaming queries build one row per entity and event-time window with these columns (extra
columns are fine). Rules are checked against this list when they are loaded, so a typo in a
column name is a load-time error with the file and line, not an alert that silently never fires.
Domains not listed here (performance, quality) have no streaming frame yet; their rules are
accepted without a column check.
"""

from __future__ import annotations

#: Columns every domain's frame has (identity of the window plus the blended detector output).
COMMON_COLUMNS: dict[str, str] = {
    "entity_type": "workspace | workspace_sku | user | job",
    "entity_id": "the entity's id (workspace id, workspace:sku, user name, job id)",
    "workspace_id": "workspace of the entity",
    "window_start": "start of the event-time window (UTC)",
    "window_end": "end of the event-time window (UTC)",
    "value": "the window's main metric (cost, risk, duration)",
    "expected": "what the detectors expected for value",
    "score": "blended detector score, 0 (normal) to 1 (anomalous)",
    "recent_high_windows": "how many of the entity's last 3 windows (this one included) scored >= 0.8",
    "hour_of_day": "hour of window_start, 0-23 UTC",
    "day_of_week": "weekday of window_start, 1 = Sunday .. 7 = Saturday (Spark's dayofweek)",
    "is_weekend": "1 when window_start falls on a Saturday or Sunday",
}

DOMAIN_COLUMNS: dict[str, dict[str, str]] = {
    "cost": {
        "cost_usd": "list cost of the window (USD)",
        "dbus": "DBUs of the window",
        "sku_count": "distinct SKUs billed in the window",
        "job_count": "distinct jobs billed in the window",
        "baseline_7d": "mean hourly cost over the previous 7 days",
        "baseline_30d": "mean hourly cost over the previous 30 days",
        "std_7d": "standard deviation of hourly cost over the previous 7 days",
        "zscore_7d": "(cost_usd - baseline_7d) / std_7d",
        "pct_change_7d": "percent change of cost_usd against baseline_7d",
        "ratio_7d": "cost_usd / baseline_7d",
        "hour_sin": "cyclical hour feature", "hour_cos": "cyclical hour feature",
        "dow_sin": "cyclical weekday feature", "dow_cos": "cyclical weekday feature",
        "sku_name": "SKU (workspace_sku entities only)",
        "top_sku": "SKU with the most cost in the window",
        "top_job": "name of the job with the most cost in the window",
        "top_job_id": "id of the job with the most cost in the window",
        "untagged_cost_usd": "cost in the window without a team/project/cost_center tag",
        "untagged_cost_pct": "untagged_cost_usd as a percent (0-100) of cost_usd",
        "mtd_cost_usd": "month-to-date cost of the workspace up to window_end",
        "month_elapsed_frac": "fraction (0-1] of the calendar month elapsed at window_end",
        "budget_usd": "monthly budget: the commit (commit_configurations) divided by 12; null if none",
        "run_rate_month_usd": "the last 7 days' spend (up to window_end; over the key's life if younger) "
                              "as a calendar month of that rate",
        "history_days": "days since the key's first window",
        "cost_usd_at_risk": "cost above the expected level (impact input for alerts)",
    },
    "security": {
        "user": "user name (email or service principal id)",
        "events": "audit events in the window",
        "logins": "login attempts",
        "failed_logins": "failed login attempts",
        "failed_login_rate": "failed_logins / logins (0-1)",
        "distinct_ips": "distinct source IPs",
        "off_hours_events": "events before 06:00 or after 22:00",
        "weekend_events": "events on Saturday or Sunday",
        "admin_actions": "administrative actions (permissions, users, groups, workspace config)",
        "off_hours_admin_actions": "administrative actions before 06:00 or after 22:00",
        "tables_touched": "distinct tables read or written",
        "sensitive_table_access": "reads of tables whose name marks them sensitive (pii, hr, payments...)",
        "first_pii_tables": "sensitive tables this user read for the first time",
        "sensitive_reads_max_30d": "the user's largest hourly sensitive_table_access in the previous 30 days "
                                   "(null in the user's first 2 days)",
        "new_networks": "source networks (IPv4 /24, IPv6 /48) never seen for this user before "
                        "(0 in the user's first 2 days)",
        "export_count_max_30d": "the user's largest hourly export_count in the previous 30 days "
                                "(null in the user's first 2 days)",
        "grants": "permission grants made",
        "self_grants": "grants made by the user to themselves",
        "export_gb": "data exported or downloaded (GB)",
        "export_count": "export / download actions",
        "export_bytes": "data exported or downloaded (bytes)",
        "read_gb": "data read by the user's queries (GB)",
        "is_service_principal": "1 when the user is a service principal",
        "sensitivity": "sensitivity of the data touched, 0 (public) to 1 (PII) (impact input)",
    },
    "reliability": {
        "job_id": "job id",
        "job_name": "job name",
        "run_id": "latest run in the window",
        "result_state": "result state of the latest run (SUCCEEDED, FAILED, ...)",
        "runs": "runs finished in the window",
        "failures": "failed runs in the window",
        "consecutive_failures": "current streak of failed runs (retry attempts included)",
        "consecutive_failed_runs": "runs started by the schedule or a person in that streak (a run's failed "
                                   "retries count once)",
        "termination_code": "termination code of the latest run (Jobs API, e.g. DRIVER_ERROR)",
        "failure_is_final": "1 if the latest attempt failed and no retry of it is to be expected (it was a "
                            "retry, or the job never retries), else 0",
        "prior_max_failure_streak": "longest failure streak of the job in the previous 30 days (0 if none)",
        "duration_s": "duration of the latest run, from trigger to end (seconds, queue included)",
        "wait_s": "time the latest run waited in the queue before it started (seconds)",
        "median_duration_s": "median duration of the job's previous runs (seconds)",
        "duration_ratio": "duration_s / median_duration_s",
        "duration_z": "robust z of the latest successful run's log duration against the job's previous "
                      "successful runs (median, MAD); null with fewer than 5 runs",
        "slow_run_streak": "consecutive successful runs with duration_z >= 3",
        "sla_breach_streak": "consecutive runs longer than the job's MAX_DURATION SLA",
        "sla_breaches_24h": "runs longer than the job's MAX_DURATION SLA that ended in the last 24 hours",
        "runs_per_day_7d": "the job's runs per day over the previous 7 days (null with under 2 days)",
        "retries": "retry attempts of the latest run",
        "sla_seconds": "MAX_DURATION SLA of the job (sla_definitions), null if none",
        "sla_breached": "1 when the latest run breached its SLA",
        "failure_rate_7d": "failed share of the job's runs in the previous 7 days",
        "cost_usd_at_risk": "cost of failed or over-running compute (impact input)",
    },
}

#: The domains a rule may name.
DOMAINS = ("cost", "security", "reliability", "performance", "quality")


def known_columns(domain: str) -> set[str] | None:
    """Columns a rule of ``domain`` may reference, or None when the domain's frame is not defined."""
    if domain not in DOMAIN_COLUMNS:
        return None
    return set(COMMON_COLUMNS) | set(DOMAIN_COLUMNS[domain])
