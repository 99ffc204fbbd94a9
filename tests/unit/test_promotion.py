"""No champion worse than naive: the promotion rule, the naive-baseline twin every model carries,
and batch detectors' calibrated operating point (pandas only, no Spark, no registry)."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from health_monitor.batch.algorithms import build_model
from health_monitor.batch.base import CatalogPyfunc
from health_monitor.batch.trainer import Contender, choose_champion, fit_model
from health_monitor.catalog import get_model

F1 = get_model("job_failure_predictor")  # higher is better
MAPE = get_model("job_duration_forecaster")  # lower is better


# ---------------------------------------------------------------------------- the rule
def test_model_that_loses_to_its_baseline_on_test_is_not_promoted() -> None:
    d = choose_champion(F1, Contender("new", 0.40, 0.00), Contender("naive", 0.30, 0.03))
    assert d.winner == "baseline"
    assert "0.000 vs naive baseline 0.030 on test" in d.reason


def test_model_that_loses_on_validation_is_not_promoted_either() -> None:
    d = choose_champion(MAPE, Contender("new", 0.40, 0.30), Contender("naive", 0.35, 0.50))
    assert d.winner == "baseline" and "validation" in d.reason


def test_model_not_worse_than_its_baseline_is_promoted_and_ties_count_as_not_worse() -> None:
    assert choose_champion(F1, Contender("new", 0.5, 0.5), Contender("naive", 0.5, 0.4)).winner == "new"
    assert choose_champion(F1, Contender("new", 0.5, 0.5), None).winner == "new"


def test_incumbent_is_judged_on_the_same_rows_and_kept_on_ties() -> None:
    base = Contender("naive", 0.30, 0.30)
    assert choose_champion(F1, Contender("new", 0.5, 0.5), base, Contender("v1", 0.5, 0.6)).winner == "incumbent"
    assert choose_champion(F1, Contender("new", 0.6, 0.5), base, Contender("v1", 0.5, 0.6)).winner == "new"
    # The new version loses to the baseline, the incumbent does not: the incumbent stays.
    assert choose_champion(F1, Contender("new", 0.2, 0.5), base, Contender("v1", 0.5, 0.6)).winner == "incumbent"
    # Both lose: the baseline serves.
    assert choose_champion(F1, Contender("new", 0.2, 0.5), base, Contender("v1", 0.1, 0.6)).winner == "baseline"


def test_a_baseline_that_cannot_serve_leaves_the_better_model_and_says_why() -> None:
    d = choose_champion(F1, Contender("new", 0.2, 0.2), Contender("naive", 0.3, 0.3), baseline_servable=False)
    assert d.winner == "new" and "cannot serve" in d.reason


# ---------------------------------------------------------------------------- the naive twin
def _job_frame(n_days: int = 60, jobs: int = 12, seed: int = 0) -> pd.DataFrame:
    """Job-day rows with every feature of the job models; failures follow the failure history."""
    rng = np.random.default_rng(seed)
    rows = []
    for d in range(n_days):
        for j in range(jobs):
            rate = (j % 4) / 4.0
            rows.append({"period_start_time": pd.Timestamp("2026-01-01") + pd.Timedelta(days=d), "job_id": str(j),
                         "workspace_id": "1", "historical_failure_rate": rate + rng.normal(0, 0.05),
                         "label_failed": int(rng.random() < rate), "success_avg_duration_s": 600.0 + 60 * j,
                         "label_duration_s": (600.0 + 60 * j) * rng.lognormal(0, 0.2)})
    frame = pd.DataFrame(rows)
    for spec in (F1, MAPE):
        for c in spec.features:
            if c not in frame:
                frame[c] = rng.normal(size=len(frame))
    frame[F1.label] = frame["label_failed"]
    frame["label_is_success"] = frame["label_failed"] == 0
    return frame


@pytest.mark.parametrize("spec", [F1, MAPE], ids=lambda s: s.name)
def test_naive_twin_predicts_the_baseline_rule_with_the_models_outputs(spec) -> None:  # noqa: ANN001
    frame = _job_frame()
    model, splits = fit_model(spec, frame, {"n_estimators": 10})
    twin = model.naive()
    assert twin is not None and twin.naive_ and not model.naive_
    test = splits["test"]
    out = CatalogPyfunc(twin).predict(None, test[model.features])
    assert list(out.columns) == list(spec.outputs)
    col = spec.params["baseline_col"]
    if spec is F1:
        expected = (test[col] > 0.5).astype(float).to_numpy()
    else:
        expected = test[col].to_numpy() * float(spec.params.get("output_scale", 1.0))
    np.testing.assert_allclose(out.iloc[:, 0].to_numpy(dtype=float), expected)
    # The baseline's metrics are the twin's: the report and the promotion compare like with like.
    assert model.evaluate_baseline(test)[spec.key_metric] == twin.evaluate(test)[spec.key_metric]
    # It travels through MLflow like the model (pickled with its pyfunc wrapper).
    again = pickle.loads(pickle.dumps(CatalogPyfunc(twin))).predict(None, test[model.features])
    pd.testing.assert_frame_equal(out, again)
    assert set(twin.importances()) == {col}


def test_baseline_that_reads_a_non_input_column_is_not_servable() -> None:
    spec = get_model("schema_drift_detector")  # its baseline reads change_count, not an input
    model = build_model(spec)
    assert spec.params["baseline_col"] not in spec.features
    assert model.naive() is None and model.naive(servable=False) is not None


# ---------------------------------------------------------------------------- operating point
def _user_days(n: int, seed: int) -> pd.DataFrame:
    spec = get_model("security_threat_detector")
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({c: rng.poisson(3, n).astype(float) for c in spec.features})
    frame["self_grants"] = 0.0  # a self-grant flags by itself (rule_floors): never part of a normal day
    frame["event_date"] = pd.Timestamp("2026-01-01") + pd.to_timedelta(np.arange(n) % 60, unit="D")
    frame["user_id"] = (np.arange(n) % 40).astype(str)
    return frame


def test_isolation_forest_flags_at_the_calibrated_operating_point() -> None:
    spec = get_model("security_threat_detector")
    model = build_model(spec, {"n_estimators": 50}).fit(_user_days(4000, 1))
    fresh = _user_days(4000, 2)
    out = model.predict(fresh[model.features])
    # Normal rows: the default threshold (tail p 1e-3 on the training rows) flags almost none.
    assert out["is_threat"].mean() <= 0.005
    attack = fresh.head(5).copy()
    # a credential attack with grants and sensitive reads (names from the catalog's feature set)
    hot = [c for c in ("failed_logins", "grants", "sensitive_table_access", "failed_login_count",
                       "permission_change_count", "sensitive_table_access_count") if c in model.features]
    assert len(hot) >= 3
    attack[hot] = 60.0
    hit = model.predict(attack[model.features])
    assert hit["is_threat"].all() and (hit["threat_score"] >= model.threshold).all()
    assert set(hit["alert_priority"]) <= {"MEDIUM", "HIGH"}
    # The naive twin (|event_z_score| on the same calibrated scale) is servable and flags alike.
    twin = model.naive()
    assert twin is not None and twin.predict(fresh[model.features])["is_threat"].mean() <= 0.005
