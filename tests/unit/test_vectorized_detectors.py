"""The vectorized detectors score exactly as the per-row detectors do, key for key, on the same rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from river.anomaly import HalfSpaceTrees

from health_monitor.detectors.base import TailCalibrator
from health_monitor.detectors.multivariate import MultivariateDetector
from health_monitor.detectors.vectorized import (
    VectorHalfSpaceTrees,
    VectorMultivariateDetector,
    VectorTailCalibrator,
    pad_keys,
)

FEATURES = ["logins", "failed_login_rate", "admin_actions", "export_gb"]
PARAMS = {"log_features": ("export_gb",), "min_scale": {"export_gb": 0.5}}


def _key_frame(rng: np.random.Generator, n: int, kind: int) -> pd.DataFrame:
    """One key's hourly windows: counts, a rate, a zero-inflated volume, NaN rows, and bursts."""
    ts = pd.date_range("2026-03-02", periods=n, freq="h")
    logins = rng.poisson(3 + kind, n).astype(float)
    rate = np.clip(rng.beta(1, 20, n), 0, 1)
    admin = (rng.random(n) < 0.05).astype(float) * rng.integers(1, 4, n)
    export = np.where(rng.random(n) < 0.1, rng.lognormal(-2, 1.5, n), 0.0)
    if n > 150:  # a burst the detector should notice, late enough for the calibrator's tail
        logins[n - 20] = 80.0
        export[n - 10] = 400.0
    frame = pd.DataFrame({"timestamp": ts, "logins": logins, "failed_login_rate": rate,
                          "admin_actions": admin, "export_gb": export})
    if kind == 2:  # rows with no feature (neither scored nor learned) and single NaN features
        frame.loc[frame.index[5:8], FEATURES] = np.nan
        frame.loc[frame.index[40], "export_gb"] = np.nan
    return frame


def _per_row(frames: list[pd.DataFrame], cuts: list[int], **params: object) -> list:
    """The per-key detector, fed each key's rows in the same micro-batches as the vector form."""
    out = []
    for f in frames:
        det = MultivariateDetector(FEATURES, **params)
        parts = [det.score_learn(f.iloc[a:b].reset_index(drop=True)) for a, b in zip(cuts, cuts[1:], strict=False)]
        out.append((np.concatenate([p.score for p in parts]) if parts else np.zeros(0),
                    np.concatenate([p.expected for p in parts]) if parts else np.zeros(0),
                    [e for p in parts for e in p.evidence]))
    return out


@pytest.mark.parametrize("params", [PARAMS, {**PARAMS, "prior": {"logins": (3.0, 2.0), "export_gb": (0.0, 0.1)},
                                              "directions": {"failed_login_rate": 0, "admin_actions": -1}}])
def test_vector_multivariate_gives_the_per_row_scores_expected_values_and_evidence(params: dict):
    rng = np.random.default_rng(7)
    lengths = [260, 0, 230, 35, 260, 120]
    frames = [_key_frame(rng, n, k % 3) for k, n in enumerate(lengths)]
    cuts = [0, 70, 200, 260]  # three micro-batches: the state carries over between calls
    want = _per_row(frames, cuts, **params)
    vec = VectorMultivariateDetector(len(frames), FEATURES, **params)
    got_s, got_e, got_ev = [], [], []
    for a, b in zip(cuts, cuts[1:], strict=False):
        part = [f.iloc[a:b] for f in frames]
        values, n = pad_keys(part, FEATURES)
        s, e, ev, _ = vec.score_learn(values, n)
        got_s.append(s)
        got_e.append(e)
        got_ev.append(ev)
    flagged = 0
    for k, (ws, we, wev) in enumerate(want):
        gs = np.concatenate([s[k, :len(ev[k])] for s, ev in zip(got_s, got_ev, strict=True)])
        ge = np.concatenate([e[k, :len(ev[k])] for e, ev in zip(got_e, got_ev, strict=True)])
        gev = [row for ev in got_ev for row in ev[k]]
        assert len(gs) == len(ws) == lengths[k]
        np.testing.assert_allclose(gs, ws, rtol=0, atol=1e-9)
        np.testing.assert_allclose(ge, we, rtol=1e-12, equal_nan=True)
        assert gev == wev
        flagged += int((ws >= 0.8).sum())
    assert flagged > 0  # the bursts are scored high by both: the comparison covers the tail path


def test_vector_tail_calibrator_matches_the_per_key_one_through_refits_and_a_full_window():
    rng = np.random.default_rng(3)
    keys, window = 4, 150
    per_key = [TailCalibrator(window=window) for _ in range(keys)]
    vec = VectorTailCalibrator(keys, window=window)
    for t in range(400):
        stat = np.abs(rng.standard_t(2 + np.arange(keys), keys)) * (1 + (t % 97 == 0) * 20)
        idx = np.flatnonzero(rng.random(keys) < 0.8)  # not every key has a row every step
        want = [per_key[k].score(float(stat[k])) for k in idx]
        np.testing.assert_allclose(vec.score(stat[idx], idx), want, rtol=0, atol=1e-12)
        for k in idx:
            per_key[k].learn(float(stat[k]))
        vec.learn(stat[idx], idx)
    np.testing.assert_allclose(vec.q90_, [c.q90_ for c in per_key])
    np.testing.assert_allclose(vec.q99_, [c.q99_ for c in per_key])


def test_vector_half_space_trees_score_as_river_key_by_key():
    rng = np.random.default_rng(11)
    feats, keys = ["a", "b", "c"], 5
    river = [HalfSpaceTrees(n_trees=10, height=6, window_size=32, limits={f: (0.0, 1.0) for f in feats}, seed=42)
             for _ in range(keys)]
    vec = VectorHalfSpaceTrees(keys, feats, n_trees=10, height=6, window_size=32, seed=42)
    for _ in range(150):
        idx = np.flatnonzero(rng.random(keys) < 0.7)
        x = rng.beta(2, 5, (len(idx), 3)) ** rng.choice([1.0, 0.2], len(idx))[:, None]  # some outliers
        want = [river[k].score_one(dict(zip(feats, row, strict=True))) for k, row in zip(idx, x.tolist(), strict=True)]
        assert vec.score(x, idx).tolist() == pytest.approx(want, abs=1e-12)
        for k, row in zip(idx, x.tolist(), strict=True):
            river[k].learn_one(dict(zip(feats, row, strict=True)))
        vec.learn(x, idx)
    assert not vec.first_window_.any()
