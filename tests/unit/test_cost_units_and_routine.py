"""Issue 12 items 3-4 in pure pandas: job-level cost judged per run against the job's own runs,
weekly patterns, and detector-only alerts whose severity comes from evidence and impact.

The window logic, the default rules and the alert builder run on hand-made input rows (the
columns streaming/sources.py projects); the Spark path is tests/integration/test_routine_and_runaway.py.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from health_monitor.alerts.build import make_alerts
from health_monitor.rules import load_rules
from health_monitor.streaming import windows

RULES = load_rules(None)
T0 = pd.Timestamp("2026-03-02")  # a Monday


def _job_rows(runs: list[tuple[pd.Timestamp, float, int]], job: str = "77") -> pd.DataFrame:
    """Usage rows of one job: per run (start, cost per hour, hours), one row per hour."""
    rows = []
    for i, (start, per_hour, hours) in enumerate(runs):
        for h in range(hours):
            rows.append({"event_time": start + pd.Timedelta(hours=h, minutes=5), "workspace_id": "ws1",
                         "cost": per_hour, "dbus": per_hour * 2, "sku_name": "JOBS_COMPUTE", "job_id": job,
                         "job_name": "nightly_etl", "is_tagged": True, "job_run_id": f"{job}-run{i}",
                         "entity_type": "job"})
    return pd.DataFrame(rows)


def _frame(rows: pd.DataFrame, entity_type: str = "job", entity_id: str = "77") -> pd.DataFrame:
    """Every window of one key closed, as the rule frame (features spread into columns)."""
    ks = windows.KeyState(entity_type, entity_id)
    windows.accumulate("cost", ks, rows)
    end = int((rows["event_time"].max() + pd.Timedelta(hours=2)).value // 1_000_000)
    out = []
    for c in windows.close_windows("cost", ks, end, {}):
        out.append({**c["features"], "entity_type": entity_type, "entity_id": entity_id, "workspace_id": "ws1",
                    "window_start": pd.Timestamp(c["window_start"], unit="ms"),
                    "window_end": pd.Timestamp(c["window_end"], unit="ms"), "value": c["value"]})
    return pd.DataFrame(out)


def _hits(frame: pd.DataFrame) -> pd.DataFrame:
    hits = RULES.evaluate("cost", frame)
    return hits.assign(window_start=frame["window_start"].to_numpy()[hits["row"].to_numpy()])


def _daily(days: int, rng: np.random.Generator, per_hour: float = 20.0) -> list:
    # a daily run at 02:00, two hours, its cost varying run to run like real jobs (lognormal, 30%)
    return [(T0 + pd.Timedelta(days=d, hours=2), per_hour * float(rng.lognormal(0, 0.3)), 2) for d in range(days)]


def test_a_runaway_run_alerts_within_hours_and_natural_variation_does_not() -> None:
    rng = np.random.default_rng(3)
    normal = _daily(30, rng)
    runaway_start = T0 + pd.Timedelta(days=30, hours=2)
    rows = _job_rows(normal + [(runaway_start, 15 * 20.0, 6)])
    hits = _hits(_frame(rows))
    assert not (hits["window_start"] < runaway_start).any(), "natural run-to-run variation alerted"
    runaway = hits[hits["alert_type"] == "runaway_cost"]
    assert not runaway.empty
    assert runaway["window_start"].min() <= runaway_start + pd.Timedelta(hours=1)
    assert "Job nightly_etl (77) has cost" in runaway["message"].iloc[0]


def test_a_frequent_job_whose_runs_all_cost_more_alerts_once_it_lasts() -> None:
    # four runs a day; from day 12 every run costs 3x: no single run is extreme, three in a row are
    rng = np.random.default_rng(5)
    runs = [(T0 + pd.Timedelta(hours=6 * i), 10.0 * float(rng.lognormal(0, 0.3)) * (3 if i >= 48 else 1), 1)
            for i in range(60)]
    hits = _hits(_frame(_job_rows(runs)))
    assert set(hits["rule_id"]) == {"cost_runaway_sustained"}
    assert hits["window_start"].min() >= T0 + pd.Timedelta(hours=6 * 48)
    assert hits["window_start"].min() <= T0 + pd.Timedelta(hours=6 * 51)


def test_a_new_job_is_quiet_on_its_first_runs_unless_they_are_expensive() -> None:
    cheap = _job_rows([(T0 + pd.Timedelta(days=d), 60.0, 2) for d in range(3)])
    assert _hits(_frame(cheap)).empty
    costly = _job_rows([(T0, 600.0, 3)], job="78")
    hits = _hits(_frame(costly, entity_id="78"))
    assert list(hits["rule_id"].unique()) == ["cost_new_key_expensive"]


def test_a_warehouse_is_judged_per_day_against_days_of_its_kind() -> None:
    # busy weekdays ($200/day over 10 hours), quiet weekends ($20): a Monday is not a spike
    rows = []
    for d in range(35):
        day = T0 + pd.Timedelta(days=d)
        per_hour = 2.0 if day.dayofweek >= 5 else 20.0
        for h in range(8, 18):
            rows.append({"event_time": day + pd.Timedelta(hours=h), "workspace_id": "ws1", "cost": per_hour,
                         "dbus": per_hour, "sku_name": "SERVERLESS_SQL", "job_id": None, "job_name": None,
                         "is_tagged": True, "job_run_id": None, "entity_type": "warehouse"})
    frame = _frame(pd.DataFrame(rows), "warehouse", "wh1")
    assert set(frame["unit_name"]) == {"day"}
    assert _hits(frame).empty
    last_week = frame[frame["window_start"] >= T0 + pd.Timedelta(days=28)]
    weekend = last_week["window_start"].dt.dayofweek >= 5
    assert set(last_week.loc[~weekend, "typical_unit_usd"]) == {200.0}
    assert set(last_week.loc[weekend, "typical_unit_usd"]) == {20.0}


def _user_rows(slots: list[pd.Timestamp], per_hour: int = 9) -> pd.DataFrame:
    rows = [{"source": "audit", "event_time": t + pd.Timedelta(minutes=m), "workspace_id": "ws1",
             "ip": "10.0.0.1", "is_login": m == 0, "is_failed": False, "is_admin": False, "is_grant": False,
             "is_self_grant": False, "is_export": False, "export_bytes": None, "table_name": None,
             "is_read": None, "is_sensitive": None, "statement_id": None, "read_bytes": None}
            for t in slots for m in range(per_hour)]
    return pd.DataFrame(rows)


def _sec_frame(slots: list[pd.Timestamp]) -> pd.DataFrame:
    ks = windows.KeyState("user", "ann@corp.com")
    windows.accumulate("security", ks, _user_rows(slots))
    end = int((max(slots) + pd.Timedelta(hours=2)).value // 1_000_000)
    closed = windows.close_windows("security", ks, end, {})
    return pd.DataFrame([{**c["features"], "window_start": pd.Timestamp(c["window_start"], unit="ms")}
                         for c in closed])


def test_weekend_work_that_recurs_becomes_part_of_the_users_pattern() -> None:
    weekdays = [T0 + pd.Timedelta(days=d, hours=h) for d in range(28) if d % 7 < 5 for h in range(9, 17)]
    saturdays = [T0 + pd.Timedelta(days=d, hours=h) for d in range(5, 28, 7) for h in (10, 11, 12)]
    night = [T0 + pd.Timedelta(days=26, hours=3)]  # a Saturday 03:00: never worked then
    f = _sec_frame(sorted(weekdays + saturdays + night)).set_index("window_start")
    # the first Saturday is outside a weekday worker's pattern; the fourth is routine
    assert f.loc[saturdays[0], "off_pattern_events"] == 9
    assert f.loc[saturdays[-1], "off_pattern_events"] == 0
    assert f.loc[saturdays[-1], "weekend_events"] == 9  # still there for rules that want it
    assert f.loc[night[0], "off_pattern_events"] == 9


def _detector_only(drivers: str, **feats: float) -> pd.DataFrame:
    return pd.DataFrame([{"entity_type": "user", "entity_id": "ann", "user": "ann", "workspace_id": "ws1",
                          "window_start": pd.Timestamp("2026-11-07 14:00"),
                          "window_end": pd.Timestamp("2026-11-07 15:00"), "value": 0.0, "expected": 0.0,
                          "score": 1.0, "model_name": "multivariate_robust_hst", "model_version": "3",
                          "evidence": ["weekend_events 9 vs baseline 0.36 (z=+10.6)"],
                          "detector_drivers": drivers, "export_gb": 0.0, "self_grants": 0.0, "grants": 0.0,
                          "sensitive_table_access": 0.0, "failed_logins": 0.0, **feats}])


def test_one_sparse_count_never_makes_an_alert_critical_and_the_summary_says_why() -> None:
    routine = make_alerts(_detector_only("weekend_events"), pd.DataFrame(), "security").iloc[0]
    assert routine["alert_type"] == "user_behavior_anomaly"
    assert routine["severity"] == "LOW"
    assert "weekend_events 9 against a usual 0.36" in routine["summary"]
    assert "one signal (weekend_events)" in routine["summary"]
    assert "nothing exported, granted or sensitive at stake" in routine["summary"]
    # several signals, nothing at stake: MEDIUM; one signal with data leaving: HIGH
    assert make_alerts(_detector_only("logins,distinct_ips"), pd.DataFrame(), "security").iloc[0]["severity"] \
        == "MEDIUM"
    assert make_alerts(_detector_only("export_gb", export_gb=40.0), pd.DataFrame(), "security").iloc[0][
        "severity"] == "HIGH"
    exfil = make_alerts(_detector_only("export_gb,read_gb", export_gb=40.0), pd.DataFrame(), "security").iloc[0]
    assert exfil["severity"] == "CRITICAL" and "40.0 GB exported" in exfil["summary"]
