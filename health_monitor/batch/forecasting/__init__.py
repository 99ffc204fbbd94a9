"""Forecasting engine for daily series (budget forecaster, ``health-monitor forecast``).

Public API::

    forecast_daily(history, horizon, quantiles=(0.1, 0.5, 0.9), holidays_country="US")
        -> DataFrame[ds, p10, p50, p90]
    forecast_total(history, start, end, ...) -> {"p10": .., "p50": .., "p90": ..}
    forecast_totals(history, [(start, end), ...], ...) -> [{"p10": ..}, ...]   (one fit)
    backtest(history, horizon=30, origins=6, ...) -> BacktestResult
    prepare_history(frame, timestamp_col="ds", value_col="y") -> daily Series (NaN gaps)

``history`` is a frame with ``ds`` and ``y`` columns (or a date-indexed series). See
:mod:`.engine` for how forecasts and their quantiles are made.
"""

from health_monitor.batch.forecasting.api import (
    DEFAULT_QUANTILES,
    forecast_daily,
    forecast_total,
    forecast_totals,
)
from health_monitor.batch.forecasting.backtest import BacktestResult, backtest, seasonal_naive_paths
from health_monitor.batch.forecasting.engine import PathForecast, simulate_paths
from health_monitor.batch.forecasting.history import prepare_history

__all__ = [
    "BacktestResult",
    "DEFAULT_QUANTILES",
    "backtest",
    "PathForecast",
    "forecast_daily",
    "forecast_total",
    "forecast_totals",
    "prepare_history",
    "seasonal_naive_paths",
    "simulate_paths",
]
