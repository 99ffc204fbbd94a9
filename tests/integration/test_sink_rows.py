"""What the sink takes from a micro-batch: scores, priors and only the late raw rows, as JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from pyspark.sql import functions as F

from health_monitor.streaming.query import RAW_ROW
from health_monitor.streaming.sink import wanted_rows

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
