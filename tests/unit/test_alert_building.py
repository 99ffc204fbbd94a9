"""Building alerts from scored windows, and the precision guards (pure pandas, no Spark).

Storing them exactly once, the lifecycle and the CLI are in tests/integration/test_alerts.py.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from alert_rows import NOW, RULES, candidates, cost_window

from health_monitor.streaming.alerts import alert_id_for, make_alerts
from health_monitor.streaming.tables import ALERTS

# ------------------------------------------------------------------ building (pure pandas)


def test_detector_alert_summary_severity_and_impact() -> None:
    # 0.85 from the detector alone, no rule hit (under the spike rule's 3x its baseline).
    alerts = candidates(cost_window(13, 150.0, expected=60.0, score=0.85))
    assert len(alerts) == 1
    a = alerts.iloc[0]
    assert a.alert_type == "cost_anomaly" and a.model_name == "cost_online" and a.model_version == "3"
    assert a.deviation_pct == pytest.approx(150.0, abs=0.01)
    assert a.impact_usd == pytest.approx(90.0)
    assert a.summary == ("Workspace ws-prod-01 spent $150 in the hour to 14:00 UTC on Nov 26, 2.5x its usual $60; "
                         "check job nightly_etl (top SKU JOBS_COMPUTE).")
    assert a.severity == "HIGH"
    assert a.evidence[:2] == ["model:cost_online", "zscore_7d=5.2"]
    assert a.alert_id == alert_id_for("workspace", "ws-prod-01", "cost_anomaly", pd.Timestamp("2026-11-26 13:00"))
    assert list(alerts.columns) == ALERTS.column_names
    # The detector alone does not page for spend under double its expected level, nor on a key
    # younger than a week (its expected level is still a guess).
    assert candidates(cost_window(13, 100.0, expected=60.0, score=0.99)).empty
    assert candidates(cost_window(13, 150.0, expected=60.0, score=0.99, history_days=3.0)).empty
    assert len(candidates(cost_window(13, 150.0, expected=60.0, score=0.99, history_days=8.0))) == 1


def test_rule_hits_join_detector_evidence_and_impact_moves_severity() -> None:
    alerts = candidates(
        cost_window(13, 412.0),                      # rule + detector, $292 at risk
        cost_window(13, 12_500.0, workspace="ws-b"),  # $12k at risk: two levels up -> CRITICAL
        cost_window(13, 20.0, expected=4.0, score=0.99, workspace="ws-c"),  # $16: capped
        cost_window(13, 125.0, score=0.3, workspace="ws-d"),  # normal: no alert
    )
    by_ws = alerts.set_index("entity_id")
    assert set(by_ws.index) == {"ws-prod-01", "ws-b", "ws-c"}
    a = by_ws.loc["ws-prod-01"]
    assert a.alert_type == "cost_spike" and a.model_name == "cost_online+rules" and a.severity == "HIGH"
    assert a.evidence[0] == "rule:cost_hourly_spike" and "zscore_7d=5.2" in a.evidence
    assert a.summary.startswith("Workspace ws-prod-01 spent $412 in an hour, 3.4x its 7-day baseline of $120 "
                                "(hour to 14:00 UTC on Nov 26); check job nightly_etl")
    assert by_ws.loc["ws-b"].severity == "CRITICAL"
    assert by_ws.loc["ws-c"].severity == "MEDIUM" and by_ws.loc["ws-c"].alert_type == "cost_anomaly"


def test_security_sensitivity_raises_severity_and_rule_severity_is_a_floor() -> None:
    base = {"entity_type": "user", "workspace_id": "ws1", "window_start": pd.Timestamp("2026-11-26 02:00"),
            "window_end": pd.Timestamp("2026-11-26 03:00"), "value": 1.0, "expected": 0.1,
            "model_name": "user_baseline", "model_version": "1", "evidence": ["read_gb=80"],
            "export_gb": 0.0, "export_count": 0, "self_grants": 0}
    scored = pd.DataFrame([
        {**base, "entity_id": "ann", "user": "ann", "score": 0.7, "sensitivity": "PII"},
        {**base, "entity_id": "bob", "user": "bob", "score": 0.1, "self_grants": 1},
        {**base, "entity_id": "cid", "user": "cid", "score": 0.85, "sensitivity": 0.1},
    ])
    alerts = make_alerts(scored, RULES.evaluate("security", scored), "security", min_score=0.65, now=NOW)
    by_user = alerts.set_index("entity_id")
    assert by_user.loc["ann"].severity == "HIGH"  # MEDIUM score + PII data
    assert by_user.loc["bob"].severity == "CRITICAL" and by_user.loc["bob"].model_name == "rules"
    assert by_user.loc["bob"].summary == ("bob granted themselves permissions 1 time(s) (hour to 03:00 UTC on "
                                          "Nov 26); revoke the grant unless it was approved.")
    assert by_user.loc["cid"].severity == "HIGH" and by_user.loc["cid"].alert_type == "user_behavior_anomaly"
    assert by_user.loc["cid"].summary.startswith("User cid's activity in the hour to 03:00 UTC on Nov 26 is unusual")


def test_empty_inputs() -> None:
    assert make_alerts(pd.DataFrame(), pd.DataFrame(), "cost").empty
    assert list(make_alerts(pd.DataFrame(), pd.DataFrame(), "cost").columns) == ALERTS.column_names


# ------------------------------------------------------------------ precision guards


def test_detector_alone_needs_a_sustained_deviation() -> None:
    # One high window among the key's last three: noise; two: an alert. Frames without the
    # column (callers that do not track it) keep single-window alerts.
    one = candidates(cost_window(13, 150.0, expected=60.0, score=0.9, recent_high_windows=1.0))
    two = candidates(cost_window(13, 150.0, expected=60.0, score=0.9, recent_high_windows=2.0))
    assert one.empty
    assert list(two.alert_type) == ["cost_anomaly"]
    # A rule hit does not need the detector to agree twice.
    spike = candidates(cost_window(13, 412.0, score=0.9, recent_high_windows=1.0))
    assert list(spike.alert_type) == ["cost_spike"]
    # Spend far below its usual level puts no money at risk: no cost alert from the detector alone.
    assert candidates(cost_window(13, 4.0, expected=60.0, score=0.99, recent_high_windows=3.0)).empty


def test_recent_high_windows_spans_micro_batches() -> None:

    from health_monitor.alerts.policy import recent_high
    from health_monitor.streaming import windows

    ks = windows.KeyState("user", "ann")
    assert recent_high(ks.history, np.array([0.9, 0.1])) == [1.0, 1.0]
    # next micro-batch: the state remembers the last windows
    assert recent_high(ks.history, np.array([0.95, 0.2, 0.1, 0.1])) == [2.0, 1.0, 1.0, 0.0]


def test_a_daily_jobs_failures_on_consecutive_days_are_one_incident() -> None:
    from health_monitor.streaming.alerts import fold_alerts

    def streak(day: int, n: int) -> dict:
        start = pd.Timestamp("2026-11-20 03:00") + pd.Timedelta(days=day)
        return {"entity_type": "job", "entity_id": "77", "workspace_id": "ws1", "window_start": start,
                "window_end": start + pd.Timedelta(hours=1), "value": 60.0, "expected": float("nan"),
                "score": 0.1, "model_name": "m", "model_version": "1", "evidence": [],
                "job_name": "nightly", "result_state": "FAILED", "consecutive_failures": float(n),
                "consecutive_failed_runs": float(n), "prior_max_failure_streak": 0.0, "failure_is_final": 1.0}

    scored = pd.DataFrame([streak(0, 3), streak(1, 4), streak(2, 5), streak(5, 3)])
    cands = make_alerts(scored, RULES.evaluate("reliability", scored), "reliability", now=NOW)
    assert len(cands) == 4
    folded = fold_alerts(pd.DataFrame(), cands).sort_values("window_start")
    # 24 h apart: the same continuing streak (a job runs daily); three days later: a new incident
    assert list(folded.occurrences) == [3, 1]


def test_reliability_rules_use_the_jobs_own_history() -> None:
    """Streaks, slow runs and SLA breaches from real window features (windows.py), through the rules."""
    from health_monitor.streaming import windows

    ctx = {"sla": {("ws1", "77"): 3600.0, ("ws1", "79"): 3600.0}}
    rng = np.random.default_rng(3)
    t0 = pd.Timestamp("2026-11-01 02:30")
    # (day, failed, duration s): 12 normal days (~1000 s), a flaky spell of 3 failures, normal,
    # then three slow runs in a row, a breach from a long execution and one after a long wait.
    plan = [(d, False, float(rng.normal(1000, 40))) for d in range(12)]
    plan += [(12, True, 300.0), (13, True, 300.0), (14, True, 300.0), (15, False, 1000.0),
             (16, True, 300.0), (17, True, 300.0), (18, True, 300.0),
             (19, False, 2500.0), (20, False, 2600.0), (21, False, 2700.0), (22, False, 5000.0),
             (23, False, 5000.0)]

    def run(job: str, day: int, failed: bool, dur: float, hour: int = 0, retry: bool = False,
            wait: float = 0.0) -> dict:
        return {"entity_id": job, "workspace_id": "ws1", "event_time": t0 + pd.Timedelta(days=day, hours=hour),
                "run_id": f"{job}-{day}-{hour}", "job_name": "nightly",
                "result_state": "FAILED" if failed else "SUCCEEDED", "is_failure": failed, "is_retry": retry,
                "duration_s": dur, "wait_s": wait, "termination_code": "STORAGE_ACCESS_ERROR" if failed else "SUCCESS"}

    def features(job: str, rows: list[dict]) -> pd.DataFrame:
        ks = windows.KeyState("job", job, workspace_id="ws1")
        windows.accumulate("reliability", ks, pd.DataFrame(rows))
        closed = windows.close_windows("reliability", ks, int((t0 + pd.Timedelta(days=30)).value // 1_000_000), ctx)
        frame = pd.DataFrame([{**c["features"], "entity_type": "job", "entity_id": job, "workspace_id": "ws1",
                               "window_start": pd.Timestamp(c["window_start"], unit="ms"),
                               "window_end": pd.Timestamp(c["window_end"], unit="ms")} for c in closed])
        since = frame["window_start"] - t0.floor("h")  # index: day + hour / 100 after t0
        return frame.set_index(since.dt.days + since.dt.seconds // 3600 / 100)

    by_day = features("77", [run("77", day, failed, dur, wait=1500.0 if day == 23 else 0.0)
                             for day, failed, dur in plan])
    assert by_day.loc[14, "consecutive_failures"] == 3 and by_day.loc[14, "prior_max_failure_streak"] == 0
    # the same job failing three times in a row again is its usual bad spell
    assert by_day.loc[18, "consecutive_failures"] == 3 and by_day.loc[18, "prior_max_failure_streak"] == 3
    assert by_day.loc[19, "duration_z"] > 3 and by_day.loc[21, "slow_run_streak"] == 3
    assert by_day.loc[23, "sla_breach_streak"] == 2
    hits = RULES.evaluate("reliability", by_day.reset_index(drop=True))
    fired = {(by_day.index[r], rule) for r, rule in zip(hits["row"], hits["rule_id"], strict=True)}
    assert (14, "job_failure_streak") in fired and (18, "job_failure_streak") not in fired
    # two slow runs in a row happen by chance; the third is a slowdown that persists
    assert (20, "job_duration_overrun") not in fired and (21, "job_duration_overrun") in fired
    # a daily job's long execution is its usual tail; the same breach after 25 minutes queued is news
    assert by_day.loc[23, "wait_s"] == 1500 and by_day.loc[23, "termination_code"] == "SUCCESS"
    assert (22, "job_sla_breach") not in fired and (23, "job_sla_breach") in fired

    # One run failing with its two retries is one failed run, not a streak. The next run failing is,
    # once its retry failed too: a run that recovers on retry (day 9) was never a failed run.
    rows = [run("78", d, False, 1000.0) for d in range(6)]
    rows += [run("78", 6, True, 300.0), run("78", 6, True, 300.0, hour=1, retry=True),
             run("78", 6, True, 300.0, hour=2, retry=True), run("78", 7, True, 300.0),
             run("78", 7, True, 300.0, hour=1, retry=True), run("78", 8, False, 1000.0),
             run("78", 9, True, 300.0), run("78", 9, False, 1000.0, hour=1, retry=True)]
    other = features("78", rows)
    assert (other.loc[6.02, "consecutive_failures"], other.loc[6.02, "consecutive_failed_runs"]) == (3, 1)
    assert (other.loc[7, "consecutive_failures"], other.loc[7, "consecutive_failed_runs"]) == (4, 2)
    assert (other.loc[7, "failure_is_final"], other.loc[7.01, "failure_is_final"]) == (0, 1)
    assert other.loc[7.01, "termination_code"] == "STORAGE_ACCESS_ERROR"
    hits = RULES.evaluate("reliability", other.reset_index(drop=True))
    assert [other.index[r] for r in hits.loc[hits["rule_id"] == "job_failure_streak", "row"]] == [7.01]

    # A job that never retries: its failed run is final at once; for a job running every 4 hours,
    # three failed runs in a row are a flaky spell, the fourth is a streak.
    rows = [run("80", d, False, 1000.0, hour=h) for d in range(4) for h in range(0, 24, 4)]
    rows += [run("80", 4, True, 300.0, hour=h) for h in range(0, 16, 4)]
    streaky = features("80", rows)
    assert streaky.loc[4.08, "failure_is_final"] == 1 and streaky.loc[4.08, "consecutive_failed_runs"] == 3
    hits = RULES.evaluate("reliability", streaky.reset_index(drop=True))
    assert [streaky.index[r] for r in hits.loc[hits["rule_id"] == "job_failure_streak", "row"]] == [4.12]

    # A job running every 4 hours: one or two runs over the SLA are its usual spread, a third in
    # 24 h is a slowdown that repeats.
    rows = [run("79", d, False, 1000.0, hour=h) for d in range(4) for h in range(0, 24, 4)]
    rows += [run("79", 4, False, 5000.0), run("79", 4, False, 1000.0, hour=4), run("79", 4, False, 3700.0, hour=8),
             run("79", 4, False, 3900.0, hour=12)]
    often = features("79", rows)
    hits = RULES.evaluate("reliability", often.reset_index(drop=True))
    assert often.loc[4.08, "runs_per_day_7d"] > 4 and often.loc[4.08, "sla_breaches_24h"] == 2
    assert [often.index[r] for r in hits.loc[hits["rule_id"] == "job_sla_breach", "row"]] == [4.12]


def test_cost_run_rate_and_key_age_from_window_state() -> None:
    """A workspace's spend rate over its last 7 days, as a month, and its age in days (windows.py)."""
    from collections import deque

    from health_monitor.streaming import windows

    t0 = pd.Timestamp("2026-11-01 00:00")

    def usage(hours: int, cost: float) -> pd.DataFrame:
        times = [t0 + pd.Timedelta(hours=h) for h in range(hours)]
        return pd.DataFrame({"event_time": times, "cost": cost, "dbus": 1.0, "is_tagged": True,
                             "sku_name": "JOBS_COMPUTE", "job_id": None, "job_name": None})

    def close(ks: windows.KeyState, rows: pd.DataFrame) -> pd.DataFrame:
        windows.accumulate("cost", ks, rows)
        wm = int((rows["event_time"].max() + pd.Timedelta(hours=1)).value // 1_000_000)
        return pd.DataFrame([c["features"] for c in windows.close_windows("cost", ks, wm, {})])

    # $10 an hour for 10 days: at that rate November (30 days) costs $7,200.
    feats = close(windows.KeyState("workspace", "ws1", workspace_id="ws1"), usage(240, 10.0))
    assert feats["history_days"].iloc[-1] == pytest.approx(10.0)
    assert feats["run_rate_month_usd"].iloc[-1] == pytest.approx(10.0 * 24 * 30, rel=0.01)
    # Two days old: the rate is judged over its two days; the age says it is young.
    young = close(windows.KeyState("workspace", "ws2", workspace_id="ws2"), usage(48, 10.0))
    assert young["history_days"].iloc[-1] == pytest.approx(2.0)
    assert young["run_rate_month_usd"].iloc[-1] == pytest.approx(7200.0)
    # State kept before the key's age was: dated from its oldest kept hour, not from today.
    old = windows.KeyState("workspace", "ws3", workspace_id="ws3")
    start_ms = int(t0.value // 1_000_000)
    old.history["hourly"] = deque((start_ms - h * windows.HOUR_MS, 10.0) for h in range(240, 0, -1))
    assert close(old, usage(1, 10.0))["history_days"].iloc[-1] == pytest.approx(10.0 + 1 / 24)
