"""The anomaly_scores rows a batch writes, built column-wise (the sink's vectorized path): the
pandas frame (the reference) and the Arrow table the sink writes."""

from __future__ import annotations

import json
import math
from datetime import datetime

import numpy as np
import pandas as pd

from health_monitor.streaming.sink import (
    _numeric_features,
    _score_id,
    feature_frame,
    late_frame,
    numeric_feature_maps,
    parse_features,
    score_frame,
    score_table,
)
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


#: Features of every kind a window's JSON can hold, some keys missing from some windows.
EDGE_FEATURES = [
    {"cost": 12.5, "n": 3, "flag": True, "sku": "SQL", "bad": math.inf, "maybe": None, "mixed": 4, "flag2": True},
    {"cost": -0.0, "n": 7, "flag": False, "maybe": 2, "mixed": "x", "nested": [1, 2], "flag2": None},
    {},
    {"n": 2**62, "bad": -math.inf, "maybe": 1.5, "mixed": True, "only_here": 0.25, "nan": math.nan},
]


def test_feature_maps_from_whole_columns_are_the_numeric_features_of_each_window():
    frame = feature_frame(EDGE_FEATURES)
    maps = numeric_feature_maps(frame).to_pylist()
    assert [dict(m) for m in maps] == [_numeric_features(f) for f in EDGE_FEATURES]
    assert [list(dict(m)) for m in maps] == [list(_numeric_features(f)) for f in EDGE_FEATURES]  # entry order
    assert numeric_feature_maps(feature_frame([{}, {}])).to_pylist() == [[], []]


def test_the_arrow_table_holds_the_rows_of_the_pandas_frame():
    now = datetime(2026, 3, 2, 9, 0)
    scored = pd.concat([_scored()] * 2, ignore_index=True)
    scored["features"] = [json.dumps(f) for f in EDGE_FEATURES]
    want = score_frame(scored, now)
    got = score_table(scored, now, feature_frame(parse_features(scored["features"])))
    assert got.column_names == ANOMALY_SCORES.column_names
    got = got.to_pandas()
    assert [dict(m) for m in got["features"]] == want["features"].tolist()
    pd.testing.assert_frame_equal(got.drop(columns="features"), want.drop(columns="features"), check_dtype=False)


def test_parsed_features_are_those_json_loads_gives():
    texts = [json.dumps(f) for f in EDGE_FEATURES] + [
        '{"a": NaN, "b": Infinity}', '{"big": 123456789012345678901234567890}', '{"tiny": 5e-324, "huge": 2e400}',
        '{"s": "\\ud800"}', '{"user": "caf\\u00e9"}', '{"x": 0.1, "y": 1e22, "z": 9007199254740993}', None, ""]
    got = parse_features(texts)
    want = [json.loads(t) if t else {} for t in texts]
    assert repr(got) == repr(want)  # repr: NaN equal to NaN, types and key order compared
