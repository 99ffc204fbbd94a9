"""The engine through Spark Connect: a local Connect server (PySpark 4.0's, Delta on the server side).

Serverless and standard access mode are Spark Connect, so what runs here is what must run there.
The server is started once for the module (or reused: HEALTH_MONITOR_SPARK_REMOTE); the test is
skipped, with the server's own error, only when the server cannot start.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from health_monitor.errors import HealthMonitorError
from health_monitor.runtime import Lakehouse, is_connect, start_connect_server
from health_monitor.settings import load_settings


@pytest.fixture(scope="module")
def connect_spark(tmp_path_factory: pytest.TempPathFactory):
    from pyspark.sql import SparkSession

    url = os.environ.get("HEALTH_MONITOR_SPARK_REMOTE")
    proc = None
    if not url:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            proc = start_connect_server(port, tmp_path_factory.mktemp("connect") / "server.log")
        except HealthMonitorError as exc:
            pytest.skip(f"Spark Connect server could not start: {exc}")
        url = f"sc://127.0.0.1:{port}"
    # Creating a remote session flags the whole process as Spark Connect (environment variables
    # pyspark reads in every later builder call): put them back, or the classic session the rest
    # of the suite shares is looked up as a remote one.
    saved = {k: os.environ.get(k) for k in ("SPARK_CONNECT_MODE_ENABLED", "SPARK_REMOTE", "SPARK_LOCAL_REMOTE")}
    session = SparkSession.builder.remote(url).create()
    yield session
    session.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    if proc is not None:
        proc.terminate()
        proc.wait(timeout=60)


@pytest.fixture
def connect_lake(connect_spark, tmp_path: Path) -> Lakehouse:
    return Lakehouse(load_settings(tmp_path), spark=connect_spark)


def test_lakehouse_writes_merges_and_reads_through_connect(connect_lake):
    lake = connect_lake
    assert is_connect(lake.spark)
    first = lake.spark.createDataFrame([("a", 1), ("b", 2)], "k string, v int")
    lake.write(first, "t", "monitor", mode="append")
    lake.merge(lake.spark.createDataFrame([("b", 20), ("c", 3)], "k string, v int"), "t", ["k"], "monitor")
    assert sorted(tuple(r) for r in lake.read("t", "monitor").collect()) == [("a", 1), ("b", 20), ("c", 3)]
    lake.merge(lake.spark.createDataFrame([("a", 9)], "k string, v int"), "t", ["k"], "monitor", update=False)
    assert lake.read("t", "monitor").filter("k = 'a'").first()["v"] == 1


def test_optional_system_columns_are_filled_through_connect(connect_lake):
    lake = connect_lake
    rows = lake.spark.createDataFrame([("1", "w", "j", "r")], "account_id string, workspace_id string, "
                                      "job_id string, run_id string")
    lake.write(rows, "lakeflow.job_run_timeline", "system", mode="overwrite")
    got = lake.read("lakeflow.job_run_timeline", "system")
    assert {"termination_type", "compute", "run_duration_seconds"} <= set(got.columns)
    assert got.first()["termination_type"] is None


def test_gold_stream_and_model_run_through_connect(connect_spark, tmp_path: Path):
    """The real path over Spark Connect: Gold from a small simulated estate, the cost stream
    available-now to alerts, one model trained and batch-scored. Counts made inside foreachBatch
    functions (which run in the server's Python workers) must come back through tables."""
    from health_monitor.batch.scoring import score_all
    from health_monitor.batch.trainer import train_model
    from health_monitor.catalog import get_model
    from health_monitor.features import build_features
    from health_monitor.gold.builders import build_gold
    from health_monitor.gold.simulator import simulate
    from health_monitor.streaming.run import run_available_now
    from health_monitor.streaming.tables import ANOMALY_SCORES, STREAM_BATCHES

    lake = Lakehouse(load_settings(tmp_path), spark=connect_spark)
    simulate(lake, days=20, workspaces=1, scale=0.1, seed=11, build=False)
    # The Gold the cost stream and model read (CI time): the streamed job-run -> touched-clusters ->
    # usage chain (foreachBatch), a batch-built dimension and the calendar.
    counts = build_gold(lake, ["dim_workspace", "fact_job_run_timeline", "fact_usage", "dim_date"])
    # First build: a streamed table's count is its row count (read from Delta's history).
    for table in ("fact_usage", "fact_job_run_timeline"):
        assert counts[table] == lake.count(table) > 0, table
    assert lake.read("fact_usage").filter("job_id_source = 'CLUSTER_ATTRIBUTION'").count() > 0

    stats = run_available_now(lake, ["cost"])["cost"]
    assert stats.batch_id >= 0 and stats.totals["windows"] > 0
    assert lake.count(ANOMALY_SCORES.name, "monitor") == stats.totals["windows"]
    assert lake.count(STREAM_BATCHES.name, "monitor") == stats.totals["batches"]

    spec = get_model("cost_anomaly_detector")
    build_features(lake, tables=[spec.feature_table])
    trained = train_model(lake, spec, {"n_estimators": 12})
    assert trained.version == "1"
    report = score_all(lake, models=[spec.name])
    (scored,) = report.models
    assert scored.scored > 0 and scored.scored == scored.active, scored.notes
    assert lake.count(f"{spec.name}_predictions", "ml") == scored.scored
