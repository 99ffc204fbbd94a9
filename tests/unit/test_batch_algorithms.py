"""A generic fast check over every batch algorithm, like scikit-learn's estimator checks.

Every catalog entry is fitted on a small synthetic frame built from the catalog alone (its
feature, key, time and label columns), with no Spark and no MLflow run, and held to the contract
every consumer (trainer, batch scorer, serving, the streams' blend) relies on: exactly the
catalog's outputs, one row per input row whatever the index, the key metric and a baseline,
missing values tolerated, row-wise predictions, and a pickled pyfunc that predicts the same
(MLflow stores models with cloudpickle). The detector checks are in tests/unit/test_detectors.py;
training on real feature tables, with determinism per seed, in tests/integration/test_training.py.
"""

from __future__ import annotations

import cloudpickle
import numpy as np
import pandas as pd
import pytest

from health_monitor.batch.base import CatalogPyfunc
from health_monitor.batch.trainer import fit_model
from health_monitor.catalog import MODELS, ModelSpec

#: Small and fast: the point is the contract, not the score.
FAST = {"n_estimators": 8, "use_prophet": False, "max_iter": 40, "n_paths": 50, "horizon": 20}
ROWS = 180
#: Feature-table columns some algorithms read beyond their features (totals they allocate).
EXTRA = {"budget_monthly_features": ("daily_cost",), "entity_cost_features": ("cost",)}


def _is_text(name: str) -> bool:
    return name in {"job_name", "primary_sku", "entity_type"} or name.endswith(("_id", "_name"))


def synthetic_frame(spec: ModelSpec, n: int = ROWS, seed: int = 0) -> pd.DataFrame:
    """A frame with the entry's columns: six entities over 60 days, gamma-distributed numbers
    (non-negative, skewed, like counts, costs and durations), text ids, a label per problem type."""
    rng = np.random.default_rng(seed)
    days = pd.date_range("2026-01-01", periods=60, freq="D")
    cols: dict[str, object] = {spec.time_key: np.tile(days, n // len(days) + 1)[:n]}
    for k in spec.entity_keys:
        cols[k] = [f"{k}{i % 6}" for i in range(n)]
    for f in spec.features:
        if f in cols:
            continue
        if _is_text(f):
            cols[f] = [f"{f}_{i % 5}" for i in range(n)]
        elif "date" in f:
            cols[f] = np.tile(days, n // len(days) + 1)[:n]
        else:
            cols[f] = rng.gamma(2.0, 1.0, n)
    for c in EXTRA.get(spec.feature_table, ()):
        cols[c] = rng.gamma(3.0, 10.0, n)
    # the naive baseline's column (a model's twin reads it even when it is not one of its features)
    base = spec.params.get("baseline_col")
    if base and base not in cols:
        cols[base] = rng.gamma(3.0, 10.0, n)
    for label in [c for c in (spec.label or "").split(",") if c]:
        if label.startswith("tag"):
            cols[label] = [("finance", "marketing", "platform")[i % 3] for i in range(n)]
        elif spec.problem_type in ("classification", "multilabel"):
            cols[label] = (rng.random(n) < 0.3).astype(int)
        else:
            cols[label] = rng.gamma(3.0, 10.0, n)
    flag = spec.params.get("row_filter")
    if flag:
        cols[flag] = True
    return pd.DataFrame(cols)


@pytest.fixture(scope="module", params=MODELS, ids=lambda m: m.name)
def fitted(request: pytest.FixtureRequest) -> tuple:
    spec = request.param
    model, splits = fit_model(spec, synthetic_frame(spec), FAST)
    return spec, model, splits


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True), check_exact=False, rtol=1e-9)


def test_predicts_the_catalog_outputs_one_row_per_input_row(fitted: tuple) -> None:
    spec, model, splits = fitted
    X = splits["test"][model.features]
    out = model.predict(X.reset_index(drop=True))
    assert list(out.columns) == list(spec.outputs)
    assert len(out) == len(X)
    # A caller's index is not the model's business (serving hands it any index).
    _same(model.predict(X.set_axis(range(1000, 1000 + len(X)))), out)


def test_reports_its_key_metric_and_a_baseline(fitted: tuple) -> None:
    spec, model, splits = fitted
    metrics = model.evaluate(splits["test"])
    assert spec.key_metric in metrics
    assert isinstance(model.evaluate_baseline(splits["test"]), dict)


def test_rows_are_predicted_independently(fitted: tuple) -> None:
    _spec, model, splits = fitted
    X = splits["test"][model.features].reset_index(drop=True)
    whole = model.predict(X)
    part = slice(len(X) // 3, len(X) // 3 + 4)  # a few rows from the middle (never empty)
    _same(model.predict(X.iloc[part].reset_index(drop=True)), whole.iloc[part])


def test_missing_values_are_tolerated(fitted: tuple) -> None:
    spec, model, splits = fitted
    X = splits["test"][model.features].reset_index(drop=True).copy()
    numeric = [c for c in model.features if pd.api.types.is_float_dtype(X[c])]
    X.loc[::2, numeric] = np.nan  # every other row loses its numbers (a new key's first windows)
    out = model.predict(X)
    assert list(out.columns) == list(spec.outputs) and len(out) == len(X)


def test_a_pickled_pyfunc_predicts_the_same(fitted: tuple) -> None:
    _spec, model, splits = fitted
    X = splits["test"][model.features].reset_index(drop=True)
    restored = cloudpickle.loads(cloudpickle.dumps(CatalogPyfunc(model)))
    _same(restored.predict(None, X), model.predict(X))
