"""Replay: shipped recordings of incidents through the real streaming queries, alerts as expected.

Each recording under tests/recordings/ was cut from a simulated estate around one injected
incident (tests/recordings/cut_recordings.py). Its expected_alerts.json was reviewed to contain
an alert on the incident's entity during the incident; the test checks both that the replay
reproduces exactly those alerts (as a set) and that they still cover the incident.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
import pytest

from health_monitor.errors import HealthMonitorError
from health_monitor.streaming import replay as rp
from health_monitor.streaming.recording import load_recording

RECORDINGS = Path(__file__).parents[1] / "recordings"
NAMES = sorted(p.parent.name for p in RECORDINGS.glob("*/manifest.json"))


def test_at_least_five_incident_types_are_recorded():
    types = {load_recording(RECORDINGS / n).incident_type for n in NAMES}
    assert len(types) >= 5, types


def test_every_recording_has_reviewed_alerts_covering_its_incident():
    """Cheap check (no Spark) that runs with the fast suite: the slow replay below compares them."""
    for name in NAMES:
        rec = load_recording(RECORDINGS / name)
        expected = rp.expected_alerts(rec)
        assert expected, f"{name}: no reviewed expected_alerts.json"
        assert _covers_incident(expected, rec.meta["incident"]), f"{name}: expected alerts miss the incident"


def _covers_incident(alerts: set[tuple], incident: dict) -> bool:
    start = pd.Timestamp(incident["start"]) - pd.Timedelta(hours=6)
    end = pd.Timestamp(incident["end"]) + pd.Timedelta(hours=6)
    keys = {incident["entity_id"], f"{incident['workspace_id']}:{incident['entity_id']}"}
    if incident["domain"] == "cost":
        keys.add(incident["workspace_id"])  # a job's runaway cost is its workspace's cost
    return any(eid in keys and pd.Timestamp(ws) < end and pd.Timestamp(we) > start
               for _, _, eid, ws, we in alerts)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_replay_produces_the_expected_alerts(name, spark):  # noqa: ANN001 - spark: shared session
    rec = load_recording(RECORDINGS / name)
    expected = rp.expected_alerts(rec)
    # Every shipped recording carries reviewed alerts: a new one without them fails here.
    assert expected is not None, f"{name}: no expected_alerts.json (replay --write-expected, review, commit)"
    assert expected, f"{name} has no expected alerts"
    assert _covers_incident(expected, rec.meta["incident"]), "expected alerts must cover the incident"
    result = rp.replay(rec.path)
    assert rp.alert_identities(result.alerts) == expected


def test_replay_cli_prints_alerts_and_checks_them(spark, capsys, tmp_path):  # noqa: ANN001
    from health_monitor.cli import Context
    from health_monitor.cli.replay import run
    from health_monitor.settings import load_settings

    checked = [n for n in NAMES if (RECORDINGS / n / "expected_alerts.json").exists()]
    if not checked:
        pytest.skip("no recording has a reviewed expected_alerts.json yet")
    name = checked[0]
    args = argparse.Namespace(recording=str(RECORDINGS / name), chunks=1, keep=None, check=True,
                              write_expected=False)
    assert run(args, Context(load_settings(tmp_path / "hm"))) == 0
    out = capsys.readouterr().out
    assert "alerts match expected_alerts.json" in out
    assert "severity" in out and "summary" in out


def test_bad_recordings_are_one_line_errors(tmp_path):
    with pytest.raises(HealthMonitorError, match="no manifest.json"):
        load_recording(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"tables": {"fact_nothing": "x.jsonl"}}))
    with pytest.raises(HealthMonitorError, match="unknown Gold table"):
        load_recording(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"tables": {"fact_usage": "missing.jsonl"}}))
    with pytest.raises(HealthMonitorError, match="missing"):
        load_recording(tmp_path)
