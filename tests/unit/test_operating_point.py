"""Batch detectors at their operating point: hourly window flags roll up to entity-days, and
those are matched with ground-truth incidents (evaluation code only; pandas, no Spark)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from health_monitor.batch.evaluation import entity_days, ground_truth_scores, operating_point
from health_monitor.catalog import get_model

COST = get_model("cost_anomaly_detector")
THREAT = get_model("security_threat_detector")


def _cost_windows() -> pd.DataFrame:
    """Two keys of one workspace (the workspace and a job), 48 hourly windows each, from Nov 1."""
    hours = pd.date_range("2026-11-01", periods=48, freq="h")
    parts = [pd.DataFrame({"workspace_id": "w1", "entity_type": et, "entity_id": eid, "window_start": hours})
             for et, eid in (("workspace", "w1"), ("job", "42"))]
    return pd.concat(parts, ignore_index=True)


def _incidents(**rows: tuple) -> pd.DataFrame:
    return pd.DataFrame([{"incident_id": k, "domain": d, "incident_type": t, "entity_id": e, "workspace_id": w,
                          "start_time": s, "end_time": x} for k, (d, t, e, w, s, x) in rows.items()])


def test_hourly_flags_of_one_key_and_day_count_once() -> None:
    rows = _cost_windows()
    flagged = np.zeros(len(rows), dtype=bool)
    flagged[[3, 4, 5]] = True  # three hours of the workspace key on Nov 1
    flagged[[48 + 30]] = True  # one hour of the job on Nov 2
    days = entity_days(COST, rows, flagged)
    assert len(days) == 2
    assert set(zip(days["entity_type"], days["day"].dt.day, strict=True)) == {("workspace", 1), ("job", 2)}


def test_precision_is_per_entity_day_and_recall_per_incident() -> None:
    rows = _cost_windows()
    flagged = np.zeros(len(rows), dtype=bool)
    flagged[[2, 3, 4, 5, 6]] = True  # five hours on Nov 1 (inside the runaway) -> one true entity-day
    flagged[[48 + 40]] = True  # the job on Nov 2, after the incident -> one false entity-day
    inc = _incidents(r1=("cost", "runaway_job_cost", "42", "w1", "2026-11-01 01:00", "2026-11-01 09:00"),
                     b1=("cost", "billing_error", "SKU", "w9", "2026-11-01 01:00", "2026-11-01 05:00"))
    precision, recall = ground_truth_scores(COST, rows, flagged, inc)
    assert precision == 0.5  # hour-level counting would say 5 / 6
    assert recall == 0.5  # the other workspace's billing error is missed
    op = operating_point(COST, rows, flagged, inc)
    assert (op.flagged, op.incidents) == (2, 2)


def test_nothing_flagged_has_no_precision_and_zero_recall() -> None:
    rows = _cost_windows()
    inc = _incidents(r1=("cost", "runaway_job_cost", "42", "w1", "2026-11-01 01:00", "2026-11-01 09:00"))
    assert ground_truth_scores(COST, rows, np.zeros(len(rows), dtype=bool), inc) == (None, 0.0)


def test_zone_aware_incident_times_match_naive_window_times() -> None:
    # Spark hands windows over as naive UTC; an incident table read elsewhere may carry a zone.
    rows = pd.DataFrame({"user_id": ["a@x.com"] * 3, "window_start": pd.date_range("2026-11-14 22:00", periods=3,
                                                                                   freq="h")})
    inc = _incidents(s1=("security", "privilege_self_grant", "A@x.com", "w1",
                         pd.Timestamp("2026-11-15 00:10", tz="UTC"), pd.Timestamp("2026-11-15 00:30", tz="UTC")))
    flagged = np.array([False, False, True])  # 00:00 on Nov 15
    assert ground_truth_scores(THREAT, rows, flagged, inc) == (1.0, 1.0)
    assert ground_truth_scores(THREAT, rows, np.array([True, False, False]), inc) == (0.0, 0.0)
