"""Alerts in Delta: de-duplicating into monitor.alerts exactly once, lifecycle, CLI (building them:
tests/unit/test_alert_building.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import datetime

import numpy as np
import pandas as pd
import pytest
from alert_rows import NOW, RULES, candidates, cost_window

from health_monitor.alerts import store
from health_monitor.alerts.store import _CONSTRAINT_CHECK
from health_monitor.cli import Context, build_parser
from health_monitor.errors import HealthMonitorError, TableBusyError
from health_monitor.streaming.alerts import (
    ack_alert,
    alert_id_for,
    alert_status,
    apply_alerts,
    make_alerts,
    resolve_alert,
)
from health_monitor.streaming.tables import ALERTS

# ------------------------------------------------------------------ applying (real Delta)


def _table(lake) -> pd.DataFrame:  # noqa: ANN001
    return lake.read("alerts", "monitor").toPandas().sort_values("alert_id", ignore_index=True)


def _last_write_mode(lake) -> str:  # noqa: ANN001
    """How the alerts table's newest commit wrote: Append (new incidents only) or Overwrite."""
    row = lake.spark.sql(f"DESCRIBE HISTORY delta.`{lake.location('alerts', 'monitor')}` LIMIT 1").first()
    return row["operationParameters"]["mode"]


def test_continuing_incident_updates_one_row_and_replay_is_a_no_op(lake) -> None:  # noqa: ANN001
    # Batch 0: two consecutive windows in one micro-batch fold into one alert.
    assert apply_alerts(lake, candidates(cost_window(13, 412.0), cost_window(14, 300.0)), 0, "app-a") == 1
    assert _last_write_mode(lake) == "Append"  # a new incident: no rows to replace
    first = _table(lake)
    assert len(first) == 1 and first.occurrences[0] == 2
    alert_id = first.alert_id[0]
    assert alert_id == alert_id_for("workspace", "ws-prod-01", "cost_spike", pd.Timestamp("2026-11-26 13:00"))

    # Batch 1: the incident continues 3 h later (inside the 6 h gap) and gets worse.
    batch1 = candidates(cost_window(17, 13_000.0, score=0.97))
    assert apply_alerts(lake, batch1, 1, "app-a") == 1
    assert _last_write_mode(lake) == "Overwrite"  # replaceWhere on the continued incident's id
    after = _table(lake)
    assert len(after) == 1
    row = after.iloc[0]
    assert row.alert_id == alert_id and row.occurrences == 3
    assert row.window_start == pd.Timestamp("2026-11-26 13:00") and row.window_end == pd.Timestamp("2026-11-26 18:00")
    assert row.severity == "CRITICAL" and row.score == pytest.approx(0.97)
    assert row.detected_at == first.detected_at[0]

    # The stream crashed after the commit and replays batch 1: nothing changes at all.
    assert apply_alerts(lake, batch1, 1, "app-a") == 0
    pd.testing.assert_frame_equal(_table(lake), after)

    # A new incident after a quiet gap, and another alert type on the same entity, open new rows.
    later = candidates(cost_window(30, 500.0), cost_window(30, 5.0, expected=5.0, score=0.1,
                                                           untagged_cost_pct=0.0))
    budget = pd.DataFrame([cost_window(31, 100.0, score=0.1, mtd_cost_usd=9000.0, month_elapsed_frac=0.5,
                                       budget_usd=10_000.0, run_rate_month_usd=18_000.0, history_days=30.0)])
    later = pd.concat([later, make_alerts(budget, RULES.evaluate("cost", budget), "cost", now=NOW)])
    assert apply_alerts(lake, later, 2, "app-a") == 2
    assert _last_write_mode(lake) == "Append"
    final = _table(lake)
    assert sorted(final.alert_type) == ["budget_burn", "cost_spike", "cost_spike"]
    assert final.alert_id.is_unique
    # Another query (its own app id) starting its own batch 0 is not mistaken for a replay.
    other = candidates(cost_window(13, 412.0, workspace="ws-other"))
    assert apply_alerts(lake, other, 0, "app-b") == 1
    assert len(_table(lake)) == 4

    # The table is dropped and recreated (a reset): no incident carries over from memory.
    lake.delete_table("alerts", "monitor")
    assert apply_alerts(lake, candidates(cost_window(18, 500.0)), 0, "app-c") == 1
    reset = _table(lake)
    assert len(reset) == 1 and reset.occurrences[0] == 1
    assert reset.window_start[0] == pd.Timestamp("2026-11-26 18:00")


def test_a_replayed_batch_of_many_continued_and_new_incidents_writes_nothing_twice(lake) -> None:  # noqa: ANN001
    # Batch 0 opens 30 incidents; batch 1 continues all of them and opens 10 more in one
    # replaceWhere commit, written without Delta's per-row check of the ids (a session conf
    # set for that write only).
    first = [cost_window(13, 412.0, workspace=f"ws-{i:02d}") for i in range(30)]
    assert apply_alerts(lake, candidates(*first), 0, "app-many") == 30
    assert lake.spark.conf.get(_CONSTRAINT_CHECK, None) is None
    batch1 = candidates(*[cost_window(15, 900.0, workspace=f"ws-{i:02d}") for i in range(40)])
    assert apply_alerts(lake, batch1, 1, "app-many") == 40
    assert _last_write_mode(lake) == "Overwrite"
    assert lake.spark.conf.get(_CONSTRAINT_CHECK, None) is None  # the session's conf is restored
    after = _table(lake)
    assert len(after) == 40 and after.alert_id.is_unique
    assert sorted(after.occurrences.value_counts().items()) == [(1, 10), (2, 30)]
    # The stream crashed after the commit and replays batch 1: no row is written again.
    version = lake.latest_version("alerts", "monitor")
    assert apply_alerts(lake, batch1, 1, "app-many") == 0
    assert lake.latest_version("alerts", "monitor") == version
    pd.testing.assert_frame_equal(_table(lake), after)
    # A conf the session already had is put back as it was.
    lake.spark.conf.set(_CONSTRAINT_CHECK, "true")
    try:
        assert apply_alerts(lake, candidates(cost_window(16, 950.0, workspace="ws-00")), 2, "app-many") == 1
        assert lake.spark.conf.get(_CONSTRAINT_CHECK) == "true"
    finally:
        lake.spark.conf.unset(_CONSTRAINT_CHECK)
    assert _table(lake).set_index("alert_id").loc[after.alert_id[after.workspace_id == "ws-00"].iloc[0],
                                                      "occurrences"] == 3


def test_alert_rows_reach_spark_through_arrow_as_they_did_as_tuples(spark) -> None:  # noqa: ANN001
    # Folded rows as apply_alerts writes them: new candidates (naive timestamps, lists) and
    # incidents read back from Delta (numpy evidence), NaN and None where a value is missing.
    rows = store.fold_alerts(pd.DataFrame(columns=ALERTS.column_names), candidates(
        cost_window(13, 412.0), cost_window(13, 900.0, workspace="ws-b"), cost_window(20, 500.0, workspace="ws-c")))
    assert len(rows) == 3
    rows["evidence"] = [np.array(["rule:x", "zscore_7d=5.2"], dtype=object), *rows["evidence"][1:]]
    rows["workspace_id"] = [rows["workspace_id"][0], None, rows["workspace_id"][2]]
    rows["deviation_pct"] = [rows["deviation_pct"][0], np.nan, rows["deviation_pct"][2]]
    rows["impact_usd"] = [rows["impact_usd"][0], None, rows["impact_usd"][2]]
    rows["detected_at"] = [pd.Timestamp("2026-11-26 14:00:00.123456", tz="Europe/Paris")] * len(rows)
    rows["last_seen_at"] = [rows["last_seen_at"][0], rows["last_seen_at"][1], None]
    want = spark.createDataFrame(store._to_spark_rows(rows), ALERTS.schema).collect()
    got = spark.createDataFrame(store._to_arrow(rows), ALERTS.schema).collect()
    assert [r.asDict() for r in got] == [r.asDict() for r in want]
    assert got[1].workspace_id is None and got[1].deviation_pct is None and got[2].last_seen_at is None
    assert got[0].detected_at == datetime(2026, 11, 26, 13, 0, 0, 123456)  # the UTC instant
    assert got[0].evidence == ["rule:x", "zscore_7d=5.2"]


LOCK_HOLDER = textwrap.dedent("""
    import sys
    from health_monitor.runtime import Lakehouse
    from health_monitor.settings import load_settings
    lake = Lakehouse(load_settings(sys.argv[1]))
    with lake.writer_lock("alerts", "monitor"):
        print("locked", flush=True)
        sys.stdin.readline()
""")


def test_lifecycle_from_another_process_while_the_stream_holds_the_alerts_table(lake) -> None:  # noqa: ANN001
    apply_alerts(lake, candidates(cost_window(13, 412.0), cost_window(13, 900.0, workspace="ws-b")), 0, "app")
    ids = sorted(_table(lake).alert_id)
    # A second process (standing in for the running stream) holds the alerts table's writer lock.
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(lake.settings.data_dir)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(TableBusyError):
            apply_alerts(lake, candidates(cost_window(14, 500.0)), 1, "app")
        # A person's actions go to their own table, so they never wait for the stream.
        assert ack_alert(lake, ids[0][:8], actor="oncall", note="looking") == ids[0]
        assert resolve_alert(lake, ids[1], actor="oncall") == ids[1]
    finally:
        holder.communicate("\n", timeout=60)
    status = {r["alert_id"]: r for r in alert_status(lake).collect()}
    assert status[ids[0]]["status"] == "ACKED" and status[ids[0]]["status_note"] == "looking"
    assert status[ids[1]]["status"] == "RESOLVED" and status[ids[1]]["status_actor"] == "oncall"
    with pytest.raises(HealthMonitorError, match="is ACKED: cannot change it to ACKED"):
        ack_alert(lake, ids[0])
    with pytest.raises(HealthMonitorError, match="is RESOLVED: cannot change it to ACKED"):
        ack_alert(lake, ids[1])
    with pytest.raises(HealthMonitorError, match="unknown alert id 'ffffffffff'"):
        resolve_alert(lake, "ffffffffff")
    with pytest.raises(HealthMonitorError, match="too short"):
        ack_alert(lake, "ab")
    assert resolve_alert(lake, ids[0]) == ids[0]
    # The incident keeps going after it was resolved: the status view says so.
    later = make_alerts(pd.DataFrame([cost_window(14, 500.0)]),
                        RULES.evaluate("cost", pd.DataFrame([cost_window(14, 500.0)])), "cost")
    apply_alerts(lake, later, 1, "app")
    status = {r["alert_id"]: r for r in alert_status(lake).collect()}
    continued = [i for i in ids if status[i]["occurrences"] == 2]
    assert len(continued) == 1 and status[continued[0]]["updated_since_status"]


def _cli(lake, *argv: str) -> int:  # noqa: ANN001
    args = build_parser().parse_args(list(argv))
    ctx = Context(settings=lake.settings)
    ctx.__dict__["lake"] = lake  # share the test's lakehouse instead of opening another
    return args.func(args, ctx)


def test_cli_list_ack_export(lake, capsys, tmp_path) -> None:  # noqa: ANN001
    assert _cli(lake, "alerts", "list") == 0
    assert "no alerts yet" in capsys.readouterr().out
    sec = pd.DataFrame([{
        "entity_type": "user", "entity_id": "eve", "user": "eve", "workspace_id": "ws1",
        "window_start": pd.Timestamp("2026-11-26 02:00"), "window_end": pd.Timestamp("2026-11-26 03:00"),
        "value": 1.0, "expected": 0.0, "score": 0.2, "model_name": "m", "model_version": "1", "evidence": [],
        "export_gb": 42.0, "export_count": 2}])
    batch = pd.concat([candidates(cost_window(13, 412.0)),
                       make_alerts(sec, RULES.evaluate("security", sec), "security", now=NOW)])
    apply_alerts(lake, batch, 0, "cli-app")
    assert _cli(lake, "alerts", "list", "--domain", "security") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["id", "severity", "status"] and len(out) == 2
    assert "data_exfiltration" in out[1] and "eve exported 42.0 GB" in out[1] and "OPEN" in out[1]
    sec_id = _table(lake).set_index("domain").loc["security", "alert_id"]
    assert _cli(lake, "alerts", "ack", sec_id[:10], "--note", "called eve") == 0
    assert capsys.readouterr().out.strip() == f"{sec_id} ACKED"
    assert _cli(lake, "alerts", "list", "--status", "ACKED") == 0
    assert sec_id[:12] in capsys.readouterr().out
    out_json, out_csv = tmp_path / "a.json", tmp_path / "a.csv"
    assert _cli(lake, "alerts", "export", "--format", "json", "--output", str(out_json)) == 0
    records = json.loads(out_json.read_text())
    assert {r["alert_id"]: r["status"] for r in records} == {
        sec_id: "ACKED", _table(lake).set_index("domain").loc["cost", "alert_id"]: "OPEN"}
    assert all(isinstance(r["evidence"], list) and r["summary"] for r in records)
    assert _cli(lake, "alerts", "export", "--format", "csv", "--output", str(out_csv), "--severity", "HIGH") == 0
    csv = pd.read_csv(out_csv)
    assert len(csv) == 2 and set(csv.severity) == {"HIGH"} and csv.evidence.str.contains("rule:").all()
    with pytest.raises(HealthMonitorError, match="does not exist"):
        _cli(lake, "alerts", "export", "--format", "csv", "--output", str(tmp_path / "no" / "x.csv"))
