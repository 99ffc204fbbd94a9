"""Algorithms of the catalog, by the ``trainer`` key each catalog entry names."""

from __future__ import annotations

import importlib
from typing import Any

from health_monitor.batch.base import BatchModel
from health_monitor.catalog import ModelSpec

#: trainer key -> "module:Class" under this package (imported on first use).
ALGORITHMS: dict[str, str] = {
    "isolation_forest": "anomaly:IsolationForestModel",
    "schema_drift": "anomaly:SchemaDriftModel",
    "behavior_baseline": "anomaly:BehaviorBaselineModel",
    "xgb_classifier": "supervised:XGBClassifierModel",
    "xgb_regressor": "supervised:XGBRegressorModel",
    "logistic": "supervised:LogisticModel",
    "multilabel": "supervised:MultiLabelModel",
    "tag_recommender": "supervised:TagRecommenderModel",
    "budget_forecast": "timeseries:BudgetForecastModel",
    "quality_forecast": "timeseries:QualityForecastModel",
    "chargeback": "optimizers:ChargebackModel",
    "warehouse_optimizer": "optimizers:WarehouseOptimizerModel",
    "capacity_planner": "optimizers:CapacityPlannerModel",
    "pipeline_health": "scoring:PipelineHealthModel",
}


def algorithm_class(trainer: str) -> type[BatchModel]:
    """The class registered under ``trainer``."""
    if trainer not in ALGORITHMS:
        raise KeyError(f"no algorithm registered as {trainer!r}")
    module, cls = ALGORITHMS[trainer].split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


def build_model(spec: ModelSpec, params: dict[str, Any] | None = None) -> BatchModel:
    """An unfitted model for a catalog entry (``params`` override the entry's defaults)."""
    return algorithm_class(spec.trainer)(spec, params)
