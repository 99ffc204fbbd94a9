"""Generic checks every registered streaming detector must pass (river/scikit-learn style), plus
a few checks specific to the univariate stack."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from health_monitor.detectors.base import Scores, StreamingDetector
from health_monitor.detectors.registry import DETECTORS, make_detector
from health_monitor.detectors.univariate import UnivariateDetector

FEATURES = ["logins", "failed_rate", "bytes_out"]

#: Parameters that make each registered detector usable on the frames below.
PARAMS: dict[str, dict] = {
    "univariate_robust_ensemble": {},
    "multivariate_robust_hst": {"features": FEATURES, "directions": {"logins": 0}},
}


def make(name: str) -> StreamingDetector:
    return make_detector(name, **PARAMS[name])


def frame(name: str, values: np.ndarray, freq: str = "h", seed: int = 0,
          start: str = "2026-03-02") -> pd.DataFrame:
    """One key's frame for detector ``name`` with ``values`` as the (main) signal."""
    ts = pd.date_range(start, periods=len(values), freq=freq)
    if name.startswith("univariate"):
        return pd.DataFrame({"timestamp": ts, "value": values})
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "timestamp": ts,
        "logins": values,
        "failed_rate": np.clip(0.05 + rng.normal(0, 0.01, len(values)), 0, 1),
        "bytes_out": 1e6 * (1 + rng.normal(0, 0.05, len(values))),
    })


def noisy_seasonal(n: int, seed: int = 1, period: int = 24) -> np.ndarray:
    rng = np.random.default_rng(seed)
    i = np.arange(n)
    return 50 + 20 * np.sin(2 * np.pi * i / period) + rng.normal(0, 2, n)


def signal(name: str, n: int, seed: int = 1) -> np.ndarray:
    """Normal behaviour: hourly seasonality for the univariate stack (it models it), a noisy
    steady level for per-key baselines (which deliberately do not)."""
    if name.startswith("univariate"):
        return noisy_seasonal(n, seed)
    return 50 + np.random.default_rng(seed).normal(0, 2, n)


def run(det: StreamingDetector, df: pd.DataFrame, chunks: int = 1) -> Scores:
    parts = [det.score_learn(c) for c in np.array_split(df, chunks)] if chunks > 1 else [det.score_learn(df)]
    return Scores(score=np.concatenate([p.score for p in parts]),
                  expected=np.concatenate([p.expected for p in parts]),
                  evidence=[e for p in parts for e in p.evidence])


ALL = sorted(DETECTORS)


def test_registry_names_and_versions() -> None:
    for name, cls in DETECTORS.items():
        assert cls.name == name and isinstance(cls.version, str) and cls.version
    assert isinstance(make_detector("univariate"), UnivariateDetector)
    with pytest.raises(KeyError, match="unknown detector"):
        make_detector("nope")


@pytest.mark.parametrize("name", ALL)
def test_state_round_trip_continues_identically(name: str) -> None:
    df = frame(name, noisy_seasonal(300))
    straight = run(make(name), df)
    det = make(name)
    det.score_learn(df.iloc[:170])
    restored = StreamingDetector.from_state(det.get_state())
    rest = restored.score_learn(df.iloc[170:])
    np.testing.assert_array_equal(rest.score, straight.score[170:])
    np.testing.assert_array_equal(rest.expected, straight.expected[170:])


@pytest.mark.parametrize("name", ALL)
def test_deterministic(name: str) -> None:
    df = frame(name, noisy_seasonal(250))
    a, b = run(make(name), df), run(make(name), df)
    np.testing.assert_array_equal(a.score, b.score)
    assert a.evidence == b.evidence


@pytest.mark.parametrize("name", ALL)
def test_causal_and_batch_invariant(name: str) -> None:
    values = noisy_seasonal(300)
    values[200] += 60
    df = frame(name, values)
    whole = run(make(name), df)
    micro = run(make(name), df, chunks=7)
    np.testing.assert_allclose(micro.score, whole.score, rtol=0, atol=0)
    # appending different futures never changes the past
    changed = df.copy()
    changed.loc[250:, changed.columns[1:]] = 1e6
    other = run(make(name), changed)
    np.testing.assert_array_equal(run(make(name), df.iloc[:250]).score, other.score[:250])


@pytest.mark.parametrize("name", ALL)
def test_scores_in_unit_interval_and_shapes(name: str) -> None:
    rng = np.random.default_rng(3)
    values = rng.standard_cauchy(400) * 10 + 100  # heavy tails on purpose
    s = run(make(name), frame(name, values))
    assert s.score.shape == (400,) and s.expected.shape == (400,) and len(s.evidence) == 400
    assert np.all((s.score >= 0) & (s.score <= 1)) and np.isfinite(s.score).all()


@pytest.mark.parametrize("name", ALL)
def test_planted_anomaly_scores_above_normal_rows(name: str) -> None:
    values = signal(name, 24 * 21)
    values[400] += 40  # a spike of 20 noise sigmas
    s = run(make(name), frame(name, values))
    normal = np.delete(s.score, 400)[100:]
    assert s.score[400] >= 0.8
    assert s.score[400] > np.quantile(normal, 0.999)
    assert s.evidence[400], "an anomaly must come with evidence"


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("kind", ["constant", "seasonal"])
def test_no_alarm_storm(name: str, kind: str) -> None:
    n = 24 * 28
    values = np.full(n, 7.0) if kind == "constant" else noisy_seasonal(n, seed=5)
    s = run(make(name), frame(name, values))
    assert (s.score >= 0.8).mean() <= 0.005
    assert s.score[:50].max() < 0.8, "warm-up must not alarm"


@pytest.mark.parametrize("name", ALL)
def test_level_shift_flagged_then_adapted(name: str) -> None:
    values = signal(name, 24 * 21, seed=7)
    values[300:] += 50
    s = run(make(name), frame(name, values))
    assert s.score[300:305].max() >= 0.8, "the shift itself is anomalous"
    assert (s.score[330:] >= 0.8).sum() <= 2, "the new level becomes normal"


def test_jump_off_flat_line_is_anomalous_and_nan_rows_are_not() -> None:
    values = np.full(300, 3.0)
    values[200] = 3.5
    values[[100, 150]] = np.nan
    det = UnivariateDetector()
    s = det.score_learn(frame("univariate", values))
    assert s.score[200] >= 0.8 and s.score[[100, 150]].max() == 0
    assert not det.is_anomaly(s)[[100, 150]].any()
    assert "level shift" not in " ".join(s.evidence[200])


@pytest.mark.parametrize("freq,seasonal", [("min", False), ("5min", True), ("D", True)])
def test_any_interval_with_gaps(freq: str, seasonal: bool) -> None:
    n = 2000 if freq != "D" else 400
    period = {"min": 1, "5min": 288, "D": 7}[freq]
    rng = np.random.default_rng(11)
    i = np.arange(n)
    values = 10 + (5 * np.sin(2 * np.pi * i / period) if seasonal else 0) + rng.normal(0, 0.5, n)
    values[n - 50] += 8
    df = frame("univariate", values, freq=freq)
    df = df.drop(index=list(range(n // 2, n // 2 + 40))).reset_index(drop=True)  # a gap in time
    s = UnivariateDetector().score_learn(df)
    spike = len(df) - 50
    assert s.score[spike] >= 0.8
    assert (np.delete(s.score, spike) >= 0.8).mean() < 0.01


def test_multivariate_zero_inflated_counts_no_storm_and_priors() -> None:
    """Sparse activity (mostly 0, sometimes a few) is normal for its key; a burst is not."""
    from health_monitor.detectors.multivariate import MultivariateDetector, population_prior

    n = 24 * 30
    feats = ["sensitive_reads", "tables_touched", "bytes_out"]

    def user(seed: int) -> pd.DataFrame:
        r = np.random.default_rng(seed)
        return pd.DataFrame({
            "timestamp": pd.date_range("2026-01-01", periods=n, freq="h"),
            "sensitive_reads": r.poisson(0.1, n).astype(float),
            "tables_touched": r.poisson(4, n).astype(float),
            "bytes_out": np.where(r.random(n) < 0.2, r.lognormal(12, 0.5, n), 0.0),
        })

    prior = population_prior(pd.concat([user(s) for s in range(100, 105)]), feats)
    assert set(prior) == set(feats) and all(scale > 0 for _, scale in prior.values())
    df = user(1)
    df.loc[600, "sensitive_reads"] = 30
    for p in (None, prior):
        s = MultivariateDetector(feats, prior=p).score_learn(df)
        normal = np.delete(s.score, 600)[24 * 7:]
        assert (normal >= 0.8).mean() <= 0.01
        assert s.score[600] >= 0.8 and "sensitive_reads 30" in s.evidence[600][0]


def test_multivariate_log_features_and_missing_columns() -> None:
    from health_monitor.detectors.multivariate import MultivariateDetector

    with pytest.raises(ValueError, match="log_features"):
        MultivariateDetector(["a"], log_features=["b"])
    n = 400
    rng = np.random.default_rng(2)
    df = pd.DataFrame({"timestamp": pd.date_range("2026-01-01", periods=n, freq="h"),
                       "duration_s": rng.lognormal(8, 0.3, n)})
    df.loc[300, "duration_s"] *= 10
    det = MultivariateDetector(["duration_s"], log_features=["duration_s"])
    s = det.score_learn(df)
    assert s.score[300] >= 0.8 and (np.delete(s.score, 300)[50:] >= 0.8).mean() < 0.01
    assert abs(s.expected[300] - np.exp(8)) / np.exp(8) < 0.5  # baseline back in seconds
    with pytest.raises(ValueError, match="lacks feature"):
        det.score_learn(df.rename(columns={"duration_s": "d"}))


def test_multivariate_a_count_that_was_always_zero_is_not_an_alarm_at_one() -> None:
    """A count moves in whole steps: its first 1 (one weekend event, one grant) is not a z of
    millions, while a real burst still is."""
    from health_monitor.detectors.multivariate import MultivariateDetector

    n = 24 * 10
    df = pd.DataFrame({"timestamp": pd.date_range("2026-01-01", periods=n, freq="h"),
                       "weekend_events": np.zeros(n), "logins": np.random.default_rng(4).poisson(1, n)})
    df.loc[200, "weekend_events"] = 1
    df.loc[220, "weekend_events"] = 12
    s = MultivariateDetector(["weekend_events", "logins"]).score_learn(df)
    assert s.score[200] < 0.8
    assert s.score[220] >= 0.8
