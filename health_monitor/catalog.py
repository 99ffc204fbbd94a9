"""The model catalog: the 23 models of the health monitor as data.

Every consumer (trainer, batch scorer, serving, ``models list``, bundle tasks, docs) reads these
entries instead of keeping its own list. Adding a model means adding an entry here plus its
algorithm in :mod:`health_monitor.batch.algorithms`.

Vocabulary:
    features: the pyfunc input columns, in order, all columns of ``feature_table``. Streaming
        scorers feed exactly these columns to the registered model.
    label: the column of ``feature_table`` the model learns (``None`` for unsupervised models).
        Labels come from what happened in Gold (a run's result_state, a query's duration), never
        from the simulator's ground truth.
    key_metric / target: the metric promotion and the model report compare; ``target`` is the
        spec's success criterion (F1 > 0.85, MAPE < 15%) where the spec gives one.

Why one module over 400 lines: it is data, 23 entries of about fifteen fields each; split by
domain it would be five lists where the point is one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from health_monitor.domains import DOMAINS
from health_monitor.errors import HealthMonitorError

#: The spec's nine serving endpoints (path -> model).
ENDPOINTS = {
    "cost-anomaly": "cost_anomaly_detector",
    "budget-forecast": "budget_forecaster",
    "security-threat": "security_threat_detector",
    "exfiltration-risk": "data_exfiltration_detector",
    "query-forecast": "query_performance_forecaster",
    "warehouse-recommend": "warehouse_optimizer",
    "job-failure-risk": "job_failure_predictor",
    "retry-success": "retry_success_predictor",
    "sla-breach-risk": "sla_breach_predictor",
}

#: Metrics where a lower value is better; every other metric is higher-is-better.
LOWER_IS_BETTER = {"mape", "mae", "rmse", "queue_p95_mae_s", "demand_mape", "wape"}


@dataclass(frozen=True)
class ModelSpec:
    """One model of the catalog.

    Attributes:
        name: registry name without prefix (``cost_anomaly_detector``).
        domain: one of :data:`DOMAINS`.
        problem_type: anomaly_detection | classification | multilabel | regression |
            forecasting | clustering | optimization | scoring.
        algorithm: the spec's algorithm family as implemented.
        trainer: key of the algorithm in :data:`health_monitor.batch.algorithms.ALGORITHMS`.
        gold_tables: Gold tables the features are computed from.
        feature_table: table in the ``features`` layer the model trains on.
        entity_keys: columns identifying the scored entity in ``feature_table``.
        time_key: the point-in-time column of ``feature_table`` (train/validation/test split).
        features: pyfunc input columns (numeric unless the algorithm says otherwise).
        label: label column of ``feature_table`` or None (unsupervised / self-supervised).
        label_definition: how the label is derived from Gold.
        outputs: columns the pyfunc returns.
        refresh: scoring and retraining cadence.
        endpoint: serving endpoint path, if the spec serves this model.
        key_metric: metric for promotion and the report.
        target: the spec's target for ``key_metric`` (None where the spec sets none).
        baseline: the naive baseline the report compares against.
        params: default hyper-parameters (tests override e.g. ``n_estimators``).
    """

    name: str
    domain: str
    problem_type: str
    algorithm: str
    trainer: str
    gold_tables: tuple[str, ...]
    feature_table: str
    entity_keys: tuple[str, ...]
    time_key: str
    features: tuple[str, ...]
    label: str | None
    label_definition: str
    outputs: tuple[str, ...]
    refresh: str
    endpoint: str | None
    key_metric: str
    target: float | None
    baseline: str
    params: dict = field(default_factory=dict, hash=False, compare=False)
    description: str = ""

    @property
    def higher_is_better(self) -> bool:
        """Direction of ``key_metric`` (F1, AUC: higher; MAPE, MAE: lower)."""
        return self.key_metric not in LOWER_IS_BETTER

    def beats(self, a: float | None, b: float | None) -> bool:
        """True when metric value ``a`` is strictly better than ``b`` (a missing ``b`` loses)."""
        if a is None:
            return False
        if b is None:
            return True
        return a > b if self.higher_is_better else a < b

    def meets_target(self, value: float | None) -> bool | None:
        """Whether ``value`` meets the spec's target (None when there is no target or value)."""
        if self.target is None or value is None:
            return None
        return value > self.target if self.higher_is_better else value < self.target

    @property
    def target_text(self) -> str:
        if self.target is None:
            return "-"
        return f"{'>' if self.higher_is_better else '<'} {self.target:g}"


# Feature column groups shared by several entries (kept in one place so two models that read
# the same table cannot drift apart).
#: The three models the streams blend in train on their stream's window frame (the window
#: tables, :mod:`health_monitor.features.windows`), never on a second definition of a feature;
#: tests/unit/test_window_features.py holds every name here to the window frame's columns.
#: Scale-free signals only: one model judges small and large workspaces, SKUs and users.
_COST_WINDOW = (
    "zscore_7d", "pct_change_7d", "ratio_7d", "untagged_cost_pct", "sku_count", "job_count",
    "hour_sin", "hour_cos", "dow_sin", "dow_cos", "is_weekend",
)
_JOB_RUN_HISTORY = (
    "prior_run_count", "historical_failure_rate", "recent_failure_rate_7d", "consecutive_failures",
    "hours_since_last_success", "hours_since_last_failure", "prev_run_failed",
    "avg_duration_s", "duration_std_s", "max_duration_s", "last_duration_s", "duration_trend",
    "avg_queue_s",
)
_JOB_CONFIG = (
    "task_count", "dependency_count", "timeout_seconds", "is_retry", "is_scheduled",
    "worker_count", "is_autoscaling", "max_workers", "worker_cores", "worker_memory_gb",
    "cluster_cores", "cluster_memory_gb", "dbr_major_version", "is_ml_runtime", "is_spot",
    "uses_job_cluster",
)
#: The job's prior successful runs (log scale: durations and costs have multiplicative noise).
_JOB_SUCCESS_HISTORY = ("success_avg_duration_s", "success_log_duration_avg", "success_log_duration_std",
                        "success_avg_run_cost", "success_log_run_cost_avg")
_CALENDAR = ("days_to_month_end", "is_holiday")
_JOB_UTILIZATION = ("hist_avg_cpu", "hist_peak_cpu", "hist_peak_mem", "hist_avg_io_wait")
_TIME = ("hour_of_day", "day_of_week", "is_business_hours", "is_weekend")
_USER_WINDOW_THREAT = (
    "events", "logins", "failed_logins", "failed_login_rate", "distinct_ips", "new_networks",
    "off_hours_events", "weekend_events", "admin_actions", "off_hours_admin_actions", "tables_touched",
    "sensitive_table_access", "first_pii_tables", "grants", "self_grants", "is_service_principal",
    "hour_sin", "hour_cos", "is_weekend",
    # The spec's threat features include export volume ("data_downloaded_bytes", "unusual_data_export"):
    # a bulk export is a threat the access signals alone scored at 0.51-0.53 (docs/model-report.md).
    "export_count",
)
_USER_WINDOW_EXFIL = (
    "export_gb", "export_count", "read_gb", "tables_touched", "sensitive_table_access", "first_pii_tables",
    "sensitive_reads_max_30d", "export_count_max_30d", "off_hours_events", "is_service_principal",
    "hour_sin", "hour_cos", "is_weekend",
)
#: A user's day as the behaviour baseline's autoencoder sees it.
_BEHAVIOR = (
    "event_count", "login_count", "unique_ip_count", "off_hours_rate", "is_weekend", "tables_accessed",
    "sensitive_table_access_count", "log_bytes_read", "query_count", "permission_change_count",
    "download_count", "job_run_count", "failed_login_count",
)
_USER_PRIVILEGE = (
    "grant_count", "permission_change_count", "permission_velocity", "admin_action_count",
    "group_change_count", "token_event_count", "off_hours_admin_count", "cross_workspace_count",
    "new_schema_access_count", "failed_access_count", "sensitive_table_access_count", "login_count",
    "unique_ip_count", "new_ip_count", "event_z_score",
)
_QUERY_PRE = (
    "query_text_length", "join_count", "table_count", "subquery_count", "has_aggregation",
    "has_window_function", "has_select_star", "has_where", "has_limit", "has_order_by",
    "is_select", "is_write_statement", "is_copy", "hash_prior_count", "hash_avg_duration_ms",
    "hash_max_duration_ms", "hash_avg_read_bytes", "hash_avg_spill_bytes", "hash_avg_shuffle_bytes",
    "hash_cache_hit_rate", "hash_avg_pruned_pct", "hours_since_same_hash", "user_avg_duration_ms",
    "warehouse_size_rank", "warehouse_max_clusters", "is_serverless_warehouse", "warehouse_load_1h",
    "hour_of_day", "day_of_week", "is_peak_hours",
)

SHARED_PARAMS = {"seed": 42}

MODELS: tuple[ModelSpec, ...] = (
    # ------------------------------------------------------------------ cost
    ModelSpec(
        name="cost_anomaly_detector", domain="cost", problem_type="anomaly_detection",
        algorithm="Isolation Forest", trainer="isolation_forest",
        gold_tables=("fact_usage", "commit_configurations"),
        feature_table="cost_window_features", entity_keys=("workspace_id", "entity_type", "entity_id"),
        time_key="window_start", features=_COST_WINDOW + ("routine_ratio", "unit_z", "history_days", "unit_cost_usd"),
        label=None,
        label_definition="none (unsupervised); validated on planted cost spikes, evaluated on ground truth",
        outputs=("anomaly_score", "is_anomaly", "deviation_pct"),
        refresh="scored by the cost stream every closed hour (blended champion), daily retraining",
        endpoint="cost-anomaly",
        key_metric="planted_auc", target=None, baseline="|z-score| vs 7-day baseline",
        # Scored on spend against the key's routine at this hour and a job's run against its usual
        # runs (a nightly run is 5x the 7-day hourly mean every night: zscore_7d / pct_change_7d
        # only describe the window); a key-day is flagged when two of its hours are (min_windows).
        params={"n_estimators": 200, "contamination": 0.03, "baseline_col": "zscore_7d",
                "score_features": ("routine_ratio", "unit_z", "untagged_cost_pct", "sku_count", "job_count",
                                   "hour_sin", "hour_cos", "dow_sin", "dow_cos", "is_weekend"),
                "min_windows": 2,
                # A key younger than a day has no history to be judged against: it flags when its
                # unit so far costs more than 90% of established keys' units and is mostly untagged.
                "new_key": {"age_col": "history_days", "max_age_days": 1.0, "cost_col": "unit_cost_usd",
                            "established_days": 7.0, "quantile": 0.9, "untagged_col": "untagged_cost_pct",
                            "min_untagged_pct": 50.0, "floor": 0.7}},
        description="Unusual hourly spend per workspace, workspace x SKU, job, warehouse and cluster (the cost "
                    "stream's windows).",
    ),
    ModelSpec(
        name="budget_forecaster", domain="cost", problem_type="forecasting",
        algorithm="Prophet ensemble (forecasting engine) per workspace", trainer="budget_forecast",
        gold_tables=("fact_usage", "dim_workspace", "dim_date", "commit_configurations"),
        feature_table="budget_monthly_features", entity_keys=("workspace_id",), time_key="as_of_date",
        features=("workspace_id", "as_of_date", "mtd_cost", "days_elapsed", "days_in_month",
                  "cost_7d_avg", "prev_month_cost"),
        label="label_month_total_cost",
        label_definition="actual list cost of the as-of month (complete months only)",
        outputs=("predicted_monthly_cost", "predicted_monthly_cost_p10", "predicted_monthly_cost_p90"),
        refresh="daily", endpoint="budget-forecast",
        key_metric="mape", target=0.15, baseline="month-to-date + 7-day mean x days remaining",
        params={"horizon": 75},
        description="End-of-month cost with P10/P50/P90 for budget and commit tracking.",
    ),
    ModelSpec(
        name="chargeback_optimizer", domain="cost", problem_type="clustering",
        algorithm="K-Means + Shapley attribution (peak-capacity game)", trainer="chargeback",
        gold_tables=("fact_usage", "fact_job_run_timeline", "dim_job", "dim_workspace"),
        feature_table="entity_cost_features", entity_keys=("workspace_id", "entity_type", "entity_id"),
        time_key="week_start",
        features=("workspace_id", "log_cost", "jobs_cost_pct", "sql_cost_pct", "all_purpose_cost_pct",
                  "dlt_cost_pct", "serverless_cost_pct", "usage_hours", "run_count", "active_days"),
        label="tag_team",
        label_definition="team tag of tagged usage (masked on the test split to score the allocation)",
        outputs=("cost_cluster", "allocated_team", "allocation_weight", "attribution_confidence"),
        refresh="weekly", endpoint=None,
        key_metric="allocation_accuracy", target=None, baseline="workspace team shares",
        params={"n_clusters": 6},
        description="Allocates untagged and shared cost to teams.",
    ),
    ModelSpec(
        name="job_cost_optimizer", domain="cost", problem_type="regression",
        algorithm="XGBoost regression + right-sizing rules", trainer="xgb_regressor",
        gold_tables=("fact_usage", "fact_job_run_timeline", "fact_node_timeline", "dim_cluster"),
        feature_table="job_run_features", entity_keys=("workspace_id", "job_id", "run_id"),
        time_key="period_start_time",
        features=("hist_avg_run_cost", "hist_std_run_cost", "last_run_cost", "avg_duration_s",
                  "last_duration_s") + _JOB_CONFIG + _JOB_UTILIZATION + ("hour_of_day", "day_of_week")
        + _JOB_SUCCESS_HISTORY + _CALENDAR,
        label="label_run_cost",
        label_definition="list cost billed to a successful run (fact_usage by job_run_id); a failed run "
        "stops early, so its cost is not what right-sizing plans for",
        outputs=("predicted_cost", "recommendation", "savings_estimate"),
        refresh="per job run", endpoint=None,
        key_metric="mape", target=0.15, baseline="job's mean cost of prior successful runs",
        params={"n_estimators": 300, "max_depth": 6, "log_target": True, "baseline_col": "success_avg_run_cost",
                "optimizer": "right_size", "row_filter": "label_is_success"},
        description="Predicted run cost and right-sizing savings.",
    ),
    ModelSpec(
        name="tag_recommender", domain="cost", problem_type="classification",
        algorithm="Random Forest on job-name tokens + TF-IDF character n-grams", trainer="tag_recommender",
        gold_tables=("fact_usage", "fact_job_run_timeline", "dim_job"),
        feature_table="job_features", entity_keys=("workspace_id", "job_id"), time_key="as_of_date",
        features=("job_name", "workspace_id", "primary_sku", "schedule_hour", "run_count_30d",
                  "avg_duration_s_30d"),
        label="tag_team", label_definition="team tag on the job (untagged jobs are scored, not trained on)",
        outputs=("recommended_tag", "confidence"),
        refresh="weekly", endpoint=None,
        key_metric="f1", target=0.85, baseline="workspace's most frequent team",
        params={"n_estimators": 200, "split": "entity"},
        description="Team tag for untagged jobs.",
    ),
    # ------------------------------------------------------------------ security
    ModelSpec(
        name="security_threat_detector", domain="security", problem_type="anomaly_detection",
        algorithm="Isolation Forest + rule-based threat classification", trainer="isolation_forest",
        gold_tables=("fact_table_lineage", "fact_audit_events", "fact_query_history"),
        feature_table="user_window_features", entity_keys=("user_id",), time_key="window_start",
        features=_USER_WINDOW_THREAT, label=None,
        label_definition="none (unsupervised); validated on planted anomalies, evaluated on ground truth",
        outputs=("threat_score", "is_threat", "threat_type", "alert_priority"),
        refresh="scored by the security stream every closed hour (blended champion), daily retraining",
        endpoint="security-threat",
        key_metric="planted_auc", target=None, baseline="audit events in the hour",
        # A self-grant is a privilege escalation by definition, not by rarity: it flags by itself.
        params={"n_estimators": 200, "contamination": 0.02, "baseline_col": "events",
                "rule_floors": {"self_grants": 0.7}},
        description="Suspicious access per user-hour (the security stream's windows).",
    ),
    ModelSpec(
        name="data_exfiltration_detector", domain="security", problem_type="anomaly_detection",
        algorithm="Isolation Forest + threshold rules", trainer="isolation_forest",
        gold_tables=("fact_table_lineage", "fact_query_history", "fact_audit_events"),
        feature_table="user_window_features", entity_keys=("user_id",), time_key="window_start",
        features=_USER_WINDOW_EXFIL, label=None,
        label_definition="none (unsupervised); validated on planted anomalies, evaluated on ground truth",
        outputs=("exfiltration_risk", "is_exfiltration", "volume_anomaly"),
        refresh="scored by the security stream every closed hour (blended champion)",
        endpoint="exfiltration-risk",
        key_metric="planted_auc", target=None, baseline="GB read in the hour",
        params={"n_estimators": 200, "contamination": 0.02, "baseline_col": "read_gb", "volume_gb": 1.0},
        description="Unusual data extraction per user-hour (the security stream's windows).",
    ),
    ModelSpec(
        name="privilege_escalation_detector", domain="security", problem_type="classification",
        algorithm="XGBoost classifier", trainer="xgb_classifier",
        gold_tables=("fact_audit_events", "fact_table_lineage"),
        feature_table="user_daily_features", entity_keys=("user_id",), time_key="event_date",
        features=_USER_PRIVILEGE, label="label_escalation",
        label_definition="the user-day holds a self-grant (actor == grantee) or a denied permission change "
        "in the audit log; those two columns are not features",
        outputs=("escalation_risk", "suspicious_action"),
        refresh="real-time", endpoint=None,
        key_metric="f1", target=0.85, baseline="any permission change that day",
        params={"n_estimators": 200, "max_depth": 4, "baseline_col": "permission_change_count",
                "baseline_rule": "gt0"},
        description="Privilege abuse or escalation attempts.",
    ),
    ModelSpec(
        name="user_behavior_baseline", domain="security", problem_type="clustering",
        algorithm="DBSCAN clustering + autoencoder (MLP) deviation", trainer="behavior_baseline",
        gold_tables=("fact_table_lineage", "fact_query_history", "fact_job_run_timeline", "fact_audit_events"),
        feature_table="user_daily_features", entity_keys=("user_id",), time_key="event_date",
        features=_BEHAVIOR + ("self_grant_count",),
        label=None, label_definition="none (self-supervised reconstruction)",
        outputs=("user_cluster", "deviation_score"),
        refresh="weekly baseline update", endpoint=None,
        key_metric="planted_auc", target=None, baseline="distance to the user's own mean (z)",
        # The autoencoder learns the behaviour columns; a self-grant flags the day by itself.
        params={"eps": 0.9, "min_samples": 3, "hidden": 6, "max_iter": 300, "score_features": _BEHAVIOR,
                "extremeness": True, "rule_floors": {"self_grant_count": 0.7}},
        description="Peer group and deviation from the learned normal behaviour.",
    ),
    # ------------------------------------------------------------------ performance
    ModelSpec(
        name="query_performance_forecaster", domain="performance", problem_type="regression",
        algorithm="XGBoost regression on query-text and history features", trainer="xgb_regressor",
        gold_tables=("fact_query_history", "dim_warehouse"),
        feature_table="query_features", entity_keys=("statement_id",), time_key="start_time",
        features=_QUERY_PRE + ("hash_exec_avg_duration_ms", "hash_exec_log_duration_avg",
                               "hash_exec_log_duration_std"),
        label="label_duration_ms",
        label_definition="total_duration_ms of the finished statement (executed: not served from the cache)",
        outputs=("predicted_duration_s", "predicted_duration_p90_s"),
        refresh="real-time prediction, daily retraining", endpoint="query-forecast",
        key_metric="mape", target=0.15, baseline="mean duration of prior executed runs of the same query text",
        params={"n_estimators": 300, "max_depth": 7, "log_target": True, "baseline_col": "hash_exec_avg_duration_ms",
                "output_scale": 0.001, "row_filter": "is_executed"},
        description="Query duration before it runs.",
    ),
    ModelSpec(
        name="warehouse_optimizer", domain="performance", problem_type="optimization",
        algorithm="queue-time model (XGBoost) + constrained size search", trainer="warehouse_optimizer",
        gold_tables=("fact_query_history", "fact_usage", "dim_warehouse"),
        feature_table="warehouse_hourly_features", entity_keys=("warehouse_id",), time_key="hour_start",
        features=("query_count", "concurrent_query_avg", "log_read_bytes", "spill_rate",
                  "high_data_volume_rate", "warehouse_size_rank", "max_clusters", "hour_of_day",
                  "is_weekend", "query_count_same_hour_7d_avg"),
        label="label_queue_p95_s", label_definition="p95 queue wait (waiting for compute + at capacity) in the hour",
        outputs=("recommended_size", "recommended_size_rank", "predicted_queue_p95_s", "cost_impact_pct"),
        refresh="hourly predictions", endpoint="warehouse-recommend",
        key_metric="queue_p95_mae_s", target=None, baseline="warehouse's mean queue p95",
        params={"n_estimators": 200, "max_depth": 5, "queue_target_s": 10.0},
        description="Smallest warehouse size that keeps queueing under the target.",
    ),
    ModelSpec(
        name="query_optimization_recommender", domain="performance", problem_type="multilabel",
        algorithm="multi-label classifier (one XGBoost per label)", trainer="multilabel",
        gold_tables=("fact_query_history",),
        feature_table="query_features", entity_keys=("statement_id",), time_key="start_time",
        features=_QUERY_PRE + ("hash_spill_rate", "hash_poor_pruning_rate", "hash_shuffle_rate",
                               "hash_large_scan_rate"),
        label="label_spill,label_poor_pruning,label_excessive_shuffle,label_large_scan",
        label_definition="what the finished statement actually did: spilled, read > 80% of files "
        "(missing partition filter), shuffled more than it read, read > 10 GB",
        outputs=("recommendations", "p_spill", "p_poor_pruning", "p_excessive_shuffle", "p_large_scan"),
        refresh="per query", endpoint=None,
        key_metric="f1", target=0.85, baseline="the same query text's past outcome rate > 0.5",
        params={"n_estimators": 150, "max_depth": 5,
                "baseline_cols": ["hash_spill_rate", "hash_poor_pruning_rate", "hash_shuffle_rate",
                                  "hash_large_scan_rate"]},
        description="Which optimizations a statement needs before it runs.",
    ),
    ModelSpec(
        name="cluster_capacity_planner", domain="performance", problem_type="optimization",
        algorithm="peak-demand regression + constrained worker-count search", trainer="capacity_planner",
        gold_tables=("fact_node_timeline", "fact_usage", "dim_cluster"),
        feature_table="cluster_daily_features", entity_keys=("cluster_id",), time_key="node_date",
        features=("peak_cores_used", "avg_cores_used", "peak_cores_7d_max", "avg_cores_7d_avg",
                  "peak_cpu", "avg_cpu", "peak_mem", "worker_count", "worker_cores", "is_autoscaling",
                  "active_hours", "daily_cost"),
        label="label_next_7d_peak_cores",
        label_definition="peak cores in use (cpu% x cores x nodes) over the next 7 days",
        outputs=("recommended_workers", "expected_peak_utilization", "predicted_peak_cores", "cost_savings"),
        refresh="weekly recommendations", endpoint=None,
        key_metric="mape", target=0.15, baseline="last 7-day peak (last value)",
        params={"max_utilization": 0.8},
        description="Right-sized worker count per cluster.",
    ),
    ModelSpec(
        name="dbr_migration_risk_scorer", domain="performance", problem_type="classification",
        algorithm="XGBoost classifier", trainer="xgb_classifier",
        gold_tables=("fact_job_run_timeline", "dim_cluster", "dim_job"),
        feature_table="job_run_features", entity_keys=("workspace_id", "job_id", "run_id"),
        time_key="period_start_time",
        features=("dbr_major_version", "prev_dbr_major_version", "dbr_changed", "dbr_major_jump",
                  "runs_since_dbr_change", "is_ml_runtime", "historical_failure_rate", "prior_run_count",
                  "task_count", "dependency_count", "table_count_30d", "worker_count"),
        label="label_is_failure",
        label_definition="the run failed (result_state ERROR, FAILED or TIMED_OUT)",
        outputs=("migration_risk_score", "breaking_change_probability"),
        refresh="per migration assessment", endpoint=None,
        key_metric="f1", target=0.85, baseline="historical failure rate > 0.5",
        params={"n_estimators": 200, "max_depth": 4, "baseline_col": "historical_failure_rate"},
        description="Failure risk of a job after a runtime change.",
    ),
    ModelSpec(
        name="cache_hit_predictor", domain="performance", problem_type="classification",
        algorithm="logistic regression", trainer="logistic",
        gold_tables=("fact_query_history",),
        feature_table="query_features", entity_keys=("statement_id",), time_key="start_time",
        features=("hash_prior_count", "hash_cache_hit_rate", "hours_since_same_hash", "is_select",
                  "is_write_statement", "query_text_length", "has_aggregation", "warehouse_load_1h",
                  "hour_of_day", "is_peak_hours", "is_serverless_warehouse"),
        label="label_cache_hit", label_definition="from_result_cache of the statement",
        outputs=("cache_hit_probability", "freshness_score"),
        refresh="per query", endpoint=None,
        key_metric="f1", target=0.85, baseline="same query text seen in the previous 24 h",
        params={"C": 1.0, "baseline_col": "hours_since_same_hash", "baseline_rule": "lt24",
                "row_filter": "is_finished"},
        description="Whether a statement will be served from the result cache.",
    ),
    # ------------------------------------------------------------------ reliability
    ModelSpec(
        name="job_failure_predictor", domain="reliability", problem_type="classification",
        algorithm="XGBoost classifier", trainer="xgb_classifier",
        gold_tables=("fact_job_run_timeline", "dim_job", "dim_cluster", "fact_node_timeline"),
        feature_table="job_run_features", entity_keys=("workspace_id", "job_id", "run_id"),
        time_key="period_start_time",
        features=_JOB_RUN_HISTORY + _JOB_CONFIG + _JOB_UTILIZATION + _TIME + ("dbr_changed",) + _CALENDAR,
        label="label_is_failure",
        label_definition="result_state in ERROR, FAILED, TIMED_OUT (SUCCEEDED is success)",
        outputs=("failure_probability", "risk_level"),
        refresh="pre-run prediction, daily retraining", endpoint="job-failure-risk",
        key_metric="f1", target=0.85, baseline="historical failure rate > 0.5",
        params={"n_estimators": 300, "max_depth": 5, "baseline_col": "historical_failure_rate"},
        description="Failure probability before a run starts.",
    ),
    ModelSpec(
        name="job_duration_forecaster", domain="reliability", problem_type="regression",
        algorithm="XGBoost regression", trainer="xgb_regressor",
        gold_tables=("fact_job_run_timeline", "dim_job"),
        feature_table="job_run_features", entity_keys=("workspace_id", "job_id", "run_id"),
        time_key="period_start_time",
        features=_JOB_RUN_HISTORY + _JOB_CONFIG + _TIME + _JOB_SUCCESS_HISTORY + _CALENDAR,
        label="label_duration_s",
        label_definition="period_end_time - period_start_time of a successful run (a failed run stops "
        "early: its length is not the duration being planned for)",
        outputs=("predicted_duration_min", "predicted_duration_p90_min"),
        refresh="per job run", endpoint=None,
        key_metric="mape", target=0.15, baseline="mean duration of the job's prior successful runs",
        params={"n_estimators": 300, "max_depth": 6, "log_target": True, "baseline_col": "success_avg_duration_s",
                "output_scale": 1 / 60, "row_filter": "label_is_success"},
        description="Run duration for scheduling and SLA estimates.",
    ),
    ModelSpec(
        name="sla_breach_predictor", domain="reliability", problem_type="classification",
        algorithm="XGBoost classifier", trainer="xgb_classifier",
        gold_tables=("fact_job_run_timeline", "sla_definitions"),
        feature_table="job_run_features", entity_keys=("workspace_id", "job_id", "run_id"),
        time_key="period_start_time",
        features=("sla_max_duration_s", "sla_buffer_ratio", "historical_sla_compliance",
                  "recent_sla_breaches_7d", "prev_run_breached") + _JOB_RUN_HISTORY + _JOB_CONFIG + _TIME + _JOB_SUCCESS_HISTORY
        + _CALENDAR,
        label="label_sla_breached",
        label_definition="the run exceeded its MAX_DURATION SLA (jobs with an SLA only)",
        outputs=("breach_probability", "expected_duration_s"),
        refresh="per job run", endpoint="sla-breach-risk",
        key_metric="f1", target=0.85, baseline="job breached its SLA on its previous run",
        params={"n_estimators": 200, "max_depth": 4, "baseline_col": "prev_run_breached",
                "baseline_rule": "gt0", "row_filter": "has_sla"},
        description="SLA breach probability at run start.",
    ),
    ModelSpec(
        name="retry_success_predictor", domain="reliability", problem_type="classification",
        algorithm="XGBoost classifier", trainer="xgb_classifier",
        gold_tables=("fact_job_run_timeline",),
        feature_table="job_run_features", entity_keys=("workspace_id", "job_id", "run_id"),
        time_key="period_start_time",
        features=("prev_term_transient", "prev_term_user_error", "prev_term_resource", "retry_index",
                  "hours_since_prev_failure", "historical_retry_success_rate", "historical_failure_rate",
                  "consecutive_failures", "hist_peak_mem", "hist_avg_cpu", "worker_count", "is_spot",
                  "avg_duration_s", "is_retry", "prev_code_retry_success_rate"),
        label="label_is_success",
        label_definition="the run that follows a failed run of the same job SUCCEEDED (retry rows only)",
        outputs=("retry_success_probability", "recommended_action"),
        refresh="on failure", endpoint="retry-success",
        key_metric="f1", target=0.85, baseline="historical retry success rate > 0.5",
        params={"n_estimators": 200, "max_depth": 4, "baseline_col": "historical_retry_success_rate",
                "row_filter": "is_after_failure"},
        description="Whether retrying a failed run will succeed.",
    ),
    ModelSpec(
        name="pipeline_health_scorer", domain="reliability", problem_type="scoring",
        algorithm="weighted ensemble of five component scores", trainer="pipeline_health",
        gold_tables=("fact_job_run_timeline", "dim_job", "sla_definitions"),
        feature_table="job_features", entity_keys=("workspace_id", "job_id"), time_key="as_of_date",
        features=("success_rate_7d", "duration_cv_7d", "sla_compliance_7d", "error_type_count_30d",
                  "recovery_hours_30d", "run_count_7d"),
        label="label_next_7d_success_rate",
        label_definition="share of the job's runs in the next 7 days that SUCCEEDED (scoring quality only)",
        outputs=("health_score", "success_rate_score", "duration_stability_score", "sla_compliance_score",
                 "error_diversity_score", "recovery_speed_score"),
        refresh="daily", endpoint=None,
        key_metric="spearman", target=None, baseline="7-day success rate alone",
        params={"weights": {"success_rate_score": 0.30, "duration_stability_score": 0.20,
                            "sla_compliance_score": 0.25, "error_diversity_score": 0.10,
                            "recovery_speed_score": 0.15}},
        description="A 0-100 health score per pipeline.",
    ),
    # ------------------------------------------------------------------ quality
    ModelSpec(
        name="data_freshness_predictor", domain="quality", problem_type="regression",
        algorithm="gradient-boosted regression on arrival history", trainer="xgb_regressor",
        gold_tables=("fact_data_quality_monitoring_table_results", "fact_job_run_timeline", "fact_table_lineage"),
        feature_table="table_quality_features", entity_keys=("table_id",), time_key="event_date",
        features=("lag_7d_avg_h", "lag_7d_std_h", "lag_prev_h", "typical_arrival_hour", "day_of_week",
                  "is_weekend", "upstream_job_count", "upstream_failures_prev_day", "upstream_avg_end_hour_7d",
                  "num_downstream_tables"),
        label="label_freshness_lag_h",
        label_definition="hours between the check and the table's last commit (commit_freshness.last_value)",
        outputs=("predicted_lag_h", "predicted_lag_p90_h"),
        refresh="hourly", endpoint=None,
        key_metric="mape", target=0.15, baseline="table's mean lag over the previous 7 days",
        params={"n_estimators": 200, "max_depth": 4, "log_target": False, "baseline_col": "lag_7d_avg_h"},
        description="When a table's data will arrive.",
    ),
    ModelSpec(
        name="schema_drift_detector", domain="quality", problem_type="anomaly_detection",
        algorithm="breaking-change rules + Isolation Forest", trainer="schema_drift",
        gold_tables=("fact_table_schema_history", "fact_table_lineage"),
        feature_table="schema_change_features", entity_keys=("table_full_name",), time_key="snapshot_date",
        features=("columns_added", "columns_removed", "columns_renamed", "type_changes", "nullability_changes",
                  "column_count", "column_count_change_pct", "downstream_table_count", "downstream_job_count",
                  "days_since_last_change", "changes_30d"),
        label=None,
        label_definition="none (rules + unsupervised); validated on planted changes, evaluated on ground truth",
        outputs=("drift_risk_score", "breaking_change_flag"),
        refresh="on schema change", endpoint=None,
        key_metric="planted_auc", target=None, baseline="any column change",
        params={"n_estimators": 100, "contamination": 0.02, "baseline_col": "change_count"},
        description="Unexpected or breaking schema changes.",
    ),
    ModelSpec(
        name="data_quality_degradation_forecaster", domain="quality", problem_type="forecasting",
        algorithm="forecasting engine per table (Prophet ensemble), EWMA fallback for short series",
        trainer="quality_forecast",
        gold_tables=("fact_data_quality_monitoring_table_results",),
        feature_table="table_quality_features", entity_keys=("table_id",), time_key="event_date",
        features=("table_id", "event_date", "quality_score_7d_avg", "quality_score_prev"),
        label="label_quality_score",
        label_definition="share of the day's checks (status, freshness, completeness) that were healthy",
        outputs=("predicted_quality_score", "degradation_probability"),
        refresh="daily", endpoint=None,
        key_metric="mae", target=None, baseline="previous day's score (last value)",
        params={"threshold": 0.8, "max_engine_series": 40},
        description="Quality score ahead and the chance it drops below the threshold.",
    ),
)

CATALOG: dict[str, ModelSpec] = {m.name: m for m in MODELS}


def get_model(name: str) -> ModelSpec:
    """The catalog entry called ``name``, or a one-line error listing the names."""
    if name not in CATALOG:
        raise HealthMonitorError(f"unknown model {name!r}; known: {', '.join(CATALOG)}")
    return CATALOG[name]


def select(names: list[str] | None = None, domain: str | None = None) -> list[ModelSpec]:
    """Entries by name and/or domain (all of them when neither is given), in catalog order."""
    if domain is not None and domain not in DOMAINS:
        raise HealthMonitorError(f"unknown domain {domain!r}; known: {', '.join(DOMAINS)}")
    wanted = [get_model(n) for n in names] if names else list(MODELS)
    return [m for m in wanted if domain is None or m.domain == domain]


def endpoint_model(endpoint: str) -> ModelSpec:
    """The model served at ``endpoint`` (``/cost-anomaly`` or ``cost-anomaly``)."""
    key = endpoint.strip("/")
    if key not in ENDPOINTS:
        raise HealthMonitorError(f"unknown endpoint {endpoint!r}; known: {', '.join(ENDPOINTS)}")
    return CATALOG[ENDPOINTS[key]]
