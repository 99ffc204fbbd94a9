"""Recommendations with money: one table, every row with evidence, savings and confidence;
rerunning a date replaces it; the savings CLI totals by category."""

from __future__ import annotations

import datetime as dt

import pytest

from health_monitor.batch.recommendations import COLUMNS, TABLE, build_recommendations, savings_summary
from health_monitor.batch.scoring import score_all
from health_monitor.cli import main
from health_monitor.runtime import Lakehouse


def _day(lake: Lakehouse) -> dt.date:
    """The estate's last day with usage: the score date of these tests."""
    return lake.read("fact_usage").agg({"usage_date": "max"}).first()[0]
MODELS = ["job_cost_optimizer", "cluster_capacity_planner", "pipeline_health_scorer", "tag_recommender"]


@pytest.fixture(scope="module")
def recs(trained_lake: Lakehouse):  # noqa: ANN201
    lake = trained_lake
    score_all(lake, _day(lake), models=MODELS)
    return lake, build_recommendations(lake, _day(lake))


def test_rows_carry_evidence_money_and_confidence(recs) -> None:  # noqa: ANN001
    lake, out = recs
    assert list(out.columns) == COLUMNS
    cats = set(out.category)
    assert {"cluster_capacity_planner", "pipeline_health_scorer"} <= cats
    assert out.evidence.str.len().gt(0).all() and out.action.str.len().gt(0).all()
    assert out.estimated_savings_usd_month.ge(0).all()
    assert out.confidence.between(0, 1).all()
    cap = out[out.category == "cluster_capacity_planner"]
    assert cap.action.str.match(r"(DOWNSIZE_AGGRESSIVE|DOWNSIZE_MODERATE|UPSIZE|OPTIMAL)").all()
    # The estate's shared all-purpose clusters run at low CPU: some money must be found.
    assert out.estimated_savings_usd_month.sum() > 0
    # Pipeline health evidence names all five components.
    ph = out[out.category == "pipeline_health_scorer"].evidence.iloc[0]
    for comp in ("success_rate", "duration_stability", "sla_compliance", "error_diversity", "recovery_speed"):
        assert comp in ph


def test_rerun_replaces_the_date(recs) -> None:  # noqa: ANN001
    lake, out = recs
    build_recommendations(lake, _day(lake))
    assert lake.read(TABLE, "ml").where(f"score_date = '{_day(lake)}'").count() == len(out)


def test_savings_totals_and_cli(recs, capsys) -> None:  # noqa: ANN001
    lake, out = recs
    by_cat, top = savings_summary(lake, _day(lake))
    assert by_cat.usd_month.sum() == pytest.approx(out.estimated_savings_usd_month.sum())
    assert len(top) <= 10 and top.estimated_savings_usd_month.is_monotonic_decreasing
    assert main(["--data-dir", str(lake.settings.data_dir), "savings"]) == 0
    text = capsys.readouterr().out
    assert "total" in text and f"{out.estimated_savings_usd_month.sum():,.0f}" in text
