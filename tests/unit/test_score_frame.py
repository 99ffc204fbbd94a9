"""The anomaly_scores rows a batch writes, built column-wise (the sink's vectorized path)."""

from __future__ import annotations

import json
import math
from datetime import datetime

import numpy as np
import pandas as pd

from health_monitor.streaming.sink import _score_id, late_frame, score_frame
from health_monitor.streaming.tables import ANOMALY_SCORES, LATE_ROWS


def _scored() -> pd.DataFrame:
    t = pd.Timestamp("2026-03-02 05:00")
    return pd.DataFrame({
        "kind": ["score", "score"], "domain": ["cost", "cost"],
        "entity_type": ["workspace", "workspace_sku"], "entity_id": ["1001", "1001:SQL_COMPUTE"],
        "workspace_id": ["1001", None], "window_start": [t, t + pd.Timedelta(hours=1)],
        "window_end": [t + pd.Timedelta(hours=1), t + pd.Timedelta(hours=2)],
        "value": [12.5, np.nan], "expected": [None, 3.0], "score": [0.91, 0.0],
        "model_name": ["m", "m"], "model_version": ["1", "1"],
        "features": [json.dumps({"cost": 12.5, "n": 3, "flag": True, "sku": "SQL", "bad": math.inf}), None],
        "evidence": ["[]", "[]"],
    })


def test_score_rows_have_the_table_columns_ids_nulls_and_numeric_features_only():
    now = datetime(2026, 3, 2, 9, 0)
    out = score_frame(_scored(), now)
    assert list(out.columns) == ANOMALY_SCORES.column_names
    assert out["score_id"].tolist() == [
        _score_id("m", "workspace", "1001", pd.Timestamp("2026-03-02 05:00")),
        _score_id("m", "workspace_sku", "1001:SQL_COMPUTE", pd.Timestamp("2026-03-02 06:00"))]
    assert out["score_id"].nunique() == 2
    # bools, strings and non-finite numbers are not features of a score; ints become floats
    assert out["features"].tolist() == [{"cost": 12.5, "n": 3.0}, {}]
    assert math.isnan(out["value"][1]) and math.isnan(out["expected"][0])
    assert out["expected"][1] == 3.0 and out["score"].tolist() == [0.91, 0.0]
    assert (out["scored_at"] == pd.Timestamp(now)).all()
    assert out["window_end"][1] == pd.Timestamp("2026-03-02 07:00")
    assert out["workspace_id"].tolist() == ["1001", None]


def test_an_empty_batch_gives_an_empty_frame_with_the_table_columns():
    out = score_frame(_scored().iloc[:0], datetime(2026, 3, 2))
    assert out.empty and list(out.columns) == ANOMALY_SCORES.column_names


def test_late_rows_keep_their_source_row_and_the_watermark_they_missed():
    late = pd.DataFrame({
        "kind": ["raw", "raw"], "source_table": ["fact_usage", "fact_usage"], "entity_id": ["1001", None],
        "event_time": [pd.Timestamp("2026-03-02 01:10"), pd.Timestamp("2026-03-02 02:20")],
        "row_json": ['{"record_id": "a"}', '{"record_id": "b"}'],
    }, index=[7, 9])  # the batch frame's index, not 0..n-1
    wm, now = pd.Timestamp("2026-03-02 04:00"), datetime(2026, 3, 2, 9, 0)
    out = late_frame(late, "hm_cost", wm, now)
    assert list(out.columns) == LATE_ROWS.column_names
    assert out["query_name"].tolist() == ["hm_cost", "hm_cost"]
    assert out["row_json"].tolist() == ['{"record_id": "a"}', '{"record_id": "b"}']
    assert out["entity_id"].tolist() == ["1001", None]
    assert (out["watermark"] == wm).all() and (out["received_at"] == pd.Timestamp(now)).all()
    assert out["event_time"].tolist() == late["event_time"].tolist()
    assert late_frame(late.iloc[:0], "hm_cost", wm, now).empty
