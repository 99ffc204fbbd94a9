"""Fixtures of the integration tier (Spark, Delta, MLflow, streams) beyond the root conftest's.

``trained_lake`` is the one place models are trained for the tests that score, report or
recommend: the shared model estate with exactly :data:`TRAINED_MODELS` trained once per session,
whatever order the modules run in (each module used to train what it found missing, so results
depended on which ran first).
"""

from __future__ import annotations

import pytest
from model_estate import featured_lake

from health_monitor.runtime import Lakehouse

#: Small, fast training parameters (the models only need to exist and score).
FAST = {"n_estimators": 12, "use_prophet": False, "max_iter": 60, "n_paths": 100, "horizon": 40}

#: What test_scoring, test_report and test_recommendations score: one model per kind of entity
#: (workspace-day, run, job, query, table) plus what the report and recommendations read.
TRAINED_MODELS = (
    "cost_anomaly_detector", "job_failure_predictor", "pipeline_health_scorer",
    "query_performance_forecaster", "data_freshness_predictor", "job_cost_optimizer",
    "security_threat_detector", "cluster_capacity_planner", "tag_recommender",
)


@pytest.fixture(scope="session")
def trained_lake(tmp_path_factory: pytest.TempPathFactory, spark) -> Lakehouse:  # noqa: ANN001
    """The shared model estate with :data:`TRAINED_MODELS` trained once (treat as read-only)."""
    from health_monitor.batch.trainer import train_model
    from health_monitor.catalog import get_model

    lake = featured_lake(tmp_path_factory, spark)
    for name in TRAINED_MODELS:
        train_model(lake, get_model(name), FAST)
    return lake
