"""Daily batch inference: champions score 100% of the day's active entities, point-in-time,
and a rerun for the same date replaces rows instead of duplicating them."""

from __future__ import annotations

import datetime as dt

import pytest

from health_monitor.batch.scoring import latest_features, predictions_table, score_all
from health_monitor.catalog import get_model
from health_monitor.runtime import Lakehouse


def _day(lake: Lakehouse) -> dt.date:
    """The estate's last day with usage: the score date of these tests."""
    return lake.read("fact_usage").agg({"usage_date": "max"}).first()[0]
#: One model per kind of entity: workspace-day, run, job, query, table.
SCORED = ["cost_anomaly_detector", "job_failure_predictor", "pipeline_health_scorer",
          "query_performance_forecaster", "data_freshness_predictor"]


@pytest.fixture(scope="module")
def trained(trained_lake: Lakehouse) -> Lakehouse:
    return trained_lake


def test_score_all_covers_every_active_entity_and_reruns_replace(trained: Lakehouse) -> None:
    report = score_all(trained, _day(trained), models=SCORED)
    by_name = {m.name: m for m in report.models}
    for name in SCORED:
        m = by_name[name]
        assert m.active > 0, name
        assert m.coverage == 1.0, (name, m.notes)
        assert m.version is not None
    assert report.complete
    spec = get_model("job_failure_predictor")
    table = predictions_table(spec.name)
    df = trained.read(table, "ml").where(f"score_date = '{_day(trained)}'").toPandas()
    assert len(df) == by_name[spec.name].scored
    assert {*spec.entity_keys, *spec.outputs, "model_name", "model_version", "scored_at",
            "feature_timestamp", "score_date"} <= set(df.columns)
    # Point in time: no feature row from after the score date.
    assert (df["feature_timestamp"].dt.date <= _day(trained)).all()
    assert df["failure_probability"].between(0, 1).all()
    # Active runs of the day, straight from Gold, all scored.
    runs = (trained.read("fact_job_run_timeline").where(f"to_date(period_start_time) = '{_day(trained)}'")
            .select("run_id").distinct().toPandas())
    assert set(runs["run_id"]) == set(df["run_id"])
    before = trained.count(table, "ml")
    score_all(trained, _day(trained), models=["job_failure_predictor"])
    assert trained.count(table, "ml") == before


def test_missing_features_or_champion_is_explained(trained: Lakehouse, lake: Lakehouse) -> None:
    # A fresh lakehouse (its own registry) with the estate's runs but nothing else yet.
    lake.write(trained.read("fact_job_run_timeline"), "fact_job_run_timeline", "gold", mode="overwrite")
    m = score_all(lake, _day(trained), models=["sla_breach_predictor"]).models[0]
    assert m.active > 0 and m.scored == 0 and m.coverage == 0.0
    assert any("feature table job_run_features does not exist" in n for n in m.notes)
    lake.write(trained.read("job_run_features", "features"), "job_run_features", "features", mode="overwrite")
    # Its inputs all present (else it is "skipped: inputs missing"), only the champion is not.
    lake.write(trained.read("sla_definitions"), "sla_definitions", "gold", mode="overwrite")
    report = score_all(lake, _day(trained), models=["sla_breach_predictor"])
    assert any("no champion" in n for n in report.models[0].notes)
    assert not report.complete
    assert any("no champion" in line for line in report.lines())


def test_latest_features_never_look_ahead(trained: Lakehouse) -> None:
    spec = get_model("cost_anomaly_detector")
    rows = latest_features(trained, spec, dt.date(2026, 8, 20)).toPandas()
    assert rows[spec.time_key].dt.date.max() == dt.date(2026, 8, 20)  # the cost stream's hourly windows
    assert not rows.duplicated(list(spec.entity_keys)).any()
