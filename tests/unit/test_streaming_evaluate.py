"""Alert evaluation against ground truth: matching by entity and time, precision, recall, TTD."""

from __future__ import annotations

import pandas as pd
import pytest

from health_monitor.streaming.evaluate import evaluate_frames


def _alert(aid, domain, atype, etype, eid, ws, start, hours=1):
    s = pd.Timestamp(start)
    return {"alert_id": aid, "domain": domain, "alert_type": atype, "entity_type": etype, "entity_id": eid,
            "workspace_id": ws, "window_start": s, "window_end": s + pd.Timedelta(hours=hours)}


def _inc(iid, itype, domain, etype, eid, ws, start, hours):
    s = pd.Timestamp(start)
    return {"incident_id": iid, "incident_type": itype, "domain": domain, "entity_type": etype, "entity_id": eid,
            "workspace_id": ws, "start_time": s, "end_time": s + pd.Timedelta(hours=hours)}


def test_matching_precision_recall_and_time_to_detect():
    truth = pd.DataFrame([
        _inc("i1", "bulk_exfiltration", "security", "user", "eve@x.com", "1", "2026-05-10 02:00", 3),
        _inc("i2", "runaway_job_cost", "cost", "job", "42", "1", "2026-05-12 00:00", 24),
        _inc("i3", "failing_job_streak", "reliability", "job", "77", "2", "2026-05-13 00:00", 24),
        _inc("i4", "billing_error", "cost", "sku", "JOBS_COMPUTE", "2", "2026-05-14 00:00", 4),
    ])
    alerts = pd.DataFrame([
        _alert("a1", "security", "data_exfiltration", "user", "eve@x.com", "1", "2026-05-10 03:00"),
        # A runaway job shows up as its workspace's cost.
        _alert("a2", "cost", "cost_spike", "workspace", "1", "1", "2026-05-12 05:00", 3),
        # Right entity, but two days after the incident: a false alarm.
        _alert("a3", "security", "data_exfiltration", "user", "eve@x.com", "1", "2026-05-12 03:00"),
        _alert("a4", "cost", "cost_spike", "workspace_sku", "2:JOBS_COMPUTE", "2", "2026-05-14 01:00"),
        _alert("a5", "reliability", "job_failure_streak", "job", "99", "2", "2026-05-13 05:00"),
    ])
    ev = evaluate_frames(alerts, truth, tolerance_h=6)
    assert ev.alerts == 5 and ev.true_alerts == 3
    assert ev.precision == pytest.approx(0.6)
    by = {t.incident_type: t for t in ev.by_incident}
    assert (by["bulk_exfiltration"].detected, by["bulk_exfiltration"].ttd_median_h) == (1, 2.0)
    # a2 kept firing for 3 hours: detected at the end of its first hourly window, 6 h in
    assert by["runaway_job_cost"].detected == 1 and by["runaway_job_cost"].ttd_median_h == 6.0
    assert by["billing_error"].detected == 1
    assert by["failing_job_streak"].detected == 0 and by["failing_job_streak"].recall == 0
    prec = {(a.alert_type, a.domain): a.precision for a in ev.by_alert}
    assert prec[("data_exfiltration", "security")] == 0.5
    assert "alert precision 60.0%" in ev.format()


def test_cost_alerts_match_spend_raising_incidents_of_other_domains_but_not_other_workspaces():
    truth = pd.DataFrame([
        _inc("w1", "warehouse_saturation", "performance", "warehouse", "wh-9", "1", "2026-05-10 15:00", 3),
        _inc("q1", "late_data", "quality", "table", "cat.s.t", "1", "2026-05-11 00:00", 24),
    ])
    alerts = pd.DataFrame([
        # A warehouse's query surge bills more SQL DBUs in its workspace: a real cost change.
        _alert("a1", "cost", "cost_anomaly", "workspace_sku", "1:SERVERLESS_SQL", "1", "2026-05-10 16:00"),
        # Same time, another workspace: not explained by the incident.
        _alert("a2", "cost", "cost_anomaly", "workspace", "2", "2", "2026-05-10 16:00"),
        # A user's activity during the surge is not matched to the warehouse (entity differs).
        _alert("a3", "security", "user_behavior_anomaly", "user", "ann@x.com", "1", "2026-05-10 16:00"),
        # A late table does not change spend: no workspace-level match for a cost alert.
        _alert("a4", "cost", "cost_anomaly", "workspace", "1", "1", "2026-05-11 10:00"),
    ])
    ev = evaluate_frames(alerts, truth, tolerance_h=6)
    assert set(ev.matches["alert_id"]) == {"a1"}


def test_observed_links_match_a_users_alert_to_their_warehouse_and_a_jobs_to_its_table():
    truth = pd.DataFrame([
        _inc("w1", "warehouse_saturation", "performance", "warehouse", "wh-9", "1", "2026-05-10 15:00", 3),
        _inc("q1", "breaking_schema_change", "quality", "table", "cat.s.t", "1", "2026-05-11 00:00", 24),
    ])
    alerts = pd.DataFrame([
        _alert("a1", "security", "user_behavior_anomaly", "user", "ann@x.com", "1", "2026-05-10 16:00"),
        # Queried the warehouse, but not in the alert's hour: no link.
        _alert("a2", "security", "user_behavior_anomaly", "user", "bob@x.com", "1", "2026-05-10 16:00"),
        _alert("a3", "reliability", "job_failure_streak", "job", "77", "1", "2026-05-11 06:00"),
        # A job that never touched the table.
        _alert("a4", "reliability", "job_failure_streak", "job", "78", "1", "2026-05-11 06:00"),
    ])
    h = pd.Timedelta(hours=1)
    t0 = pd.Timestamp("2026-05-10 16:00")
    links = pd.DataFrame([
        {"entity_id": "ann@x.com", "linked_id": "wh-9", "start": t0, "end": t0 + h},
        {"entity_id": "bob@x.com", "linked_id": "wh-9", "start": t0 - 3 * h, "end": t0 - 2 * h},
        {"entity_id": "77", "linked_id": "cat.s.t", "start": pd.Timestamp("2026-05-01"), "end": pd.Timestamp("2026-05-20")},
    ])
    ev = evaluate_frames(alerts, truth, tolerance_h=6, links=links)
    assert set(ev.matches["alert_id"]) == {"a1", "a3"}
    assert (ev.true_alerts, ev.true_without_links) == (2, 0)
    assert "without observed links (lineage, query history): precision 0.0% (0/4)" in ev.format()
    assert evaluate_frames(alerts, truth, tolerance_h=6).true_without_links is None


def test_incidents_without_any_alert_count_when_the_streams_scored_their_time():
    truth = pd.DataFrame([
        _inc("i1", "bulk_exfiltration", "security", "user", "eve@x.com", "1", "2026-05-10 02:00", 3),
        _inc("i2", "sla_breach", "reliability", "job", "77", "1", "2026-05-20 00:00", 24),
    ])
    alerts = pd.DataFrame([_alert("a1", "security", "data_exfiltration", "user", "eve@x.com", "1", "2026-05-10 03:00")])
    # The alerts alone span one hour: the missed incident ten days later would drop out of recall.
    assert evaluate_frames(alerts, truth).recall == 1.0
    ev = evaluate_frames(alerts, truth, streamed=(pd.Timestamp("2026-05-01"), pd.Timestamp("2026-06-01")))
    assert ev.recall == 0.5 and {t.incident_type: t.detected for t in ev.by_incident}["sla_breach"] == 0
