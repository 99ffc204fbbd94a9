"""The model catalog: 23 well-formed entries that every consumer can rely on (no Spark needed)."""

from __future__ import annotations

import pytest

from health_monitor.batch.algorithms import ALGORITHMS, algorithm_class
from health_monitor.catalog import DOMAINS, ENDPOINTS, MODELS, endpoint_model, get_model, select
from health_monitor.errors import HealthMonitorError
from health_monitor.gold.schemas import GOLD_TABLES

SPEC_NAMES = {
    "cost_anomaly_detector", "budget_forecaster", "chargeback_optimizer", "job_cost_optimizer",
    "tag_recommender", "security_threat_detector", "data_exfiltration_detector",
    "privilege_escalation_detector", "user_behavior_baseline", "query_performance_forecaster",
    "warehouse_optimizer", "query_optimization_recommender", "cluster_capacity_planner",
    "dbr_migration_risk_scorer", "cache_hit_predictor", "job_failure_predictor", "job_duration_forecaster",
    "sla_breach_predictor", "retry_success_predictor", "pipeline_health_scorer", "data_freshness_predictor",
    "schema_drift_detector", "data_quality_degradation_forecaster",
}


def test_catalog_has_the_spec_models_per_domain() -> None:
    assert {m.name for m in MODELS} == SPEC_NAMES
    per_domain = {d: sum(m.domain == d for m in MODELS) for d in DOMAINS}
    assert per_domain == {"cost": 5, "security": 4, "performance": 6, "reliability": 5, "quality": 3}
    assert {m.endpoint for m in MODELS if m.endpoint} == set(ENDPOINTS)
    assert all(ENDPOINTS[m.endpoint] == m.name for m in MODELS if m.endpoint)


@pytest.mark.parametrize("spec", MODELS, ids=lambda m: m.name)
def test_entry_is_complete(spec) -> None:  # noqa: ANN001
    assert spec.domain in DOMAINS
    assert spec.features and len(set(spec.features)) == len(spec.features)
    assert spec.outputs and spec.key_metric and spec.baseline and spec.refresh
    assert set(spec.gold_tables) <= set(GOLD_TABLES)
    assert spec.trainer in ALGORITHMS
    assert algorithm_class(spec.trainer) is not None
    # Labels never come from the simulator's answers.
    assert "ground_truth" not in (spec.label or "") and "incident" not in (spec.label or "")
    if spec.problem_type in {"classification", "regression", "multilabel"}:
        assert spec.label
    if spec.target is not None:
        assert spec.meets_target(spec.target) is False  # a bound, not a reachable equality


def test_metric_direction_and_lookup() -> None:
    f1 = get_model("job_failure_predictor")
    mape = get_model("job_duration_forecaster")
    assert f1.beats(0.9, 0.8) and not f1.beats(0.7, 0.8) and f1.beats(0.1, None)
    assert mape.beats(0.1, 0.2) and not mape.beats(0.3, 0.2)
    assert mape.meets_target(0.1) and not mape.meets_target(0.2)
    assert [m.name for m in select(domain="quality")] == [
        "data_freshness_predictor", "schema_drift_detector", "data_quality_degradation_forecaster"]
    assert endpoint_model("/cost-anomaly").name == "cost_anomaly_detector"
    with pytest.raises(HealthMonitorError, match="unknown model"):
        get_model("nope")
    with pytest.raises(HealthMonitorError, match="unknown domain"):
        select(domain="finance")
