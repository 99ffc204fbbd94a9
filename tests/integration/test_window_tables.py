"""One feature definition for stream and batch, end to end: the real cost stream and the real
Spark replay (features/windows.py) over the same Gold rows give the same window features, and a
champion trained on the replayed table is blended into the stream's scores. The rows arrive as
billing delivers them: a correction that arrives after its window closed is late for the stream
and left out of the replay's window too (revision 0), and makes a revision of that window that
nets it in; one that arrives in time is netted in by both and makes no revision."""

from __future__ import annotations

import json
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from test_streaming import load_usage, usage_rows

from health_monitor.batch.trainer import train_model
from health_monitor.catalog import get_model
from health_monitor.features import build_features
from health_monitor.features.windows import window_columns
from health_monitor.runtime import Lakehouse
from health_monitor.streaming import engine
from health_monitor.streaming.registered import log_blend

KEY = ["entity_type", "entity_id", "window_start"]


def _correction(row: dict, factor: float, ingested: str) -> list[dict]:
    """A RETRACTION of ``row`` and its RESTATEMENT at ``factor`` of it, ingested on ``ingested``."""
    out = []
    for kind, f in (("RETRACTION", -1.0), ("RESTATEMENT", factor)):
        out.append(row | {"record_id": f"{row['record_id']}-{kind}", "record_type": kind, "ingestion_date": ingested,
                          "usage_quantity": round(row["usage_quantity"] * f, 6),
                          "list_cost": round(row["list_cost"] * f, 6)})
    return out


def _day_after(day: str, days: int) -> str:
    return (date.fromisoformat(day) + timedelta(days=days)).isoformat()


def test_stream_and_replay_agree_and_the_stream_blends_the_champion_trained_on_them(lake: Lakehouse, tmp_path):
    # 9 days, two SKUs, untagged spend and a spike: three keys (the workspace and two SKUs).
    rows = usage_rows(range(0, 9 * 24), skus=(("JOBS_COMPUTE", 20.0), ("SQL_COMPUTE", 6.0)), spike=range(150, 153))
    for r in rows[::5]:
        r["is_tagged"] = False
    for r in rows:
        r["ingestion_date"] = r["usage_date"]
    # Two corrections of one SKU's hour each (rows are hour-major, two SKUs an hour): hour 40's
    # arrives the same day, before its window closes; hour 100's three days later, long after.
    in_time, late = rows[2 * 40], rows[2 * 100]
    in_time_fix = _correction(in_time, 0.5, in_time["usage_date"])
    late_fix = _correction(late, 0.5, _day_after(late["usage_date"], 3))
    # Billing delivers them in that order; the stream reads one commit per micro-batch. Two
    # commits before the late one: Spark drops a row as late against the watermark of the batch
    # before the last, so the first batch that closes windows is the second.
    load_usage(lake, rows + in_time_fix, tmp_path / "usage", chunks=2)
    load_usage(lake, late_fix, tmp_path / "usage")
    assert log_blend(lake, "cost")[0].startswith("cannot blend cost_anomaly_detector: no model registry yet")

    build_features(lake, tables=["cost_window_features"])
    model = get_model("cost_anomaly_detector")
    result = train_model(lake, model, {"n_estimators": 12})
    assert result.version == "1"
    assert log_blend(lake, "cost") == ["blends cost_anomaly_detector v1 (15 window features)"]

    engine.run_available_now(lake, ["cost"], shuffle_partitions=1, max_files_per_trigger=1)
    # the late correction reached the stream behind its watermark: kept aside, never scored
    kept = lake.read("late_rows", "monitor").toPandas()
    assert sorted(json.loads(r)["record_id"] for r in kept["row_json"]) == sorted(r["record_id"] for r in late_fix)
    scores = lake.read("anomaly_scores", "monitor").toPandas()
    assert len(scores) > 400
    # every window the stream scored went through the champion too
    assert scores["model_name"].str.endswith("+health_monitor.cost_anomaly_detector").all()
    assert scores["model_version"].str.endswith("+1").all()

    # anomaly_scores keeps a window's numeric features (a map): those are what the champion sees
    stream = pd.concat([scores[KEY].reset_index(drop=True),
                        pd.DataFrame([dict(f) for f in scores["features"]])], axis=1)
    table = lake.read("cost_window_features", "features").toPandas()
    batch = table[table["revision"] == 0]  # each window as the stream closed it
    merged = batch.merge(stream, on=KEY, suffixes=("", "_stream"), validate="one_to_one")
    # The stream leaves the windows of its last hours open (its watermark); the replay does too.
    assert len(merged) == len(stream) == len(batch)
    numeric = [c for c, kind in window_columns("cost").items() if kind == "double"]
    assert set(get_model("cost_anomaly_detector").features) <= set(numeric)
    for c in numeric:
        # the map keeps finite numbers only: a feature null on every window (no budget) is absent
        theirs = merged[f"{c}_stream"] if f"{c}_stream" in merged else pd.Series(np.nan, index=merged.index)
        np.testing.assert_allclose(merged[c].to_numpy(float), pd.to_numeric(theirs).to_numpy(float),
                                   rtol=1e-9, equal_nan=True, err_msg=c)
    assert merged["untagged_cost_pct"].between(0, 100).all() and merged["untagged_cost_pct"].max() > 1.0  # percent

    # The replay put in what the stream put in: hour 40's SKU window holds the restated cost
    # (netted), hour 100's the original one (its correction came after the window closed).
    sku = batch[batch["entity_type"] == "workspace_sku"].set_index(["entity_id", "window_start"])["cost_usd"]
    for row, expected in ((in_time, in_time["list_cost"] * 0.5), (late, late["list_cost"])):
        at = (f"1001:{row['sku_name']}", pd.Timestamp(row["usage_start_time"]).tz_localize(None))
        assert sku.loc[at] == pytest.approx(expected, rel=1e-6)

    # The late correction makes one revision of each of its windows (the hour's workspace, SKU and
    # job keys), the final one (it came after the one- and two-day waits), netted; nothing else does.
    revised = table[table["revision"] > 0]
    hour = pd.Timestamp(late["usage_start_time"]).tz_localize(None)
    assert sorted(zip(revised["entity_id"], revised["window_start"], revised["revision"], strict=True)) == [
        ("1001", hour, 3), (f"1001:{late['sku_name']}", hour, 3), (late["job_id"], hour, 3)]
    final = revised.set_index("entity_id")["cost_usd"]
    assert final[f"1001:{late['sku_name']}"] == pytest.approx(late["list_cost"] * 0.5, rel=1e-6)
    at_close = batch.set_index(["entity_id", "window_start"])["cost_usd"]
    assert final["1001"] == pytest.approx(at_close[("1001", hour)] - late["list_cost"] * 0.5, rel=1e-6)
