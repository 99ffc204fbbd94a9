"""What a monitoring domain is, in one object per domain: :class:`DomainSpec`.

A domain (cost, security, reliability, ...) used to live in ten tables across five modules (the
stream's inputs, source tables, watermark, window logic, blended models, detector alert type,
incident types and rule columns). Each of those is a field here; the streaming engine, the rules,
the alerts and the evaluation read the spec. Adding a domain is adding one spec to :data:`SPECS`
(and its window logic in :mod:`health_monitor.streaming.windows`, its input in
:mod:`health_monitor.streaming.sources`).

This module imports only pandas-level code, so the rules and the CLI can read it without Spark.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from health_monitor.streaming import windows

if TYPE_CHECKING:
    from health_monitor.runtime import Lakehouse
    from health_monitor.streaming.sources import DomainInput


def _cost_context(lake: Lakehouse) -> dict[str, Any]:
    """Monthly budget per workspace: the latest commit year spread evenly over twelve months."""
    if not lake.exists("commit_configurations"):
        return {}
    rows = lake.read("commit_configurations").where("workspace_id IS NOT NULL").collect()
    latest: dict[str, tuple[int, float]] = {}
    for r in rows:
        if r.workspace_id not in latest or r.commit_year > latest[r.workspace_id][0]:
            latest[r.workspace_id] = (r.commit_year, float(r.commit_amount) / 12.0)
    return {"budgets": {ws: v for ws, (_, v) in latest.items()}}


def _reliability_context(lake: Lakehouse) -> dict[str, Any]:
    """Max-duration SLA (seconds) per (workspace, job)."""
    if not lake.exists("sla_definitions"):
        return {}
    rows = lake.read("sla_definitions").where("sla_type = 'MAX_DURATION'").collect()
    return {"sla": {(r.workspace_id, r.job_id): float(r.max_duration_minutes) * 60
                    for r in rows if r.max_duration_minutes is not None}}


@dataclass(frozen=True)
class DomainSpec:
    """Everything the code knows about one monitoring domain.

    A domain without ``sources`` has no stream (yet): rules may name it, models may belong to it.
    """

    name: str
    #: Gold tables the stream reads (it runs when the first one exists).
    sources: tuple[str, ...] = ()
    #: Name of the input builder in :mod:`health_monitor.streaming.sources` (resolved lazily:
    #: that module needs pyspark).
    input_builder: str | None = None
    #: Entity types the stream keys its state by.
    keys: tuple[str, ...] = ()
    #: How far behind the newest event time a row may arrive and still count.
    watermark: str = "1 hour"
    #: How rows become hourly windows and a closed window becomes features.
    window: windows.WindowLogic | None = None
    #: Static lookups (budgets, SLAs) the scorer needs on every executor.
    context: Callable[[Lakehouse], dict[str, Any]] | None = None
    #: Online detector, by name in :mod:`health_monitor.detectors.registry`.
    detector: str = "univariate"
    #: Window features the detector judges (empty: a univariate detector on ``value``).
    detector_features: tuple[str, ...] = ()
    #: Extra constructor parameters of the detector.
    detector_params: dict[str, Any] = field(default_factory=dict)
    #: Registered champion models (catalog names) the stream blends in; they train on
    #: ``window_table``, so they see exactly the features the stream computes.
    models: tuple[str, ...] = ()
    #: Features-layer table of the stream's window features replayed over Gold
    #: (:mod:`health_monitor.features.windows`): what ``models`` train on.
    window_table: str | None = None
    #: Alert type of a detector-only alert.
    detector_alert_type: str = ""
    #: Whether a detector score may raise an alert with no rule hit (see alerts.policy).
    detector_alerts_alone: bool = True
    #: Entity types whose detector score is evidence only, never an alert alone (their rules
    #: judge them on features the hourly detector does not see).
    rules_only_keys: tuple[str, ...] = ()
    #: The window's ``value`` is money (USD): impact, severity caps and summaries use it.
    value_is_money: bool = False
    #: What a person should look at first, per alert type (fallback: ``default_action``).
    actions: dict[str, str] = field(default_factory=dict)
    default_action: str = "investigate the recent change"
    #: Word for what the entity did, in summaries ("activity", "runs").
    activity: str = "behaviour"
    #: Columns of the window frame rules may use, with their meaning (beyond the common ones).
    rule_columns: dict[str, str] = field(default_factory=dict)
    #: Simulator incident types the domain's stream is meant to detect (recall is reported on these).
    incident_types: tuple[str, ...] = ()

    @property
    def streams(self) -> bool:
        """Whether the domain has a streaming query."""
        return bool(self.sources)

    def open_input(self, lake: Lakehouse, max_files: int | None = None) -> DomainInput:
        """The domain's projected and keyed streaming input."""
        from health_monitor.streaming import sources

        return getattr(sources, str(self.input_builder))(lake, max_files)

    def static_context(self, lake: Lakehouse) -> dict[str, Any]:
        """Lookups the scorer needs (budgets, SLAs) plus the blended models and the registry."""
        from health_monitor.streaming.registered import worker_registry

        # registered names (``health_monitor.<model>`` locally, three-level names in Unity Catalog);
        # on Databricks the driver loads the champions for the workers (streaming/registered.py).
        models = tuple(lake.settings.registered_model_name(m) for m in self.models)
        ctx: dict[str, Any] = {"models": models, "registry_uri": worker_registry(lake.settings, models)}
        if self.context is not None:
            ctx.update(self.context(lake))
        return ctx

    def make_detector(self) -> Any:
        """A fresh online detector for one key (through the detector registry)."""
        from health_monitor.detectors.registry import make_detector

        if self.detector_features:
            return make_detector(self.detector, features=list(self.detector_features), **self.detector_params)
        return make_detector(self.detector, **self.detector_params)


COST = DomainSpec(
    name="cost",
    sources=("fact_usage",),
    input_builder="cost_input",
    keys=("workspace", "workspace_sku", "job", "warehouse", "cluster"),
    # usage records are restated for hours
    watermark="3 hours",
    window=windows.COST_WINDOW,
    context=_cost_context,
    detector="univariate",
    models=("cost_anomaly_detector",),
    window_table="cost_window_features",
    detector_alert_type="cost_anomaly",
    # A job's, warehouse's or cluster's hours come in bursts at its own cadence (a run a day, a
    # busy morning): an hourly detector on them alarms on every run after a quiet spell. Their
    # rules judge whole runs (days) against the key's own; the detector score joins as evidence.
    rules_only_keys=("job", "warehouse", "cluster"),
    value_is_money=True,
    actions={
        "budget_burn": "review the month's largest jobs and warehouses against the budget",
        "untagged_spend": "tag the workspace's clusters, jobs and warehouses with team, project or cost_center",
        "runaway_cost": "check the run's cluster size and duration against the job's usual runs, and stop it "
                        "if it is stuck",
    },
    default_action="check the workspace's largest jobs and warehouses in that hour",
    rule_columns={
    "cost_usd": "list cost of the window (USD)",
    "dbus": "DBUs of the window",
    "sku_count": "distinct SKUs billed in the window",
    "job_count": "distinct jobs billed in the window",
    "baseline_7d": "mean hourly cost over the previous 7 days",
    "baseline_30d": "mean hourly cost over the previous 30 days",
    "std_7d": "standard deviation of hourly cost over the previous 7 days",
    "baseline_hour_usd": "the key's routine at this hour: mean cost of the same hour over the previous 7 days, "
                         "or of the same hour of the week over the previous 4 weeks, the larger (hours "
                         "without spend count as 0; over the key's life while younger than 7 days, null under 2)",
    "zscore_7d": "(cost_usd - baseline_7d) / std_7d",
    "pct_change_7d": "percent change of cost_usd against baseline_7d",
    "ratio_7d": "cost_usd / baseline_7d",
    "routine_ratio": "cost_usd / the larger of baseline_hour_usd and baseline_7d: spend against the key's "
                     "routine at this hour (null without a 7-day baseline)",
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
    # job, warehouse and cluster keys: judged per unit of work (a run, or a day) against their own
    "job_name": "job name (job entities only)",
    "key_label": "how a person names the key: 'Job NAME (ID)', 'SQL warehouse ID', 'All-purpose cluster ID'",
    "unit_name": "the key's unit of work: 'run' (a job run) or 'day' (warehouses, clusters, jobs without run ids)",
    "unit_cost_usd": "cost so far of the key's current unit (run or day) (job, warehouse, cluster keys)",
    "unit_hours": "hours since the current unit's first billed hour",
    "units_seen": "finished units (runs or days) the key remembers, up to 60",
    "typical_unit_usd": "median cost of the key's finished units (null with under 3)",
    "unit_ratio": "unit_cost_usd / typical_unit_usd",
    "unit_z": "robust z of log(unit_cost_usd) against the key's finished units (null with under 5)",
    "prior_max_unit_usd": "cost of the key's most expensive finished unit",
    "last3_median_ratio": "median of the last 3 units (this one included) / typical_unit_usd",
    "last3_min_ratio": "cheapest of the last 3 units (this one included) / typical_unit_usd",
    "unit_usd_at_risk": "unit_cost_usd above typical_unit_usd (impact input for alerts)",
    },
    incident_types=("runaway_job_cost", "billing_error", "budget_overrun", "untagged_spend"),
)

SECURITY = DomainSpec(
    name="security",
    sources=("fact_audit_events", "fact_table_lineage"),
    input_builder="security_input",
    keys=("user",),
    watermark="1 hour",
    window=windows.SECURITY_WINDOW,
    detector="multivariate",
    # Calendar counts (weekend_events, off_hours_events) are rule columns, not detector features:
    # a user who works some weekends has weekend hours in their pattern; off_pattern_events counts
    # only activity in a slot of the week outside the user's (and the population's) pattern.
    detector_features=(
        "logins", "failed_login_rate", "distinct_ips", "off_pattern_events",
        "admin_actions", "tables_touched", "sensitive_table_access", "grants", "self_grants",
        "export_gb", "read_gb"),
    # byte volumes have heavy right tails: judged on log1p(GB); a user who usually reads megabytes
    # reading a few GB is not a security event by itself
    detector_params={"log_features": ("export_gb", "read_gb"),
                     "min_scale": {"export_gb": 0.5, "read_gb": 0.5}},
    models=("security_threat_detector", "data_exfiltration_detector"),
    window_table="user_window_features",
    detector_alert_type="user_behavior_anomaly",
    actions={
        "privilege_escalation": "revoke the grant unless it was approved",
        "data_exfiltration": "confirm the export with the user and review what left the workspace",
        "credential_attack": "check the source IPs and lock the account if the attempts are not the user's",
        "suspicious_login": "confirm the sessions with the user and rotate their credentials if unknown",
        "sensitive_data_access": "confirm the user needs this data and review the table's grants",
        "off_hours_admin": "confirm the changes with the user and review the audit log",
    },
    default_action="review the user's recent activity and revoke access if it is unexpected",
    activity="activity",
    rule_columns={
    "user": "user name (email or service principal id)",
    "events": "audit events in the window",
    "logins": "login attempts",
    "failed_logins": "failed login attempts",
    "failed_login_rate": "failed_logins / logins (0-1)",
    "distinct_ips": "distinct source IPs",
    "off_hours_events": "events before 06:00 or after 22:00",
    "weekend_events": "events on Saturday or Sunday",
    "slot_share": "share of the user's active hours in this window's slot of the week (weekday or weekend, "
                  "3-hour band, UTC), blended with the population's pattern while the history is short",
    "off_pattern_events": "events in a slot of the week outside the user's pattern (slot_share under 1%), else 0",
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
    incident_types=("credential_compromise", "bulk_exfiltration", "privilege_self_grant"),
)

RELIABILITY = DomainSpec(
    name="reliability",
    sources=("fact_job_run_timeline",),
    input_builder="reliability_input",
    keys=("job",),
    watermark="1 hour",
    window=windows.RELIABILITY_WINDOW,
    context=_reliability_context,
    detector="multivariate",
    detector_features=("duration_ratio", "failures", "consecutive_failures", "retries"),
    detector_params={"log_features": ("duration_ratio",)},
    models=(),
    detector_alert_type="job_anomaly",
    # A job's detector sees the same four signals (duration ratio, failures, streak, retries) that
    # the reliability rules judge against the job's own history; on 16 simulated estates its lone
    # alerts were the first failures of streaks the rules confirmed a run later, or flaky spells
    # that recovered (3 of 6 true): its score is evidence on rule alerts, never an alert alone.
    detector_alerts_alone=False,
    actions={
        "job_failure_streak": "check the latest run's error and recent changes to the job",
        "sla_breach": "check the run's cluster, input volume and upstream delays",
        "job_duration_anomaly": "check the run's input volume, cluster size and recent code changes",
    },
    default_action="check the job's latest runs and recent changes",
    activity="runs",
    rule_columns={
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
    },
    incident_types=("failing_job_streak", "sla_breach"),
)

#: Domains with batch models and rules but no stream yet.
PERFORMANCE = DomainSpec(name="performance", detector_alert_type="performance_anomaly")
QUALITY = DomainSpec(name="quality", detector_alert_type="data_quality_anomaly")

#: Every domain, in display order.
SPECS: tuple[DomainSpec, ...] = (COST, SECURITY, PERFORMANCE, RELIABILITY, QUALITY)
_BY_NAME = {s.name: s for s in SPECS}
#: The one list of domain names (rules, models, alerts, CLI choices).
DOMAINS: tuple[str, ...] = tuple(_BY_NAME)
#: Domains with a streaming query.
STREAM_DOMAINS: tuple[str, ...] = tuple(s.name for s in SPECS if s.streams)


def spec(name: str) -> DomainSpec:
    """The spec of a domain by name.

    Raises:
        KeyError: unknown domain (the message lists the known ones).
    """
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown domain {name!r}; expected one of {', '.join(DOMAINS)}") from None
