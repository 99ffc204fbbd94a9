"""Catch-up mode end to end: backlog through the batch path, then the stream from version V + 1.

The same hourly usage rows go through one plain stream and through catch-up + stream, with the
seam (the Delta version the catch-up records) cutting through a cost spike, so an incident opens
in the backlog and continues in the stream; rows written after V land in a window the batch path
closed (late) and in one still open at the seam. The catch-up is interrupted once between its
score and alert writes, as a crash would, and resumed.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pandas as pd
import pytest
from test_streaming import ALERT_KEY, T0, _alerts, load_usage, usage_rows

from health_monitor import checkpoints
from health_monitor.errors import HealthMonitorError
from health_monitor.rules import load_rules
from health_monitor.runtime import Lakehouse
from health_monitor.streaming import catchup, engine
from health_monitor.streaming.sink import BatchSink

# The spike is hours 80-83. Backlog = hours before 85: its watermark (newest event minus the 3 h
# delay) is 81 h, so the batch path scores the spike's first window and hands 81-84 to the stream.
SEAM_HOUR = 85


def _scores(lake: Lakehouse) -> pd.DataFrame:
    return lake.read("anomaly_scores", "monitor").toPandas().sort_values("score_id").reset_index(drop=True)


@pytest.mark.slow
def test_catch_up_then_stream_writes_the_alerts_and_scores_of_one_plain_stream(lake, tmp_path, settings,
                                                                               monkeypatch):
    rows = usage_rows(range(0, 120), skus=(("JOBS_COMPUTE", 20.0), ("SQL_COMPUTE", 6.0)), spike=range(80, 84))
    seam = (T0 + timedelta(hours=SEAM_HOUR)).isoformat()
    backlog = [r for r in rows if r["usage_start_time"] < seam]
    # Written after V: a row for a window the batch path closed (late, as in a plain stream) and
    # one for a window still open at the seam (it must join the handed-over window).
    late, inside = usage_rows(range(78, 79), tag="late"), usage_rows(range(83, 84), tag="inside")
    after = [r for r in rows if r["usage_start_time"] >= seam] + late + inside

    # One plain stream: over the backlog (its closing batch moves the watermark to W and closes
    # the windows ending by then), then over the rows written after it.
    load_usage(lake, backlog, tmp_path / "a")
    engine.run_available_now(lake, ["cost"], shuffle_partitions=1)
    load_usage(lake, after, tmp_path / "a")
    engine.run_available_now(lake, ["cost"])
    expected, expected_scores = _alerts(lake), _scores(lake)
    assert not expected.empty, "the spike must raise alerts for this test to mean anything"

    # Catch-up on the same rows in another lakehouse; the first attempt dies after the backlog's
    # scores are committed and before its alerts are (what a kill between the two writes leaves).
    other = Lakehouse(settings.with_data_dir(tmp_path / "b-home"), lake.spark)
    load_usage(other, backlog, tmp_path / "b")

    def crash(self, *args):  # noqa: ANN001, ANN002, ANN202 - whatever the sink passes
        raise RuntimeError("killed mid catch-up")

    monkeypatch.setattr(BatchSink, "_write_alerts", crash)
    with pytest.raises(RuntimeError, match="killed mid catch-up"):
        engine.run_available_now(other, ["cost"], catch_up=True, shuffle_partitions=1)
    monkeypatch.undo()
    loc = checkpoints.checkpoint_location(other.settings, "hm_cost")
    assert checkpoints.read_catchup_plan(loc)["step"] == "scored"
    with pytest.raises(HealthMonitorError, match="stream start --catch-up' to finish it"):
        engine.run_available_now(other, ["cost"])  # a plain start never streams over a half catch-up
    # `--catch-up` again resumes at the recorded step (the scores' write is skipped by Delta).
    catchup.prepare(other, "cost", load_rules(other.settings))
    plan = checkpoints.read_catchup_plan(loc)
    assert plan["step"] == "done" and plan["versions"] == {"fact_usage": 0}
    # No commit followed V: a table property made version V + 1 for the stream to start at.
    assert other.spark.sql(f"DESCRIBE HISTORY {other.table_name('fact_usage')}").first()["version"] == 1
    assert pd.Timestamp(plan["max_event_ms"], unit="ms") == pd.Timestamp(T0 + timedelta(hours=SEAM_HOUR - 1))
    cut = pd.Timestamp(plan["watermark_ms"], unit="ms")
    assert cut == pd.Timestamp(T0 + timedelta(hours=SEAM_HOUR - 4))
    backlog_scores = _scores(other)
    assert len(backlog_scores) > 0 and backlog_scores["window_end"].max() == cut

    # The stream (started without the flag: a finished catch-up is always honoured) reads the
    # handed-over states and the rows committed after V.
    load_usage(other, after, tmp_path / "b")
    engine.run_available_now(other, ["cost"])
    for lh in (lake, other):
        kept = lh.read("late_rows", "monitor").toPandas()
        assert [json.loads(r)["record_id"] for r in kept["row_json"]] == [late[0]["record_id"]]

    got, scores = _alerts(other), _scores(other)
    pd.testing.assert_frame_equal(got[ALERT_KEY], expected[ALERT_KEY])
    assert got["score"].round(9).tolist() == expected["score"].round(9).tolist()
    assert ((got["window_start"] < cut) & (got["window_end"] > cut)).any(), \
        "an incident must span the seam (opened by the catch-up, extended by the stream)"
    assert not scores["score_id"].duplicated().any()
    assert scores["score_id"].tolist() == expected_scores["score_id"].tolist()
    assert (scores["score"] - expected_scores["score"]).abs().max() < 1e-9
    assert [json.dumps(f, sort_keys=True) for f in scores["features"]] == \
        [json.dumps(f, sort_keys=True) for f in expected_scores["features"]]
