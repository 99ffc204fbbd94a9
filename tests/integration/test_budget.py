"""budget_forecast_predictions: monthly bands, account rows, commit variance, reruns replace;
month-total backtest coverage of the P10-P90 band."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from model_estate import featured_lake, write_gold

from health_monitor.batch.budget import ACCOUNT, TABLE, backtest_months, budget_forecast_predictions
from health_monitor.batch.forecasting.synthetic import make_series
from health_monitor.errors import HealthMonitorError
from health_monitor.runtime import Lakehouse


@pytest.fixture(scope="module")
def lake(tmp_path_factory, spark) -> Lakehouse:  # noqa: ANN001
    lake = featured_lake(tmp_path_factory, spark)
    if not lake.exists("commit_configurations"):
        write_gold(lake, "commit_configurations", pd.DataFrame([
            {"account_id": "acc", "commit_year": 2026, "workspace_id": None, "commit_amount": 50000.0,
             "currency_code": "USD", "start_date": dt.date(2026, 1, 1), "end_date": dt.date(2026, 12, 31)}]))
    return lake


def test_budget_rows_are_ordered_bands_with_commit_variance(lake: Lakehouse) -> None:
    day = dt.date(2026, 9, 5)
    out = budget_forecast_predictions(lake, day, use_prophet=False)
    assert set(out["workspace_id"]) == {"1001", "1002", ACCOUNT}
    # September to December of the forecast year, per entity.
    assert sorted(out["month_start"].unique()) == [dt.date(2026, m, 1) for m in range(9, 13)]
    assert (out.predicted_monthly_cost_p10 <= out.predicted_monthly_cost).all()
    assert (out.predicted_monthly_cost <= out.predicted_monthly_cost_p90).all()
    acc = out[out.workspace_id == ACCOUNT].sort_values("month_start")
    ws_sum = out[out.workspace_id != ACCOUNT].groupby("month_start").predicted_monthly_cost.sum()
    # The account's P50 is its own fit, but lands near the sum of the workspaces'.
    assert acc.predicted_monthly_cost.to_numpy() == pytest.approx(ws_sum.sort_index().to_numpy(), rel=0.25)
    # Cumulative: grows month by month; December's is the year-end P50; variance = that - commit.
    assert acc.cumulative_forecast.is_monotonic_increasing
    actual_to_date = lake.read("fact_usage").where(f"usage_date <= '{day}'").selectExpr(
        "sum(cast(list_cost as double))").first()[0]
    assert acc.cumulative_forecast.iloc[0] > actual_to_date
    assert acc.commit_variance_forecast.iloc[-1] == pytest.approx(acc.cumulative_forecast.iloc[-1] - 50000.0,
                                                                  rel=0.02)
    assert out[out.workspace_id == "1001"].commit_variance_forecast.isna().all()  # no workspace commit
    n = lake.count(TABLE, "ml")
    budget_forecast_predictions(lake, day, use_prophet=False)
    assert lake.count(TABLE, "ml") == n == len(out)


def test_bad_date_is_a_clear_error(lake: Lakehouse) -> None:
    with pytest.raises(HealthMonitorError, match="YYYY-MM-DD"):
        budget_forecast_predictions(lake, "05/09/2026", write=False)


def test_month_total_backtest_covers_about_80_percent() -> None:
    rows = []
    for kind in ("cost_month_end", "noisy", "growth"):
        for seed in (0, 1):
            rows.append(backtest_months(make_series(kind, seed), months=3).rows)
    r = pd.concat(rows)
    inside = ((r.actual >= r.p10) & (r.actual <= r.p90)).mean()
    assert len(r) == 18
    assert 0.6 <= inside <= 1.0
    assert (r.p10 <= r.p50).all() and (r.p50 <= r.p90).all()


def test_mid_month_backtest_counts_the_observed_days() -> None:
    history = make_series("cost_month_end", 2)
    start = backtest_months(history, months=3).rows
    mid = backtest_months(history, months=3, as_of_day=15).rows
    assert list(mid.month_start) == list(start.month_start)
    assert all(pd.Timestamp(o).day == 15 for o in mid.origin)
    assert (mid.p10 <= mid.p50).all() and (mid.p50 <= mid.p90).all()
    # Half the month is known: the band is narrower than from the month's start.
    assert ((mid.p90 - mid.p10) < (start.p90 - start.p10)).all()
