"""``budget_forecast_predictions``: monthly cost forecasts with P10/P50/P90, year-to-date
cumulative forecasts and the variance against the Databricks commit.

Rows are per workspace and account-wide. The account-wide rows use ``workspace_id = 'ACCOUNT'``
(not null) so the column can stay a merge key and dashboards can filter on it plainly.

Where the numbers come from: the budget_forecaster champion's pyfunc only answers "this month's
end" for a feature row, not each future month, so the forecasts here come from the same engine
the champion uses (:func:`health_monitor.batch.forecasting.forecast_totals`) fitted on the daily
list cost from Gold ``fact_usage``. All periods of one entity come from one fit (one set of sample
paths), so months, cumulative totals and the commit-year total are mutually consistent, and the
quantiles of a month are quantiles of path sums (they carry the day-to-day error correlation).
"""

from __future__ import annotations

import datetime as dt
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pyspark.sql import functions as F

from health_monitor import progress
from health_monitor.batch.forecasting import forecast_totals
from health_monitor.errors import HealthMonitorError
from health_monitor.runtime import Lakehouse

TABLE = "budget_forecast_predictions"
ACCOUNT = "ACCOUNT"
#: model_version of rows made by the forecasting engine directly (not a registered version).
ENGINE_VERSION = "forecasting-engine"
COLUMNS = ["workspace_id", "month_start", "predicted_monthly_cost", "predicted_monthly_cost_p10",
           "predicted_monthly_cost_p90", "cumulative_forecast", "commit_variance_forecast", "forecast_date",
           "model_version"]


def daily_costs(lake: Lakehouse, until: dt.date | None = None) -> pd.DataFrame:
    """Daily list cost per workspace from Gold ``fact_usage``: columns workspace_id, ds, y."""
    if not lake.exists("fact_usage", "gold"):
        raise HealthMonitorError("Gold fact_usage does not exist: build or simulate an estate first")
    u = lake.read("fact_usage", "gold")
    if until is not None:
        u = u.where(F.col("usage_date") <= F.lit(until))
    pdf = (u.groupBy("workspace_id", F.col("usage_date").alias("ds"))
           .agg(F.sum(F.col("list_cost").cast("double")).alias("y")).toPandas())
    pdf["ds"] = pd.to_datetime(pdf["ds"])
    pdf["y"] = pdf["y"].fillna(0.0).astype(float)
    if pdf.empty:
        return pdf
    # Billing is complete: a day without usage rows is zero spend, not an unknown day (which
    # the engine would treat as a gap). Each workspace runs from its first usage day to the
    # estate's last day.
    last = pdf["ds"].max()
    frames = []
    for ws, g in pdf.groupby("workspace_id", sort=True):
        days = pd.date_range(g["ds"].min(), last, freq="D")
        full = g.set_index("ds")["y"].reindex(days, fill_value=0.0).rename_axis("ds").reset_index()
        frames.append(full.assign(workspace_id=ws))
    return pd.concat(frames, ignore_index=True)[["workspace_id", "ds", "y"]]


def _month_starts(first: pd.Timestamp, min_months: int) -> list[pd.Timestamp]:
    """This month to the year's December, and at least ``min_months`` months."""
    n = max(12 - first.month + 1, min_months)
    return [first + pd.DateOffset(months=i) for i in range(n)]


def _commits(lake: Lakehouse) -> pd.DataFrame:
    if not lake.exists("commit_configurations", "gold"):
        return pd.DataFrame(columns=["workspace_id", "commit_year", "commit_amount", "start_date", "end_date"])
    pdf = lake.read("commit_configurations", "gold").select(
        "workspace_id", "commit_year", F.col("commit_amount").cast("double").alias("commit_amount"),
        "start_date", "end_date").toPandas()
    pdf["workspace_id"] = pdf["workspace_id"].fillna(ACCOUNT).astype(str)
    return pdf


def forecast_entity(history: pd.DataFrame, forecast_date: dt.date, commits: pd.DataFrame,
                    min_months: int = 3, use_prophet: bool = True, seed: int = 0) -> pd.DataFrame:
    """Monthly rows for one entity (a ``ds, y`` daily history ending on ``forecast_date``).

    Each month row has P10/P50/P90 of the month total (days already observed count as actuals),
    ``cumulative_forecast`` = spend from 1 January of the month's year through the end of that
    month (actuals to ``forecast_date``, P50 after it: December's row is the year-end figure),
    and ``commit_variance_forecast`` = P50 total of the commit period minus the commit amount
    (positive: overshoot; null where the year has no commit).
    """
    today = pd.Timestamp(forecast_date)
    months = _month_starts(today.replace(day=1), min_months)
    periods = []
    for m in months:
        end = m + pd.offsets.MonthEnd(0)
        periods += [(m, end), (m.replace(month=1, day=1), end)]
    commit_rows = commits.to_dict("records")
    periods += [(pd.Timestamp(c["start_date"]), pd.Timestamp(c["end_date"])) for c in commit_rows]
    totals = forecast_totals(history[["ds", "y"]], periods, use_prophet=use_prophet, seed=seed)
    commit_total = {int(c["commit_year"]): (totals[2 * len(months) + i]["p50"] - float(c["commit_amount"]))
                    for i, c in enumerate(commit_rows)}
    rows = []
    for i, m in enumerate(months):
        month, cum = totals[2 * i], totals[2 * i + 1]
        p10, p50, p90 = np.sort([month["p10"], month["p50"], month["p90"]])
        rows.append({"month_start": m.date(), "predicted_monthly_cost": float(p50),
                     "predicted_monthly_cost_p10": float(p10), "predicted_monthly_cost_p90": float(p90),
                     "cumulative_forecast": float(cum["p50"]),
                     "commit_variance_forecast": commit_total.get(m.year)})
    return pd.DataFrame(rows)


def budget_forecast_predictions(lake: Lakehouse, forecast_date: dt.date | str | None = None,
                                min_months: int = 3, use_prophet: bool = True, seed: int = 0,
                                write: bool = True) -> pd.DataFrame:
    """Forecast every workspace and the account; upsert ``ml.budget_forecast_predictions``.

    Args:
        lake: the lakehouse with Gold ``fact_usage`` (and optionally ``commit_configurations``).
        forecast_date: last day of history used (default: Gold's last usage day).
        min_months: months forecast at least (otherwise: this month to December).
        use_prophet: let Prophet compete in the engine's ensemble (off: faster).
        seed: sample-path seed (deterministic results for a seed).
        write: upsert the rows (keys: workspace_id, month_start, forecast_date); reruns replace.

    Returns:
        The rows (columns :data:`COLUMNS`).
    """
    day = _date(forecast_date)
    daily = daily_costs(lake, until=day)
    if daily.empty:
        raise HealthMonitorError("fact_usage has no rows on or before the forecast date")
    day = day or daily["ds"].max().date()
    commits = _commits(lake)
    account = daily.groupby("ds", as_index=False)["y"].sum()
    entities = [(str(ws), g) for ws, g in daily.groupby("workspace_id")] + [(ACCOUNT, account)]
    frames = []
    for ws, hist in entities:
        with progress.step(f"budget forecast {ws}"):
            out = forecast_entity(hist, day, commits[commits["workspace_id"] == ws], min_months,
                                  use_prophet, seed)
        out.insert(0, "workspace_id", ws)
        frames.append(out)
    with warnings.catch_warnings():
        # Workspaces without a commit have an all-null variance column; pandas warns about how
        # it will type such columns one day, and the final column selection fixes the types here.
        warnings.simplefilter("ignore", FutureWarning)
        result = pd.concat(frames, ignore_index=True)
    result["forecast_date"] = day
    result["model_version"] = ENGINE_VERSION
    result = result[COLUMNS]
    if write:
        sdf = lake.spark.createDataFrame(result.astype(object).where(result.notna(), None),
                                         schema="workspace_id string, month_start date, predicted_monthly_cost double, "
                                         "predicted_monthly_cost_p10 double, predicted_monthly_cost_p90 double, "
                                         "cumulative_forecast double, commit_variance_forecast double, "
                                         "forecast_date date, model_version string")
        lake.merge(sdf, TABLE, ["workspace_id", "month_start", "forecast_date"], layer="ml")
    return result


def _date(value: dt.date | str | None) -> dt.date | None:
    if value is None or isinstance(value, dt.date):
        return value.date() if isinstance(value, dt.datetime) else value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise HealthMonitorError(f"date {value!r} is not YYYY-MM-DD") from None


@dataclass
class MonthlyBacktest:
    """Month-total backtest: one row per (origin month) with the band and the actual."""

    rows: pd.DataFrame

    @property
    def coverage(self) -> float:
        """Share of actual month totals inside [P10, P90]."""
        r = self.rows
        return float(((r.actual >= r.p10) & (r.actual <= r.p90)).mean()) if len(r) else float("nan")

    @property
    def mape(self) -> float:
        """Mean absolute percentage error of P50 against the actual month totals."""
        r = self.rows[self.rows.actual.abs() > 1e-9]
        return float((np.abs(r.p50 - r.actual) / r.actual.abs()).mean()) if len(r) else float("nan")


def backtest_months(history: pd.DataFrame, months: int = 6, min_history_days: int = 90,
                    use_prophet: bool = False, seed: int = 0, as_of_day: int = 0) -> MonthlyBacktest:
    """Forecast each of the last ``months`` complete months from the history before its origin.

    Args:
        history: daily ``ds, y`` frame of one entity.
        months: how many of the latest complete months to forecast (each from its own origin).
        min_history_days: months whose origin sees fewer days of history are skipped.
        use_prophet: let Prophet compete in the engine's ensemble.
        seed: sample-path seed.
        as_of_day: 0 = forecast on the last day of the previous month (a month-start forecast,
            the hardest one: no month-to-date actuals); ``d`` >= 1 = forecast with the month's
            first ``d`` days observed (they count as actuals, as in the daily refresh).

    Returns:
        One row per month: ``month_start, origin, p10, p50, p90, actual``.
    """
    h = history[["ds", "y"]].copy()
    h["ds"] = pd.to_datetime(h["ds"])
    h = h.groupby("ds", as_index=False)["y"].sum().sort_values("ds")
    last = h["ds"].max()
    # The month after the last day's month is incomplete unless the data ends on a month end.
    last_full = (last + pd.Timedelta(days=1)).replace(day=1) - pd.DateOffset(months=1)
    rows = []
    for k in range(months):
        start = last_full - pd.DateOffset(months=k)
        end = start + pd.offsets.MonthEnd(0)
        origin = start + pd.Timedelta(days=as_of_day - 1)
        past = h[h["ds"] <= origin]
        if len(past) < min_history_days:
            continue
        q = forecast_totals(past, [(start, end)], use_prophet=use_prophet, seed=seed)[0]
        actual = float(h[(h["ds"] >= start) & (h["ds"] <= end)]["y"].sum())
        rows.append({"month_start": start.date(), "origin": origin.date(), "p10": q["p10"], "p50": q["p50"],
                     "p90": q["p90"], "actual": actual})
    return MonthlyBacktest(pd.DataFrame(rows, columns=["month_start", "origin", "p10", "p50", "p90", "actual"]))


def backtest_budget(lake: Lakehouse, months: int = 6, use_prophet: bool = False,
                    as_of_day: int = 0) -> MonthlyBacktest:
    """:func:`backtest_months` for every workspace of an estate and the account, pooled."""
    return backtest_entities(daily_costs(lake), months, use_prophet=use_prophet, as_of_day=as_of_day)


def backtest_entities(daily: pd.DataFrame, months: int = 6, use_prophet: bool = False,
                      as_of_day: int = 0, min_history_days: int = 90) -> MonthlyBacktest:
    """:func:`backtest_months` for each workspace of a :func:`daily_costs` frame and the account.

    Rows carry ``workspace_id`` (``ACCOUNT`` for the account-wide sum), like the prediction table.
    """
    parts = [(str(ws), g) for ws, g in daily.groupby("workspace_id")]
    parts.append((ACCOUNT, daily.groupby("ds", as_index=False)["y"].sum()))
    frames = []
    for ws, g in parts:
        bt = backtest_months(g, months, min_history_days, use_prophet=use_prophet, as_of_day=as_of_day)
        frames.append(bt.rows.assign(workspace_id=ws))
    return MonthlyBacktest(pd.concat(frames, ignore_index=True) if frames else pd.DataFrame())
