"""The two state layouts of the scoring operator, end to end on Spark: same rows in, same scores,
features, evidence and alerts out; a checkpoint keeps the layout it was made with."""

from __future__ import annotations

import pandas as pd
from test_streaming import _alerts, load_usage, usage_rows

from health_monitor import checkpoints
from health_monitor.runtime import Lakehouse
from health_monitor.streaming import engine
from health_monitor.streaming.bucketed import LAYOUT_ENV

SCORE_COLS = ["score_id", "entity_type", "entity_id", "workspace_id", "window_start", "window_end", "value",
              "expected", "model_name", "model_version", "features"]
ALERT_COLS = ["alert_id", "alert_type", "entity_type", "entity_id", "window_start", "window_end", "severity",
              "occurrences", "model_name", "summary", "evidence", "impact_usd"]


def _scores(lake: Lakehouse) -> pd.DataFrame:
    return lake.read("anomaly_scores", "monitor").toPandas().sort_values("score_id").reset_index(drop=True)


def test_per_key_and_bucketed_layouts_write_the_same_scores_and_alerts(lake, tmp_path, settings, monkeypatch):
    rows = usage_rows(range(0, 72), skus=(("JOBS_COMPUTE", 20.0), ("SQL_COMPUTE", 6.0)), spike=range(60, 64))
    runs = {}
    for layout in ("per-key", "bucketed"):
        monkeypatch.setenv(LAYOUT_ENV, layout)
        lh = Lakehouse(settings.with_data_dir(tmp_path / layout), lake.spark)
        load_usage(lh, rows, tmp_path / f"in-{layout}")
        engine.run_available_now(lh, ["cost"])
        loc = checkpoints.checkpoint_location(lh.settings, "hm_cost")
        assert checkpoints.read_layout(loc)["layout"] == layout
        runs[layout] = (_scores(lh), _alerts(lh))
    (s_key, a_key), (s_bucket, a_bucket) = runs["per-key"], runs["bucketed"]
    assert len(s_key) > 150 and not a_key.empty
    pd.testing.assert_frame_equal(s_bucket[SCORE_COLS], s_key[SCORE_COLS])
    assert (s_bucket["score"] - s_key["score"]).abs().max() < 1e-9
    pd.testing.assert_frame_equal(a_bucket[ALERT_COLS], a_key[ALERT_COLS])
    assert (a_bucket["score"] - a_key["score"]).abs().max() < 1e-9

    # A restart with the other default keeps each checkpoint's own layout (its state store's keys).
    monkeypatch.setenv(LAYOUT_ENV, "bucketed")
    old = Lakehouse(settings.with_data_dir(tmp_path / "per-key"), lake.spark)
    load_usage(old, usage_rows(range(72, 78)), tmp_path / "in-per-key")
    engine.run_available_now(old, ["cost"])
    assert checkpoints.read_layout(checkpoints.checkpoint_location(old.settings, "hm_cost"))["layout"] == "per-key"
    assert len(_scores(old)) > len(s_key)
