"""An account with only some system tables: billing usage, list prices, jobs, job runs, clusters
and audit (no lineage, query history, node timeline, warehouses, data-quality monitoring,
information schema or workspaces). Gold, features, training, scoring and the streams must all
run on what is there, skip only what cannot run, and say what they skipped.

The estate is the session's ``tiny_estate`` with every other system table left behind (its Delta
folders are copied, so nothing is simulated again).
"""

from __future__ import annotations

import shutil

import pytest

from health_monitor import progress
from health_monitor.runtime import Lakehouse
from health_monitor.settings import load_settings

KEPT = ("billing.usage", "billing.list_prices", "lakeflow.jobs", "lakeflow.job_run_timeline",
        "compute.clusters", "access.audit")
#: Tiny but real: a model whose features lost two of their three sources, one whose driving table
#: is absent (kept to one trained model: CI time).
TRAINED = ("user_behavior_baseline",)  # trains on user_daily_features, built here without lineage
SKIPPED = "query_performance_forecaster"
FAST = {"n_estimators": 12, "max_iter": 60}


@pytest.fixture(scope="module")
def partial_lake(tiny_estate: Lakehouse, tmp_path_factory: pytest.TempPathFactory, spark) -> Lakehouse:  # noqa: ANN001
    lake = Lakehouse(load_settings(tmp_path_factory.mktemp("partial-estate")), spark)
    for table in KEPT:
        shutil.copytree(tiny_estate.location(table, "system"), lake.location(table, "system"))
    return lake


def test_an_estate_with_six_system_tables_builds_trains_scores_and_streams(partial_lake, capsys):  # noqa: ANN001
    from health_monitor.batch.scoring import score_all
    from health_monitor.batch.trainer import train_models
    from health_monitor.catalog import get_model
    from health_monitor.features import build_features, compute_feature_table
    from health_monitor.gold.builders import build_gold
    from health_monitor.streaming.run import run_available_now

    lake = partial_lake
    progress.enable(True)
    try:
        gold = build_gold(lake)
        assert {"fact_usage", "fact_job_run_timeline", "fact_audit_events", "dim_job", "dim_cluster"} <= set(gold)
        assert "fact_table_lineage" not in gold and not lake.exists("fact_table_lineage")

        built = build_features(lake, tables=["user_daily_features", "query_features"])
        notes = capsys.readouterr().err
        # The driving table is missing: skipped, and the note names the system table to enable.
        assert "query_features" not in built
        assert "skip features.query_features: no Gold fact_query_history (from system.query.history)" in notes
        # Other inputs missing: built anyway, the note says without what.
        assert built["user_daily_features"] > 0
        assert ("features.user_daily_features: built without fact_query_history (system.query.history), "
                "fact_table_lineage (system.access.table_lineage)") in notes
        # Run features without node timeline, lineage or SLAs still have every column (planned, not run).
        runs = compute_feature_table(lake, "job_run_features")
        assert set(get_model("job_failure_predictor").features) <= set(runs.columns)

        specs = [get_model(n) for n in (*TRAINED, SKIPPED)]
        results = {r.name: r for r in train_models(lake, specs, FAST, build=False)}
        for name in TRAINED:
            assert not results[name].skipped and results[name].version == "1", name
        assert results[SKIPPED].version is None
        assert results[SKIPPED].skipped == "no Gold fact_query_history (from system.query.history) for query_features"

        report = score_all(lake, models=[*TRAINED, SKIPPED])
        by_name = {m.name: m for m in report.models}
        assert by_name[SKIPPED].skipped and by_name[SKIPPED].scored == 0
        assert any(f"{SKIPPED:<38} skipped: no Gold fact_query_history" in line for line in report.lines())
        assert by_name[TRAINED[0]].scored > 0
        assert by_name[TRAINED[0]].scored == by_name[TRAINED[0]].active

        stats = run_available_now(lake, ["cost", "security", "reliability"])
        assert set(stats) == {"cost", "security", "reliability"}
        notes = capsys.readouterr().err
        assert "stream security: without Gold fact_table_lineage" in notes
        scored = lake.read("anomaly_scores", "monitor").groupBy("domain").count().toPandas()
        assert set(scored["domain"]) == {"cost", "security", "reliability"}
    finally:
        progress.enable(False)
