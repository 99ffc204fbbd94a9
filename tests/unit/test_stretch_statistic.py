"""The univariate detector's second statistic (detector v4): the distance of the last few values to
their nearest earlier stretches, fused with the forecast residual by weighted Bonferroni."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from health_monitor.detectors.univariate import UnivariateDetector, _Subsequences


def _frame(values: np.ndarray, freq: str = "10min") -> pd.DataFrame:
    return pd.DataFrame({"timestamp": pd.date_range("2026-03-02", periods=len(values), freq=freq),
                         "value": values})


def _job_runs(seed: int = 1, n: int = 3000) -> np.ndarray:
    """A job that runs for exactly 3 rows at irregular times (3-12 idle rows between runs)."""
    rng = np.random.default_rng(seed)
    x = np.zeros(n)
    i = 0
    while i < n:
        x[i:i + 3] = 10.0
        i += 3 + int(rng.integers(3, 13))
    return x + rng.normal(0, 0.5, n)


def test_distances_updated_in_place_equal_the_direct_computation() -> None:
    rng = np.random.default_rng(0)
    x = np.cumsum(rng.normal(size=2600)) + 1e4  # a random walk far from zero: round-off would show
    x[1800] = 1e9  # a huge spike: its squared differences (1e18) dwarf every other distance
    x[2200:2300] = x[2199]  # and exact repeats next to it, whose distance is 0
    sub = _Subsequences(length=10, k=2, history=1000, calib_window=5000)
    checked = 0
    for i, v in enumerate(x):
        near2 = sub._nearest(float(v))
        if near2 is None:
            continue
        vals = x[max(0, i + 1 - len(sub.buf_)):i + 1]
        diff = sliding_window_view(vals[:-10], 10) - vals[-10:]
        d2 = np.einsum("ij,ij->i", diff, diff)
        assert near2 == pytest.approx(np.partition(d2, 1)[:2].mean(), rel=1e-9, abs=1e-6), i
        checked += 1
    assert checked > 2500 and len(sub.buf_) == 1019  # the buffer stays its fixed size


def test_a_stretch_of_ordinary_values_never_seen_in_that_order_is_found() -> None:
    """The job keeps running for 20 rows: every value is one it often takes (10), so the forecast
    alone hardly moves; no earlier stretch of the key looks like it."""
    x = _job_runs()
    at = 2400
    x[at:at + 20] = 10 + np.random.default_rng(2).normal(0, 0.5, 20)
    alone = UnivariateDetector(subseq_weight=0.0).score_learn(_frame(x)).score
    fused = UnivariateDetector().score_learn(_frame(x))
    assert alone[at:at + 20].max() < 0.5
    assert fused.score[at:at + 20].max() >= 0.8
    first = at + int(np.argmax(fused.score[at:at + 20] >= 0.8))
    # the reason comes first after the value (`detect` prints two entries)
    assert "unlike the key's earlier stretches" in fused.evidence[first][1]
    # ...while the job's normal runs stay quiet at the default threshold
    assert (fused.score[500:at] >= 0.8).sum() == 0


def test_one_spike_counts_once_though_its_stretch_stays_unusual() -> None:
    rng = np.random.default_rng(3)
    x = 100 + rng.normal(0, 1.0, 1500)
    x[1400] += 40
    sub = _Subsequences(length=10, k=5, history=1000, calib_window=5000)
    ps, stats = [], []
    for v in x:
        p, stat = sub.tail_p(float(v), 1e-9)
        sub.learn(stat)
        ps.append(p)
        stats.append(stat)
    assert ps[1400] < 1e-3
    # the next 9 stretches still hold the spike (their distance stays high) but add nothing to it
    assert min(stats[1401:1410]) > 3 * np.median(stats[1000:1400])
    assert all(p == 1.0 for p in ps[1401:1410])


def test_fusion_costs_the_forecast_at_most_its_bonferroni_share() -> None:
    """p = min(p_forecast / (1 - w), p_stretch / w): a row scores at least the forecast-only score
    less log10(1 / (1 - w)) / 5, and more where the stretch is rarer."""
    x = _job_runs(seed=4)
    x[2000] += 30  # a spike the forecast finds
    w = 0.8
    # (no hold after level shifts: it carries a decaying share of an earlier row's score)
    alone = UnivariateDetector(subseq_weight=0.0, shift_hold=0).score_learn(_frame(x)).score
    fused = UnivariateDetector(subseq_weight=w, shift_hold=0).score_learn(_frame(x)).score
    share = math.log10(1 / (1 - w)) / 5
    assert np.all(fused >= alone - share - 1e-9)
    assert fused[2000] >= 0.8 and np.any(fused > alone + 0.05)
    # until the stretch statistic has learned 100 stretches it counts nothing: the forecast's p
    # is multiplied by exactly 1 / (1 - w)
    forecast_rows = np.zeros(len(x), dtype=bool)
    forecast_rows[40:120] = True
    forecast_rows &= (alone > share) & (alone < 1)
    assert forecast_rows.sum() >= 10
    np.testing.assert_allclose(fused[forecast_rows], alone[forecast_rows] - share, atol=1e-9)
    # where it is, its p is divided by w: halving w costs exactly log10(0.8 / 0.5) / 5
    half = UnivariateDetector(subseq_weight=0.5, shift_hold=0).score_learn(_frame(x)).score
    stretch_rows = (half > alone + 1e-9) & (fused < 1) & (half > 0)
    assert stretch_rows.sum() > 10
    diff = fused[stretch_rows] - half[stretch_rows]
    assert np.isclose(diff, math.log10(0.8 / 0.5) / 5, atol=1e-9).mean() > 0.9


def test_state_of_a_v3_detector_continues_with_an_empty_stretch_statistic() -> None:
    assert {"2", "3"} <= set(UnivariateDetector.continues) and UnivariateDetector.version == "4"
    x = _job_runs(seed=5)
    det = UnivariateDetector()
    det.score_learn(_frame(x[:1500]))
    for attr in ("subseq_", "subseq_len", "subseq_k", "subseq_history", "subseq_weight"):
        del det.__dict__[attr]  # what a pickled v3 detector holds
    det = UnivariateDetector.from_state(det.get_state())
    scores = det.score_learn(_frame(x[1500:])).score
    assert det.subseq_.filled_ == len(det.subseq_.buf_) and det.subseq_weight == 0.8
    assert np.all((scores >= 0) & (scores <= 1))


@pytest.mark.parametrize("bad", [{"subseq_len": 1}, {"subseq_k": 0}, {"subseq_history": 2, "subseq_k": 5},
                                 {"subseq_weight": 1.0}, {"subseq_weight": -0.1}])
def test_bad_parameters_are_one_clear_error(bad: dict) -> None:
    with pytest.raises(ValueError, match="subseq_"):
        UnivariateDetector(**bad)

