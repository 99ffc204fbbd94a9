"""What the sink takes from a micro-batch (scores, priors and only the late raw rows, as JSON),
and the score rows it writes (the Arrow table is the pandas frame's rows in Spark)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from pyspark.sql import functions as F

from health_monitor.streaming.query import RAW_ROW
from health_monitor.streaming.sink import feature_frame, parse_features, score_frame, score_table, wanted_rows
from health_monitor.streaming.tables import ANOMALY_SCORES

SCHEMA = ("kind string, entity_id string, event_time timestamp, row_json string, "
          f"{RAW_ROW} struct<record_id:string,cost:double,event_time:timestamp>")


def _batch(spark):  # noqa: ANN001, ANN202 - the shared session
    def t(*a: int) -> datetime:
        return datetime(*a, tzinfo=UTC)

    rows = [
        ("score", "1001", None, None, None),
        ("prior", "1001", None, None, None),
        ("raw", "1001", t(2026, 3, 2, 5), None, ("r-late", 1.5, t(2026, 3, 2, 5))),
        ("raw", "1001", t(2026, 3, 2, 9), None, ("r-edge", 2.0, t(2026, 3, 2, 9))),
        ("raw", "1001", t(2026, 3, 2, 12), None, ("r-new", 3.0, t(2026, 3, 2, 12))),
    ]
    return spark.createDataFrame(rows, SCHEMA)


def test_without_a_watermark_no_raw_row_is_taken(spark):  # noqa: ANN001
    out = wanted_rows(_batch(spark), 0).toPandas()
    assert sorted(out["kind"]) == ["prior", "score"]
    assert RAW_ROW not in out.columns and out["row_json"].isna().all()


def test_raw_rows_at_or_behind_the_watermark_are_taken_as_json_of_the_source_row(spark):  # noqa: ANN001
    wm_ms = int(datetime(2026, 3, 2, 9, tzinfo=UTC).timestamp() * 1000)
    out = wanted_rows(_batch(spark), wm_ms).toPandas()
    raw = out[out["kind"] == "raw"]
    assert sorted(json.loads(j)["record_id"] for j in raw["row_json"]) == ["r-edge", "r-late"]
    # The JSON is Spark's to_json of the row, as the query wrote it before it carried a struct.
    expected = _batch(spark).filter(F.col("kind") == "raw").select(F.to_json(RAW_ROW).alias("j")).toPandas()
    assert set(raw["row_json"]) <= set(expected["j"])
    assert out[out["kind"] != "raw"]["row_json"].isna().all() and RAW_ROW not in out.columns


def test_a_frame_without_the_struct_keeps_its_row_json(spark):  # noqa: ANN001 - the catch-up's backlog
    df = _batch(spark).drop(RAW_ROW).withColumn(
        "row_json", F.when(F.col("kind") == "raw", F.lit('{"record_id":"x"}')))
    out = wanted_rows(df, int(datetime(2026, 3, 2, 20, tzinfo=UTC).timestamp() * 1000)).toPandas()
    assert list(out[out["kind"] == "raw"]["row_json"]) == ['{"record_id":"x"}'] * 3


def test_the_scores_arrow_table_gives_spark_the_rows_of_the_pandas_frame(spark):  # noqa: ANN001
    features = [  # every kind of value a window's features JSON can hold, keys missing here and there
        {"cost": 12.5, "n": 3, "flag": True, "sku": "SQL", "bad": math.inf, "maybe": None, "mixed": 4},
        {"cost": -0.0, "n": 7, "flag": False, "maybe": 2, "mixed": "x", "nested": [1, 2]},
        {},
        {"n": 2**62, "bad": -math.inf, "maybe": 1.5, "mixed": True, "only_here": 0.25, "nan": math.nan},
    ]
    t = pd.Timestamp("2026-03-02 05:00")
    scored = pd.DataFrame({
        "domain": "cost", "entity_type": ["workspace", "workspace_sku", "workspace", "job"],
        "entity_id": ["1001", "1001:SQL", "1002", "j1"], "workspace_id": ["1001", None, "1002", np.nan],
        "window_start": [t, t, t + pd.Timedelta(hours=1), t], "window_end": t + pd.Timedelta(hours=2),
        "value": [12.5, np.nan, 1.0, None], "expected": [None, 3.0, 2.0, 4.0], "score": [0.91, 0.0, 0.5, 1.0],
        "model_name": "m", "model_version": "1", "features": [json.dumps(f) for f in features],
    })
    now = datetime(2026, 3, 2, 9, 0)
    want = spark.createDataFrame(score_frame(scored, now), ANOMALY_SCORES.schema).collect()
    got = spark.createDataFrame(score_table(scored, now, feature_frame(parse_features(scored["features"]))),
                                ANOMALY_SCORES.schema).collect()
    assert [r.asDict() for r in got] == [r.asDict() for r in want]
    assert [r.features for r in got] == [{"cost": 12.5, "n": 3.0, "mixed": 4.0}, {"cost": -0.0, "n": 7.0, "maybe": 2.0},
                                         {}, {"n": float(2**62), "maybe": 1.5, "only_here": 0.25}]
    assert got[0].window_start == datetime(2026, 3, 2, 5, 0) and got[0].scored_at == now
    assert [r.workspace_id for r in got] == ["1001", None, "1002", None] and got[1].value is None
