"""Issue 12 items 3-4 through the real streams: a planted runaway job alerts within hours, routine
weekend work raises nothing CRITICAL.

A hand-written three-week estate in the Gold shapes (``fact_usage`` with usage_metadata's job,
run and warehouse ids; ``fact_audit_events``), appended to Delta and streamed by the cost and
security queries (real Spark, Delta, state store). Small on purpose: two queries, a few
micro-batches.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd

from health_monitor.runtime import Lakehouse
from health_monitor.streaming import engine, recording

T0 = datetime(2026, 3, 2)  # a Monday
DAYS = 21
RUNAWAY = T0 + timedelta(days=DAYS - 1, hours=2)  # the last day's run costs 15x


def _ts(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.000000Z")


def _usage(t: datetime, cost: float, n: int, **md: str) -> dict:
    return {"record_id": f"u{n}", "account_id": "acc", "workspace_id": "1001", "sku_name": md.pop("sku"),
            "cloud": "AWS", "usage_start_time": _ts(t), "usage_end_time": _ts(t + timedelta(hours=1)),
            "usage_date": t.date().isoformat(), "usage_unit": "DBU", "usage_quantity": round(cost * 2, 6),
            "record_type": "ORIGINAL", "list_price": 0.5, "list_cost": round(cost, 6), "is_tagged": True, **md}


def _usage_rows() -> list[dict]:
    rnd = random.Random(7)
    rows = []
    for d in range(DAYS):
        day = T0 + timedelta(days=d)
        # nightly_etl: one two-hour run a day at 02:00, ~$40 an hour, varying 30% run to run
        run = day + timedelta(hours=2)
        per_hour = 40.0 * rnd.lognormvariate(0, 0.3)
        hours = 2
        if run == RUNAWAY:  # the cluster scaled out and the run does not finish: 15x its usual
            per_hour, hours = 300.0, 4
        for h in range(hours):
            rows.append(_usage(run + timedelta(hours=h), per_hour, len(rows), sku="JOBS_COMPUTE", job_id="501",
                               job_name="nightly_etl", usage_metadata_job_run_id=f"r{d}", job_id_source="BILLING"))
        # a SQL warehouse busy in the afternoon on weekdays, a little used at weekends
        for h in (14, 16) if day.weekday() < 5 else (15,):
            rows.append(_usage(day + timedelta(hours=h), (30.0 if day.weekday() < 5 else 3.0) * rnd.uniform(0.8, 1.2),
                               len(rows), sku="SERVERLESS_SQL_COMPUTE", warehouse_id="wh-1"))
    return rows


def _audit_rows() -> list[dict]:
    """ann works weekdays and, routinely, Saturday mornings; bob works weekdays and, once, on a
    Saturday afternoon in the third week (hourly activity every other weekday hour keeps the
    estate small). Nothing is exported, granted or sensitive."""
    rnd = random.Random(11)
    rows = []

    def act(user: str, t: datetime, n: int) -> None:
        for i in range(n):
            rows.append({"event_id": f"e{len(rows)}", "account_id": "acc", "workspace_id": "1001",
                         "event_time": _ts(t + timedelta(minutes=rnd.randint(0, 59), seconds=i)),
                         "event_date": t.date().isoformat(), "source_ip_address": "10.1.2.3",
                         "user_email": user, "subject_name": user, "run_by": user,
                         "service_name": "notebook", "action_name": "runCommand", "status_code": 200,
                         "is_failed": False})

    for d in range(DAYS):
        day = T0 + timedelta(days=d)
        if day.weekday() < 5:
            for h in range(9, 17, 2):
                act("ann@corp.com", day + timedelta(hours=h), rnd.randint(2, 4))
                act("bob@corp.com", day + timedelta(hours=h + 1), rnd.randint(2, 4))
        elif day.weekday() == 5:
            for h in (9, 10, 11):
                act("ann@corp.com", day + timedelta(hours=h), 9)
            if d >= 14:
                for h in (14, 15, 16):
                    act("bob@corp.com", day + timedelta(hours=h), 9)
    return rows


def _append(lake: Lakehouse, table: str, rows: list[dict], tmp: Path) -> None:
    path = tmp / f"{table}.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    recording.append_in_order(lake, table, recording.read_rows(lake, table, path))


def test_runaway_job_alerts_within_hours_and_routine_weekend_work_is_never_critical(lake, tmp_path) -> None:
    _append(lake, "fact_usage", _usage_rows(), tmp_path)
    _append(lake, "fact_audit_events", _audit_rows(), tmp_path)
    engine.run_available_now(lake, ["cost", "security"], shuffle_partitions=2)

    alerts = lake.read("alerts", "monitor").toPandas()
    runaway = alerts[(alerts["entity_type"] == "job") & (alerts["entity_id"] == "501")]
    assert list(runaway["alert_type"].unique()) == ["runaway_cost"], alerts[["alert_type", "entity_id", "summary"]]
    first = runaway["window_start"].min()
    assert RUNAWAY <= first <= RUNAWAY + timedelta(hours=2), "the runaway run alerts within hours of its start"
    assert "Job nightly_etl (501) has cost" in runaway.sort_values("window_start")["summary"].iloc[0]
    # the job's natural run-to-run variation and the warehouse's weekly rhythm are not alerts
    assert not ((alerts["domain"] == "cost") & (alerts["window_start"] < pd.Timestamp(RUNAWAY))).any()
    # routine weekend work: nothing CRITICAL, and whatever the detector says alone is LOW
    security = alerts[alerts["domain"] == "security"]
    assert not (security["severity"] == "CRITICAL").any(), security[["entity_id", "severity", "summary"]]
    assert set(security["severity"]) <= {"LOW"}, security[["entity_id", "severity", "summary"]]
