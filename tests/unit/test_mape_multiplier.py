"""Regressors judged on MAPE forecast the point that minimises it, not the conditional median
(issue 12 item 8: the job duration forecaster lost to "mean of prior runs" on a held-out estate)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from health_monitor.batch.algorithms.supervised import mape_multiplier
from health_monitor.batch.base import regression_metrics
from health_monitor.batch.trainer import fit_model
from health_monitor.catalog import get_model


def _mape(y: np.ndarray, pred: np.ndarray) -> float:
    return regression_metrics(y, pred)["mape"]


def test_the_multiplier_is_the_mape_minimiser_below_the_median_under_log_normal_noise() -> None:
    rng = np.random.default_rng(0)
    median = rng.uniform(60, 3600, 20000)
    y = median * np.exp(0.6 * rng.standard_normal(len(median)))
    c = mape_multiplier(y, median)
    assert abs(c - np.exp(-0.6**2)) < 0.04  # the weighted median of y / pred: exp(-sigma^2)
    best = _mape(y, c * median)
    assert best < _mape(y, median) - 0.05
    assert best <= min(_mape(y, 0.9 * c * median), _mape(y, 1.1 * c * median))


def test_no_usable_rows_leave_the_forecast_alone() -> None:
    assert mape_multiplier(np.array([0.0, np.nan]), np.array([5.0, 3.0])) == 1.0


def test_the_duration_forecaster_learns_and_applies_its_multiplier_on_validation_rows() -> None:
    spec = get_model("job_duration_forecaster")
    rng = np.random.default_rng(1)
    n = 1500
    frame = pd.DataFrame({c: rng.gamma(2.0, 1.0, n) for c in spec.features})
    frame["workspace_id"], frame["job_id"], frame["run_id"] = "w", (np.arange(n) % 20).astype(str), np.arange(n).astype(str)
    frame["period_start_time"] = pd.Timestamp("2026-01-01") + pd.to_timedelta(np.arange(n), unit="h")
    typical = 300.0 * (1 + frame["avg_duration_s"].to_numpy())  # what the features can know
    frame["label_duration_s"] = typical * np.exp(0.7 * rng.standard_normal(n))  # the run's own draw
    frame["label_is_success"] = True
    params = {**spec.params, "n_estimators": 60}
    model, splits = fit_model(spec, frame, params)
    plain, _ = fit_model(spec, frame, {**params, "mape_multiplier": False})
    assert plain.multiplier_ == 1.0 and model.multiplier_ < 0.8
    test = splits["test"]
    assert model.evaluate(test)["mape"] < plain.evaluate(test)["mape"] - 0.05
    np.testing.assert_allclose(model.predict(test)["predicted_duration_min"].to_numpy(),
                               plain.predict(test)["predicted_duration_min"].to_numpy() * model.multiplier_)
