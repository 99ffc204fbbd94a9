"""The late-billing correction pass (``score --revisions``) on hand-made billing: a cost spike whose
rows arrive two days late is alerted once by the pass, with the stream's alert id for the
key-window; a re-run adds nothing (nor does a replay of its Delta transaction); a spike that
arrived in time is the stream's and never gets a revision alert, even where late rows of another
SKU revise its windows."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
from test_streaming import T0, load_usage, usage_rows

from health_monitor.alerts.build import alert_id_for
from health_monitor.alerts.store import apply_alerts
from health_monitor.batch.revisions import APP_ID, revision_pass, txn_version
from health_monitor.batch.trainer import train_model
from health_monitor.catalog import get_model
from health_monitor.features import build_features
from health_monitor.runtime import Lakehouse

JOBS, SQL = ("JOBS_COMPUTE", 20.0), ("SQL_COMPUTE", 6.0)
#: Hours (from T0) of the two spikes: day 10 arrives in time, day 11 two days late.
IN_TIME, LATE = range(10 * 24 + 3, 10 * 24 + 6), range(11 * 24 + 3, 11 * 24 + 6)


def _hour(row: dict) -> int:
    return int((pd.Timestamp(row["usage_start_time"]).tz_localize(None) - pd.Timestamp(T0)) / pd.Timedelta(hours=1))


def _ingest(rows: list[dict], late: dict[str, range] | None = None) -> list[dict]:
    """Billing's arrival: the usage day, except a SKU's rows of its ``late`` hours: two days later."""
    for r in rows:
        days = 2 if _hour(r) in (late or {}).get(r["sku_name"], range(0)) else 0
        r["ingestion_date"] = (date.fromisoformat(r["usage_date"]) + timedelta(days=days)).isoformat()
    return rows


def test_late_spike_alerted_once_rerun_adds_nothing_in_time_spike_left_to_the_stream(lake: Lakehouse, tmp_path):
    # Ten ordinary days train the champion (the model only ever sees routine spend).
    load_usage(lake, _ingest(usage_rows(range(0, 10 * 24), skus=(JOBS, SQL))), tmp_path / "u")
    build_features(lake, tables=["cost_window_features"])
    assert train_model(lake, get_model("cost_anomaly_detector"), {"n_estimators": 25}).version == "1"
    # Four more days: the JOBS spike of day 10 arrives in time (its hours' SQL rows two days
    # late, which revises the workspace's windows); day 11's JOBS spike arrives two days late.
    more = usage_rows(range(10 * 24, 14 * 24), skus=(JOBS, SQL), tag="b")
    for r in more:
        if r["sku_name"] == JOBS[0] and (_hour(r) in IN_TIME or _hour(r) in LATE):
            r["list_cost"], r["usage_quantity"] = round(r["list_cost"] * 8, 6), round(r["usage_quantity"] * 8, 6)
    more = _ingest(more, {JOBS[0]: LATE, SQL[0]: IN_TIME})
    load_usage(lake, more, tmp_path / "u")

    day = (T0 + timedelta(days=13)).date()
    report = revision_pass(lake, day)
    assert report.version == "1" and report.revised > 0, report.lines()
    assert report.written > 0, report.lines()
    alerts = lake.read("alerts", "monitor").toPandas()
    late_start = pd.Timestamp(T0) + pd.Timedelta(hours=LATE[0])
    sku_key = ("workspace_sku", f"1001:{JOBS[0]}")
    mine = alerts[(alerts["entity_type"] == sku_key[0]) & (alerts["entity_id"] == sku_key[1])]
    # exactly one alert for the late spike's SKU key: its three hours are one incident, keyed as
    # the stream keys the key-window (its first window)
    assert len(mine) == 1, alerts[["entity_type", "entity_id", "window_start", "window_end"]]
    got = mine.iloc[0]
    assert got["alert_id"] == alert_id_for(*sku_key, "cost_anomaly", late_start)
    assert pd.Timestamp(got["window_start"]) == late_start
    assert pd.Timestamp(got["window_end"]) <= late_start + pd.Timedelta(hours=len(LATE))
    late_day = (T0 + timedelta(days=13)).date().isoformat()
    assert any(e.startswith("re-judged on 1 late billing row arrived " + late_day) for e in got["evidence"]), \
        got["evidence"]
    assert "re-judged on" in got["summary"] and got["domain"] == "cost" and got["model_version"] == "1"
    # every alert the pass wrote is a window of the late spike (the in-time spike is the stream's,
    # though the workspace's windows there were revised by late SQL rows)
    starts = alerts["window_start"].map(pd.Timestamp)
    assert ((starts >= late_start) & (starts < late_start + pd.Timedelta(hours=len(LATE)))).all(), \
        alerts[["entity_type", "entity_id", "window_start"]]
    assert alerts.groupby(["entity_type", "entity_id"]).size().max() == 1

    # a re-run (the same windows seen again, as the next day's pass sees them too) adds nothing
    version = lake.latest_version("alerts", "monitor")
    again = revision_pass(lake, day)
    assert again.flagged == report.flagged and again.written == 0, again.lines()
    assert lake.latest_version("alerts", "monitor") == version
    # and a replay of an applied pass's write (a crash after the commit, before the pass noted it)
    # is skipped by Delta: the transaction version of the day is already committed
    replay = alerts.assign(alert_id="f" * 24, entity_id="replayed", evidence=alerts["evidence"].map(list))
    assert apply_alerts(lake, replay.iloc[:1], txn_version(day), APP_ID) == 0
    assert lake.latest_version("alerts", "monitor") == version
    assert len(lake.read("alerts", "monitor").toPandas()) == len(alerts)
