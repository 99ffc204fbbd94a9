"""The vectorized univariate detector scores exactly as the per-row one, key for key, on the same rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from health_monitor.detectors.univariate import UnivariateDetector
from health_monitor.detectors.vector_univariate import VectorUnivariateDetector

START = pd.Timestamp("2026-03-02")


def _series(kind: str, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """One key's rows: a shape the detector meets in cost data, with planted anomalies."""
    i = np.arange(n)
    ts = START + pd.to_timedelta(i, unit="h")
    if kind == "daily":  # hour-of-day and day-of-week models, a spike and a level shift
        x = 50 + 20 * np.sin(2 * np.pi * i / 24) + 5 * (ts.dayofweek >= 5) + rng.normal(0, 2, n)
        x[n // 2] *= 6
        x[3 * n // 4:] += 40
    elif kind == "walk":  # a random walk far from zero, a huge spike next to exact repeats
        x = np.cumsum(rng.normal(0, 1, n)) + 1e4
        x[n - 300] = 1e9
        x[n - 200:n - 120] = x[n - 201]
    elif kind == "quantized":  # zero-inflated counts with bursts
        x = np.where(rng.random(n) < 0.6, 0.0, rng.poisson(3, n)).astype(float)
        x[n // 3:n // 3 + 12] = 40.0
    elif kind == "gappy":  # hours without rows (a gap widens the forecast), NaN and inf values
        keep = np.sort(rng.choice(n * 2, n, replace=False))
        ts = START + pd.to_timedelta(keep, unit="h")
        x = 10 + 3 * np.sin(2 * np.pi * keep / 24) + rng.normal(0, 0.5, n)
        x[[30, 31, 400]] = np.nan
        x[500] = np.inf
        x[n - 100] = 80.0
    elif kind == "cycle":  # a non-calendar cycle on a row-index clock (no calendar models)
        ts = pd.Timestamp(0) + pd.to_timedelta(i * 60, unit="s")
        x = np.sin(2 * np.pi * i / 37) * 10 + rng.normal(0, 0.3, n)
        x[n - 150:n - 140] = 0.0
    else:  # flat, then a jump off the flat line
        x = np.full(n, 7.25)
        if n > 50:
            x[n - 50] = 9.0
    frame = pd.DataFrame({"timestamp": ts, "value": x})
    if kind == "gappy":
        frame.loc[frame.index[200], "timestamp"] = pd.NaT
    return frame


def _tsec(frame: pd.DataFrame) -> np.ndarray:
    ts = pd.to_datetime(frame["timestamp"])
    return np.where(ts.isna().to_numpy(), np.nan, ts.to_numpy(dtype="datetime64[ns]").astype("int64") / 1e9)


def _play_vector(vec: VectorUnivariateDetector, frames: list[pd.DataFrame], cuts: list[int],
                 rows: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, list]]:
    """The frames through ``vec`` in the micro-batches ``cuts`` (keys padded to a common length)."""
    got: list[tuple[list, list, list]] = [([], [], []) for _ in frames]
    for a, b in zip(cuts, cuts[1:], strict=False):
        part = [f.iloc[a:b] for f in frames]
        lengths = np.array([len(p) for p in part])
        width = int(lengths.max())
        t, x = np.full((len(part), width), np.nan), np.full((len(part), width), np.nan)
        for k, p in enumerate(part):
            t[k, :len(p)] = _tsec(p)
            x[k, :len(p)] = p["value"].to_numpy(float)
        s, e, ev = vec.score_learn(t, x, lengths, rows)
        for k, m in enumerate(lengths.tolist()):
            got[k][0].append(s[k, :m])
            got[k][1].append(e[k, :m])
            got[k][2].extend(ev[k])
    return [(np.concatenate(s), np.concatenate(e), ev) for s, e, ev in got]


def _assert_same(got: tuple, want) -> None:  # noqa: ANN001
    np.testing.assert_allclose(got[0], want.score, rtol=0, atol=1e-9)
    np.testing.assert_allclose(got[1], want.expected, rtol=1e-9, equal_nan=True)
    assert got[2] == want.evidence


@pytest.mark.parametrize("params", [{}, {"subseq_weight": 0.0, "seasonal": False, "shift_hold": 0}])
def test_vector_univariate_gives_the_per_row_scores_expected_values_and_evidence(params: dict) -> None:
    rng = np.random.default_rng(4)
    kinds = ["daily", "walk", "quantized", "gappy", "cycle", "flat", "daily", "flat"]
    lengths = [1400, 1400, 700, 1300, 1100, 300, 90, 0]
    frames = [_series(kind, n, rng) for kind, n in zip(kinds, lengths, strict=True)]
    cuts = [0, 13, 400, 1050, 1400]  # micro-batches: state carries over, keys end at different steps
    vec = VectorUnivariateDetector(len(frames), **params)
    got = _play_vector(vec, frames, cuts, np.arange(len(frames)))
    high = 0
    for k, (f, g) in enumerate(zip(frames, got, strict=True)):
        det = UnivariateDetector(**params)
        parts = [det.score_learn(f.iloc[a:b].reset_index(drop=True)) for a, b in zip(cuts, cuts[1:], strict=False)]
        want = type(parts[0])(np.concatenate([p.score for p in parts]), np.concatenate([p.expected for p in parts]),
                              [e for p in parts for e in p.evidence])
        _assert_same(g, want)
        high += int((want.score >= 0.8).sum())
        if len(f) > 100:
            assert vec.n_[k] == det.n_
    assert high >= 5, "the comparison must reach the alarm tail"
    if not params:
        assert vec.on_[:, 3:5].any() and vec.on_[4, 5], "calendar and cycle models were added"
        assert (vec.since_ > 0).any() and vec.d2ok_.any(), "distances were updated in place"


def test_rows_loaded_from_per_key_detectors_score_as_they_would() -> None:
    rng = np.random.default_rng(9)
    frames = [_series("daily", 1300, rng), _series("gappy", 900, rng), _series("cycle", 500, rng)]
    vec = VectorUnivariateDetector(1)
    for f in frames:
        det = UnivariateDetector()
        det.score_learn(f.iloc[:-200].reset_index(drop=True))
        row = vec.add_keys(1)
        vec.load_key(row, det)
        got = _play_vector(vec, [f.iloc[-200:]], [0, 200], np.array([row]))[0]
        _assert_same(got, det.score_learn(f.iloc[-200:].reset_index(drop=True)))
    assert vec.n_[0] == 0  # the row that was never loaded is untouched
    vec.reset_key(1)
    assert vec.n_[1] == 0 and np.isnan(vec.level_[1]).all()
    with pytest.raises(ValueError, match="other parameters"):
        vec.load_key(1, UnivariateDetector(calib_window=2000))


def _per_row(frames: list[pd.DataFrame], cuts: list[int], **params: object) -> list:
    """Each frame through its own per-row detector, in the micro-batches ``cuts``."""
    out = []
    for f in frames:
        det = UnivariateDetector(**params)
        parts = [det.score_learn(f.iloc[a:b].reset_index(drop=True)) for a, b in zip(cuts, cuts[1:], strict=False)]
        out.append(type(parts[0])(np.concatenate([p.score for p in parts]),
                                  np.concatenate([p.expected for p in parts]), [e for p in parts for e in p.evidence]))
    return out


def test_rings_wrap_around_as_the_per_row_deques_drop_their_oldest() -> None:
    """Past 2,048 rows the history ring wraps (the cycle search at 2,048 reads it oldest first);
    with a 300-row calibration window both calibrators' rings wrap many times."""
    rng = np.random.default_rng(21)
    frames = [_series("daily", 2300, rng), _series("cycle", 2200, rng), _series("quantized", 2100, rng)]
    cuts = [0, 700, 2050, 2300]
    vec = VectorUnivariateDetector(len(frames), calib_window=300)
    got = _play_vector(vec, frames, cuts, np.arange(len(frames)))
    for g, want in zip(got, _per_row(frames, cuts, calib_window=300), strict=True):
        _assert_same(g, want)
    assert (vec.hist_len_ == 2048).all() and (vec.calib_.len_ == 300).all() and (vec.scalib_.len_ == 300).all()
    assert vec.on_[1, 5], "the cycle model was found on the wrapped history"


def test_a_keys_state_is_one_fixed_width_row_packed_and_stacked_as_the_bucketed_stream_does() -> None:
    """Every per-key array keeps its width whatever the key has learned, so the bucketed layout
    packs a key's row into bytes and stacks the rows of a call's keys; a detector stacked from
    packed rows scores on as the one they were packed from (and as the per-row detectors)."""
    from health_monitor.streaming.bucketed import BucketScorer, _get

    scorer = BucketScorer("cost")
    cls, params = scorer.vector
    assert cls is VectorUnivariateDetector
    rng = np.random.default_rng(5)
    frames = [_series("daily", 2200, rng), _series("gappy", 900, rng), _series("flat", 60, rng)]
    cuts = [0, 2100, 2200]
    fresh = cls(len(frames), **params)
    vec = scorer._stack([None] * len(frames))
    first = _play_vector(vec, frames, cuts[:2], np.arange(len(frames)))
    for p in scorer.paths:  # the widths did not move
        assert _get(vec, p).shape == _get(fresh, p).shape, p
    packed = scorer._pack(vec)
    assert all(len(r) <= scorer.width for r in packed)
    again = scorer._stack(packed[::-1])  # the keys' rows in another order, as another call stacks them
    rest = _play_vector(again, frames, cuts[1:], np.arange(len(frames))[::-1])
    for a, b, want in zip(first, rest, _per_row(frames, cuts), strict=True):
        _assert_same((np.concatenate([a[0], b[0]]), np.concatenate([a[1], b[1]]), a[2] + b[2]), want)
