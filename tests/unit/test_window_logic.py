"""The stream's window logic, its CLI arguments and the batch side's bookkeeping, in pure pandas
(moved from the integration tier: none of it needs Spark)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import pytest

from health_monitor.batch.scoring import ACTIVE
from health_monitor.batch.trainer import time_split
from health_monitor.catalog import MODELS
from health_monitor.streaming import windows

T0 = datetime(2026, 3, 2)  # a Monday


def _usage_frame(hours: list[float], cost: float = 10.0) -> pd.DataFrame:
    return pd.DataFrame({
        "entity_type": "workspace", "entity_id": "1001", "workspace_id": "1001",
        "event_time": [pd.Timestamp(T0) + pd.Timedelta(hours=h) for h in hours],
        "cost": cost, "dbus": 1.0, "sku_name": "JOBS", "job_id": "42", "job_name": "etl", "is_tagged": True,
        "record_id": [f"r{h}" for h in hours], "source_table": "fact_usage",
    })


def test_windows_close_at_the_watermark_and_late_rows_inside_it_update_them():
    ks = windows.KeyState("workspace", "1001")
    windows.accumulate("cost", ks, _usage_frame([0.1, 0.5, 1.2]))
    wm = int(pd.Timestamp(T0 + timedelta(hours=1)).value // 1_000_000)
    closed = windows.close_windows("cost", ks, wm, {})
    assert [c["features"]["cost_usd"] for c in closed] == [20.0]
    # A row for the still-open hour 1 arrives late but inside the watermark: it counts.
    assert windows.accumulate("cost", ks, _usage_frame([1.9])) == 0
    closed = windows.close_windows("cost", ks, wm + windows.HOUR_MS, {})
    assert [c["features"]["cost_usd"] for c in closed] == [20.0]
    # A row for a closed window cannot change it any more.
    assert windows.accumulate("cost", ks, _usage_frame([0.7])) == 1
    assert windows.next_timeout_ms(ks) is None


def test_cost_baselines_are_causal():
    ks = windows.KeyState("workspace", "1001")
    windows.accumulate("cost", ks, _usage_frame([float(h) for h in range(48)], cost=10.0))
    windows.accumulate("cost", ks, _usage_frame([48.0], cost=100.0))
    wm = int(pd.Timestamp(T0 + timedelta(hours=49)).value // 1_000_000)
    last = windows.close_windows("cost", ks, wm, {})[-1]["features"]
    assert last["cost_usd"] == 100.0
    assert last["baseline_7d"] == pytest.approx(10.0)  # the spike is not in its own baseline
    assert last["ratio_7d"] == pytest.approx(10.0)
    assert last["hour_of_day"] == 0.0 and last["day_of_week"] == 4.0  # Wednesday, Spark numbering


def test_sensitive_table_names():
    assert windows.is_sensitive_table("main.hr.employees")
    assert windows.is_sensitive_table("prod.sales.customers_pii")
    assert windows.is_sensitive_table("finance.payments.cards")
    assert not windows.is_sensitive_table("main.sales.orders")
    assert not windows.is_sensitive_table("main.shrink.threads")



def test_stream_cli_parses_triggers_and_domains():
    from health_monitor.cli.stream import parse_domains, parse_trigger
    from health_monitor.errors import HealthMonitorError

    assert parse_trigger("30s") == "30 seconds" and parse_trigger("5m") == "300 seconds"
    assert parse_trigger("1h") == "3600 seconds" and parse_trigger("500ms") == "500 milliseconds"
    assert parse_domains("cost, security") == ["cost", "security"]
    for bad in ("soon", "0s"):
        with pytest.raises(HealthMonitorError):
            parse_trigger(bad)
    with pytest.raises(HealthMonitorError, match="unknown domain"):
        parse_domains("cost,quality")


def test_time_split_never_shares_a_time_stamp() -> None:
    frame = pd.DataFrame({"t": pd.date_range("2026-01-01", periods=20).repeat(3), "x": range(60)})
    train, valid, test = time_split(frame, "t")
    assert train["t"].max() < valid["t"].min() and valid["t"].max() < test["t"].min()
    assert len(train) + len(valid) + len(test) == 60


def test_every_feature_table_has_an_active_entity_definition() -> None:
    assert {m.feature_table for m in MODELS} <= set(ACTIVE)
