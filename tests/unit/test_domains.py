"""Every domain is one DomainSpec, and what a spec documents is what the stream produces.

Pure pandas: the window logic and the scorer run on hand-made input rows (the columns the
Spark projections in streaming/sources.py produce), no Spark.
"""

from __future__ import annotations

import pandas as pd
import pytest

from health_monitor import catalog, rules
from health_monitor.domains import DOMAINS, SPECS, STREAM_DOMAINS, spec
from health_monitor.rules.columns import COMMON_COLUMNS
from health_monitor.streaming import windows
from health_monitor.streaming.evaluate import STREAM_INCIDENT_TYPES
from health_monitor.streaming.scoring import score_windows
from health_monitor.streaming.sink import expand_scored

START = pd.Timestamp("2026-11-02 00:00")
HOURS = 30


def _cost_rows() -> pd.DataFrame:
    t = [START + pd.Timedelta(minutes=20 * i) for i in range(3 * HOURS)]
    return pd.DataFrame({"event_time": t, "workspace_id": "ws1", "cost": 4.0, "dbus": 10.0,
                         "sku_name": "JOBS_COMPUTE", "job_id": ["j1", None] * (len(t) // 2),
                         "job_name": ["nightly", None] * (len(t) // 2),
                         "is_tagged": [True, False, True] * (len(t) // 3), "record_id": range(len(t)),
                         "job_run_id": [f"r{i // 6}" for i in range(len(t))]})


def _security_rows() -> pd.DataFrame:
    rows = []
    for h in range(HOURS):
        t = START + pd.Timedelta(hours=h, minutes=5)
        rows.append({"source": "audit", "event_time": t, "workspace_id": "ws1", "ip": f"10.0.0.{h % 3}",
                     "is_login": True, "is_failed": h % 7 == 0, "is_admin": h % 5 == 0, "is_grant": h % 9 == 0,
                     "is_self_grant": False, "is_export": h % 4 == 0, "export_bytes": 2e6,
                     "table_name": None, "is_read": False, "is_sensitive": False, "statement_id": None,
                     "read_bytes": None})
        rows.append({"source": "lineage", "event_time": t, "workspace_id": "ws1", "ip": None,
                     "is_login": False, "is_failed": False, "is_admin": False, "is_grant": False,
                     "is_self_grant": False, "is_export": False, "export_bytes": None,
                     "table_name": "main.hr.employees_pii", "is_read": True, "is_sensitive": True,
                     "statement_id": f"s{h}", "read_bytes": 5e7})
    return pd.DataFrame(rows)


def _reliability_rows() -> pd.DataFrame:
    t = [START + pd.Timedelta(hours=h, minutes=30) for h in range(HOURS)]
    return pd.DataFrame({"event_time": t, "workspace_id": "ws1", "run_id": [f"r{i}" for i in range(len(t))],
                         "job_name": "nightly", "result_state": ["FAILED" if i % 6 == 5 else "SUCCEEDED"
                                                                 for i in range(len(t))],
                         "is_failure": [i % 6 == 5 for i in range(len(t))], "is_retry": False,
                         "duration_s": 600.0, "wait_s": 5.0, "termination_code": "SUCCESS"})


ROWS = {"cost": (_cost_rows, "workspace", "ws1"), "security": (_security_rows, "user", "ann@corp.com"),
        "reliability": (_reliability_rows, "job", "j1")}
CTX = {"cost": {"budgets": {"ws1": 5000.0}}, "security": {},
       "reliability": {"sla": {("ws1", "j1"): 900.0}}}


def _window_frame(domain: str) -> pd.DataFrame:
    """The frame rules see: the domain's windows closed, scored and expanded like the sink does
    (cost: a workspace key and a job key, whose features differ)."""
    make, entity_type, entity_id = ROWS[domain]
    frame = _key_frame(domain, make(), entity_type, entity_id)
    if domain == "cost":
        rows = make().dropna(subset=["job_id"]).assign(entity_type="job")
        frame = pd.concat([frame, _key_frame(domain, rows, "job", "j1")], ignore_index=True)
    return frame


def _key_frame(domain: str, rows: pd.DataFrame, entity_type: str, entity_id: str) -> pd.DataFrame:
    ks = windows.KeyState(entity_type, entity_id)
    windows.accumulate(domain, ks, rows)
    closed = windows.close_windows(domain, ks, int((START + pd.Timedelta(hours=HOURS + 1)).value // 1_000_000),
                                   CTX[domain])
    scored = score_windows(domain, ks, closed, {"models": (), "registry_uri": None, **CTX[domain]})
    return expand_scored(scored.assign(kind="score"))


def test_one_domains_list_everywhere() -> None:
    assert catalog.DOMAINS == rules.DOMAINS == DOMAINS == tuple(s.name for s in SPECS)
    assert set(STREAM_DOMAINS) == set(STREAM_INCIDENT_TYPES) == set(ROWS)
    with pytest.raises(KeyError, match="unknown domain"):
        spec("weather")


@pytest.mark.parametrize("domain", STREAM_DOMAINS)
def test_every_documented_rule_column_is_produced(domain: str) -> None:
    frame = _window_frame(domain)
    assert len(frame) >= 24
    documented = set(COMMON_COLUMNS) | set(spec(domain).rule_columns)
    missing = sorted(documented - set(frame.columns))
    assert not missing, f"{domain}: documented rule columns the stream never produces: {missing}"


@pytest.mark.parametrize("domain", STREAM_DOMAINS)
def test_detector_comes_from_the_registry_and_judges_window_features(domain: str) -> None:
    from health_monitor.detectors.registry import DETECTORS

    dom = spec(domain)
    det = dom.make_detector()
    assert type(det) in DETECTORS.values()
    frame = _window_frame(domain)
    assert set(dom.detector_features) <= set(frame.columns)
