"""The late-billing correction pass's pure parts: its alert rows (the stream's id for the
key-window, evidence that says it was re-judged, severity from the alert rules), the filter of
windows already inside an alert, the Delta transaction version and the horizon."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from health_monitor.alerts.build import alert_id_for
from health_monitor.batch.revisions import (
    expected_usd,
    horizon_start,
    late_text,
    not_yet_alerted,
    revision_alerts,
    txn_version,
)
from health_monitor.streaming.tables import ALERTS

START = pd.Timestamp("2026-11-02 04:00")


def _flagged(**over) -> pd.DataFrame:
    row = {"entity_type": "workspace_sku", "entity_id": "1001:JOBS_COMPUTE", "workspace_id": "1001",
           "window_start": START, "window_end": START + pd.Timedelta(hours=1), "value": 2400.0,
           "baseline_hour_usd": 200.0, "baseline_7d": 150.0, "unit_usd_at_risk": None, "sku_name": "JOBS_COMPUTE",
           "revision": 2, "score": 0.97, "late_rows": 3, "late_arrived": dt.date(2026, 11, 4), "late_usd": 2150.0}
    return pd.DataFrame([row | over])


def test_a_revision_alert_is_the_stream_alert_of_the_key_window_and_says_it_was_rejudged():
    out = revision_alerts(_flagged(), "7", 0.6, dt.datetime(2026, 11, 4, 3, tzinfo=dt.UTC))
    assert list(out.columns) == ALERTS.column_names and len(out) == 1
    a = out.iloc[0]
    assert a["alert_id"] == alert_id_for("workspace_sku", "1001:JOBS_COMPUTE", "cost_anomaly", START)
    assert a["alert_type"] == "cost_anomaly" and a["domain"] == "cost" and a["model_version"] == "7"
    assert a["evidence"][0] == "re-judged on 3 late billing rows arrived 2026-11-04: $2,150 added"
    assert "revision 2 score 0.97 >= 0.60" in a["evidence"]
    assert a["impact_usd"] == 2200.0  # above the larger of the routine at this hour and the 7-day mean
    assert a["deviation_pct"] == 1100.0
    # score 0.97 is CRITICAL on its own; $2,200 at risk raises it no further (the top level)
    assert a["severity"] == "CRITICAL"
    assert a["summary"].endswith("re-judged on 3 late billing rows arrived 2026-11-04: $2,150 added.")
    assert a["detected_at"] == pd.Timestamp("2026-11-04 03:00")
    # a trivial amount is capped at MEDIUM, as the stream's alerts are
    small = revision_alerts(_flagged(value=30.0, baseline_hour_usd=10.0, baseline_7d=8.0), "7", 0.6,
                            dt.datetime(2026, 11, 4))
    assert small.iloc[0]["severity"] == "MEDIUM"


def test_helpers():
    assert late_text(1, pd.Timestamp("2026-11-04"), -8.5) == "re-judged on 1 late billing row arrived 2026-11-04: " \
                                                            "$8.50 taken off"
    assert late_text(2, None, 40.0).startswith("re-judged on 2 late billing rows arrived an unknown day")
    assert expected_usd({"baseline_hour_usd": None, "baseline_7d": 3.0}) == 3.0
    assert expected_usd({"baseline_hour_usd": float("nan")}) is None
    assert txn_version(dt.date(2026, 11, 5)) > txn_version(dt.date(2026, 11, 4))
    assert horizon_start(dt.date(2026, 11, 8), 8) == pd.Timestamp("2026-11-01")


def test_windows_already_inside_an_alert_of_the_key_are_not_written_again():
    cands = pd.concat([_flagged(), _flagged(window_start=START + pd.Timedelta(hours=1),
                                            window_end=START + pd.Timedelta(hours=2)),
                       _flagged(entity_id="1001:SQL_COMPUTE")], ignore_index=True)
    cands = revision_alerts(cands, "1", 0.6, dt.datetime(2026, 11, 4))
    # the stream's rule alert on the SKU key covers the first hour only; nothing on the SQL key
    existing = pd.DataFrame([{"entity_type": "workspace_sku", "entity_id": "1001:JOBS_COMPUTE", "domain": "cost",
                              "window_start": START - pd.Timedelta(hours=2), "window_end": START + pd.Timedelta(hours=1)}])
    kept = not_yet_alerted(existing, cands)
    assert sorted(zip(kept["entity_id"], kept["window_start"], strict=True)) == [
        ("1001:JOBS_COMPUTE", START + pd.Timedelta(hours=1)), ("1001:SQL_COMPUTE", START)]
    assert len(not_yet_alerted(existing.iloc[0:0], cands)) == 3
    # another domain's alert on a same-named entity does not count
    assert len(not_yet_alerted(existing.assign(domain="security"), cands)) == 3
