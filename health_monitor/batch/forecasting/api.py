"""The public forecasting functions: daily quantiles and quantiles of a period total."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from health_monitor.batch.forecasting.engine import quantile_names, simulate_paths
from health_monitor.batch.forecasting.history import prepare_history
from health_monitor.errors import HealthMonitorError

DEFAULT_QUANTILES: tuple[float, ...] = (0.1, 0.5, 0.9)


def forecast_daily(history: pd.DataFrame | pd.Series, horizon: int,
                   quantiles: tuple[float, ...] = DEFAULT_QUANTILES,
                   holidays_country: str | None = "US", *, use_prophet: bool = True,
                   seed: int = 0) -> pd.DataFrame:
    """Forecast each of the ``horizon`` days after the history.

    Args:
        history: frame with columns ``ds`` (date or timestamp) and ``y`` (number), or a series
            indexed by date. Several rows per day are summed; missing days are gaps, not zeros.
        horizon: number of future days.
        quantiles: quantile levels, each in (0, 1).
        holidays_country: country code for holiday effects (e.g. "US", "GB"), or None.
        use_prophet: let Prophet compete in the ensemble (off: faster, statistical models only).
        seed: random seed for the sample paths (results are deterministic for a seed).

    Returns:
        Frame with ``ds`` (midnight timestamps) and one column per quantile (``p10``, ``p50``,
        ``p90`` by default), non-decreasing across quantiles; never negative when the history
        has no negative values.
    """
    names = quantile_names(tuple(quantiles))
    fc = simulate_paths(prepare_history(history), int(horizon), holidays_country,
                        use_prophet=use_prophet, seed=seed)
    q = fc.daily_quantiles(tuple(quantiles))
    out = pd.DataFrame(q, columns=names)
    out.insert(0, "ds", fc.dates)
    return out


def forecast_total(history: pd.DataFrame | pd.Series, start: str | dt.date | pd.Timestamp,
                   end: str | dt.date | pd.Timestamp,
                   quantiles: tuple[float, ...] = DEFAULT_QUANTILES,
                   holidays_country: str | None = "US", *, use_prophet: bool = True,
                   seed: int = 0) -> dict[str, float]:
    """Quantiles of the SUM of the series over the days ``start..end`` (both inclusive).

    The quantiles come from sums of whole sample paths, so they carry the day-to-day
    correlation of errors (a level error hits every day of a month at once); they are not sums
    of daily quantiles. Days of the period that are already in the history count with their
    observed values (gaps count as nothing), so ``start`` = first of this month gives the
    month-to-date actuals plus the forecast of the rest of the month.

    Returns:
        ``{"p10": ..., "p50": ..., "p90": ...}`` (keys follow ``quantiles``), non-decreasing.
    """
    return forecast_totals(history, [(start, end)], quantiles, holidays_country,
                           use_prophet=use_prophet, seed=seed)[0]


def forecast_totals(history: pd.DataFrame | pd.Series,
                    periods: list[tuple[str | dt.date | pd.Timestamp, str | dt.date | pd.Timestamp]],
                    quantiles: tuple[float, ...] = DEFAULT_QUANTILES,
                    holidays_country: str | None = "US", *, use_prophet: bool = True,
                    seed: int = 0) -> list[dict[str, float]]:
    """:func:`forecast_total` for several periods from ONE fit (e.g. each month to year end).

    All periods share the same sample paths, so a fit costs once however many periods are
    asked for, and totals of nested periods stay consistent with each other.
    """
    names = quantile_names(tuple(quantiles))
    series = prepare_history(history)
    last_obs = series.index[-1]
    bounds = []
    for start, end in periods:
        first_day, last_day = _day(start, "start"), _day(end, "end")
        if last_day < first_day:
            raise HealthMonitorError(f"end {last_day.date()} is before start {first_day.date()}")
        bounds.append((first_day, last_day))
    horizon = max((int((b[1] - last_obs).days) for b in bounds), default=0)
    fc = (simulate_paths(series, horizon, holidays_country, use_prophet=use_prophet, seed=seed)
          if horizon > 0 else None)
    out = []
    for first_day, last_day in bounds:
        observed = float(np.nansum(series.loc[first_day:min(last_day, last_obs)].to_numpy()))
        if last_day <= last_obs:
            out.append(dict.fromkeys(names, observed))
            continue
        first = max(0, int((first_day - last_obs).days) - 1)
        last = int((last_day - last_obs).days) - 1
        q = fc.total_quantiles(tuple(quantiles), first=first, last=last) + observed
        out.append({name: float(v) for name, v in zip(names, q, strict=True)})
    return out


def _day(value: str | dt.date | pd.Timestamp, what: str) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise HealthMonitorError(f"{what} {value!r} is not a date") from exc
    if ts is pd.NaT:
        raise HealthMonitorError(f"{what} {value!r} is not a date")
    if ts.tzinfo is not None:
        ts = ts.tz_localize(None)
    return ts.normalize()
