"""Rolling-origin backtests of the engine against a weekly seasonal-naive forecast.

Metrics (all on days whose actual value is known):

- ``daily_mape``: mean |actual - p50| / |actual| over days with a non-zero actual, in percent.
  Days with actual = 0 are skipped (MAPE is undefined there) and counted in ``zero_days``.
- ``daily_wape``: sum |actual - p50| / sum |actual|, in percent: defined with zeros, and the
  honest headline for intermittent series.
- ``daily_smape``: mean 2|a - f| / (|a| + |f|), in percent (0 when both are 0).
- ``total_mape``: |actual total - P50 total| / |actual total| of each origin's horizon window
  (30 days by default), in percent; origins with a zero actual total are skipped.
- ``daily_coverage`` / ``total_coverage``: share of actual days / window totals inside P10-P90
  (the target is 0.80).

The seasonal-naive baseline forecasts each day with the same weekday of the last observed week;
its P10/P90 come from the standard bootstrap of its own week-over-week errors, simulated
recursively so that its totals are consistent with its daily paths.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from health_monitor.batch.forecasting import models as M
from health_monitor.batch.forecasting.engine import PathForecast, simulate_paths
from health_monitor.batch.forecasting.history import prepare_history
from health_monitor.errors import HealthMonitorError

METHODS = ("ours", "seasonal_naive")
METRICS = ("daily_mape", "daily_wape", "daily_smape", "total_mape", "daily_coverage", "total_coverage")


@dataclass
class BacktestResult:
    """Per-origin rows and a per-method summary of a rolling-origin backtest."""

    horizon: int
    origins: list[pd.Timestamp]
    #: one row per (origin, method): the metrics of that window plus actual and forecast totals.
    per_origin: pd.DataFrame
    #: one row per method (index ``ours``, ``seasonal_naive``), columns :data:`METRICS` + counts.
    summary: pd.DataFrame

    def beats_seasonal_naive(self) -> bool:
        """Ours has the lower daily WAPE and the lower 30-day-total MAPE (NaN counts as a loss)."""
        s = self.summary
        return bool(s.loc["ours", "daily_wape"] < s.loc["seasonal_naive", "daily_wape"]
                    and s.loc["ours", "total_mape"] <= s.loc["seasonal_naive", "total_mape"])

    def table(self) -> str:
        """A plain-text table of the summary, for the CLI."""
        head = (f"{'method':<16}{'daily MAPE%':>12}{'daily WAPE%':>12}{'daily sMAPE%':>13}"
                f"{f'{self.horizon}d-total MAPE%':>18}{'P10-P90 daily':>15}{'P10-P90 total':>15}")
        lines = [head, "-" * len(head)]
        for method, row in self.summary.iterrows():
            lines.append(
                f"{method:<16}{_fmt(row.daily_mape):>12}{_fmt(row.daily_wape):>12}{_fmt(row.daily_smape):>13}"
                f"{_fmt(row.total_mape):>18}{_pct(row.daily_coverage):>15}{_pct(row.total_coverage):>15}")
        lines.append(f"{len(self.origins)} origins from {self.origins[-1].date()} to {self.origins[0].date()}, "
                     f"{self.horizon}-day horizon; target P10-P90 coverage 80%; "
                     f"{int(self.summary.loc['ours', 'zero_days'])} zero-valued day(s) left out of MAPE")
        return "\n".join(lines)


def _fmt(v: float) -> str:
    return "n/a" if not np.isfinite(v) else f"{v:.1f}"


def _pct(v: float) -> str:
    return "n/a" if not np.isfinite(v) else f"{100 * v:.0f}%"


def backtest(history: pd.DataFrame | pd.Series, horizon: int = 30, origins: int = 6, step: int | None = None,
             holidays_country: str | None = "US", *, use_prophet: bool = True, seed: int = 0) -> BacktestResult:
    """Rolling-origin backtest of the engine and of seasonal naive on one daily series.

    Args:
        history: same input as :func:`forecast_daily`.
        horizon: days forecast from each origin (also the window of the total).
        origins: number of forecast origins, the last one ``horizon`` days before the end.
        step: days between origins (default: 14, so 6 origins span about 3 months).
        holidays_country: passed to the engine.

    Raises:
        HealthMonitorError: when the history is too short for even one origin.
    """
    series = prepare_history(history)
    y = series.to_numpy(dtype=float)
    n = len(y)
    step = int(step or 14)
    if horizon < 1 or origins < 1 or step < 1:
        raise HealthMonitorError("horizon, origins and step must be positive")
    min_train = 14
    cuts = [n - horizon - step * k for k in range(origins)]
    cuts = [c for c in cuts if c >= min_train]
    if not cuts:
        raise HealthMonitorError(
            f"history has {n} days: a {horizon}-day backtest needs at least {horizon + min_train} "
            f"(try a shorter --horizon)")
    rows = []
    for c in cuts:
        train = series.iloc[:c]
        actual = y[c:c + horizon]
        ours = simulate_paths(train, horizon, holidays_country, use_prophet=use_prophet, seed=seed)
        naive = seasonal_naive_paths(train, horizon, seed=seed)
        for method, fc, point in (("ours", ours, None), ("seasonal_naive", naive, naive.point)):
            rows.append({"origin": series.index[c - 1], "method": method, **_metrics(actual, fc, point)})
    per_origin = pd.DataFrame(rows)
    summary = _summarise(per_origin)
    return BacktestResult(horizon, [series.index[c - 1] for c in cuts], per_origin, summary)


def seasonal_naive_paths(series: pd.Series, horizon: int, n_paths: int = 2000, seed: int = 0) -> PathForecast:
    """Weekly seasonal naive with bootstrapped week-over-week errors (Hyndman & Athanasopoulos, 5.5)."""
    y = series.to_numpy(dtype=float)
    dates = pd.DatetimeIndex(series.index)
    train = M.Train(y, dates, multiplicative=False)
    point = M.seasonal_naive(train, horizon)
    diffs = (y[7:] - y[:-7]) if len(y) > 7 else np.array([])
    diffs = diffs[np.isfinite(diffs)]
    if diffs.size == 0:
        v = y[np.isfinite(y)]
        diffs = v - v.mean() if v.size > 1 else np.zeros(1)
    rng = np.random.default_rng(seed)
    paths = np.empty((n_paths, horizon))
    last_week = np.repeat(M.seasonal_naive(train, 7)[None, :], n_paths, axis=0)
    for j in range(horizon):
        base = last_week[:, j % 7] if j < 7 else paths[:, j - 7]
        paths[:, j] = base + rng.choice(diffs, size=n_paths)
    if np.nanmin(y) >= 0:
        paths = np.maximum(paths, 0.0)
    return PathForecast(train.future_dates(horizon), point, paths, {"seasonal_naive": 1.0}, "seasonal_naive")


def _metrics(actual: np.ndarray, fc: PathForecast, point: np.ndarray | None) -> dict[str, float]:
    q = fc.daily_quantiles((0.1, 0.5, 0.9))
    p50 = q[:, 1] if point is None else point
    ok = np.isfinite(actual)
    a, f = actual[ok], p50[ok]
    nz = a != 0
    abs_err = np.abs(a - f)
    denom = np.abs(a) + np.abs(f)
    smape = np.where(denom > 0, 2 * abs_err / np.where(denom > 0, denom, 1), 0.0)
    tq = fc.total_quantiles((0.1, 0.5, 0.9), mask=ok)
    t_act = float(a.sum())
    t_fc = float(f.sum()) if point is not None else float(tq[1])
    inside = (a >= q[ok, 0]) & (a <= q[ok, 2])
    return {
        "days": int(ok.sum()),
        "zero_days": int((~nz).sum()),
        "abs_err_sum": float(abs_err.sum()),
        "abs_actual_sum": float(np.abs(a).sum()),
        "ape_sum": float((abs_err[nz] / np.abs(a[nz])).sum()),
        "smape_sum": float(smape.sum()),
        "covered_days": int(inside.sum()),
        "daily_mape": float(100 * np.mean(abs_err[nz] / np.abs(a[nz]))) if nz.any() else np.nan,
        "daily_wape": float(100 * abs_err.sum() / np.abs(a).sum()) if np.abs(a).sum() > 0 else np.nan,
        "daily_smape": float(100 * smape.mean()) if smape.size else np.nan,
        "actual_total": t_act,
        "total_p10": float(tq[0]),
        "total_p50": t_fc,
        "total_p90": float(tq[2]),
        "total_mape": float(100 * abs(t_fc - t_act) / abs(t_act)) if t_act != 0 else np.nan,
        "daily_coverage": float(inside.mean()) if inside.size else np.nan,
        "total_coverage": float(tq[0] <= t_act <= tq[2]) if ok.any() else np.nan,
    }


def _summarise(per_origin: pd.DataFrame) -> pd.DataFrame:
    out = {}
    for method, g in per_origin.groupby("method", sort=False):
        nonzero = g.days.sum() - g.zero_days.sum()
        out[method] = {
            "daily_mape": 100 * g.ape_sum.sum() / nonzero if nonzero else np.nan,
            "daily_wape": 100 * g.abs_err_sum.sum() / g.abs_actual_sum.sum() if g.abs_actual_sum.sum() else np.nan,
            "daily_smape": 100 * g.smape_sum.sum() / g.days.sum() if g.days.sum() else np.nan,
            "total_mape": g.total_mape.mean(skipna=True) if g.total_mape.notna().any() else np.nan,
            "daily_coverage": g.covered_days.sum() / g.days.sum() if g.days.sum() else np.nan,
            "total_coverage": g.total_coverage.mean(skipna=True),
            "origins": len(g),
            "zero_days": int(g.zero_days.sum()),
        }
    return pd.DataFrame.from_dict(out, orient="index").loc[list(METHODS)]
