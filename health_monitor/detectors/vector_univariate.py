"""The univariate detector for many keys at once: state as arrays, one time step of every key in NumPy.

Why: cost's :class:`~health_monitor.detectors.univariate.UnivariateDetector` scores one row at a
time in Python (about 70 CPU-us per row, two thirds of it the stretch statistic's NumPy calls on
a 1,000-value buffer), and in the bucketed stream it was looped key by key, each key's detector
unpickled and pickled per call. :class:`VectorUnivariateDetector` keeps every key's state in
arrays of shape ``(keys, ...)`` and steps all keys of a call through their rows together, as
:class:`~health_monitor.detectors.vectorized.VectorMultivariateDetector` does for the
multivariate detector, so the Python overhead is per time step, not per row.

The recurrences are the per-row ones operation for operation (the same IEEE additions and
products in the same order), so the scores agree with the per-row detector's to round-off
(``tests/unit/test_vector_univariate.py``: within 1e-9, in practice equal):

* the forecasters are six fixed slots per key, in the per-key list's order (three non-seasonal,
  hour-of-day, day-of-week, the autocorrelation cycle), each with an on flag; a slot's season
  is a row of ``season_``;
* the stretch statistic keeps the per-key buffer, its distances and the rule for when they are
  recomputed; a recomputation (while the buffer fills, and every 256 rows) is one ``einsum``
  over the keys that need it, which gives the per-key ``einsum``'s values bit for bit;
* both calibrators are :class:`~health_monitor.detectors.vectorized.VectorTailCalibrator`.

Every per-key array has a fixed width (rings of fixed capacity with a length and a position:
the history's 2,048 rows, the calibrators' windows, the stretch buffer; a seasonal slot holds up
to :data:`_SEASON` phases), so a key's state is one fixed-width row of every array, the form the
stream's bucketed layout packs per key and stacks per call
(:class:`~health_monitor.streaming.bucketed.BucketScorer`), as it does the multivariate
detector's.

What stays per key, and why: the events that change a key's set of forecasters (the sampling
step found after 16 rows, then the calendar models; the autocorrelation search at 64, 128, ...
8,192 rows) run the per-key code itself on the key's state (a handful of times in a key's life,
each a replay of its history, which has no sensible cross-key form); the calibrators' rare-tail
refinement (rows already rarer than 1%); and the evidence strings of high scores.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from health_monitor.detectors.base import DECADES
from health_monitor.detectors.base import SIGMA_PER_MAD as _S
from health_monitor.detectors.univariate import _DAY, _STRETCH_SCALE, _WEEK, UnivariateDetector, _Model
from health_monitor.detectors.vectorized import VectorTailCalibrator

#: The forecaster slots: the per-key detector's three starting models, then the models it adds.
_BASE = (("last value + trend", 0.9, 0.1), ("EW level (fast)", 0.5, 0.02), ("EW level (slow)", 0.1, 0.01))
_SLOTS = 6
_ALPHA = np.array([0.9, 0.5, 0.1, 0.2, 0.2, 0.2])
_BETA = np.array([0.1, 0.02, 0.01, 0.005, 0.005, 0.005])
_GAMMA = np.array([0.0, 0.0, 0.0, 0.15, 0.15, 0.15])
_PHI = 0.98
#: Row counts at which the per-key detector searches the history for a cycle.
_ACF_AT = (64, 128, 256, 512, 1024, 2048, 4096, 8192)
_HISTORY = 2048
_DIFFS = 16
#: Phases a seasonal slot can hold: the autocorrelation cycle's lag is under a third of the
#: history (hour-of-day has at most 96, day-of-week x hour 168).
_SEASON = _HISTORY // 3
#: Keys whose stretch distances are recomputed in one einsum (bounds its temporary arrays).
_RECOMPUTE_KEYS = 64


class _Label:
    """What :meth:`UnivariateDetector._evidence` reads of the best model."""

    def __init__(self, label: str) -> None:
        self.label = label


class _KeyModels:
    """One key's forecasters as the per-key detector holds them, for the per-key code that adds
    models (``_add_calendar_models``, ``_add_period_model``, ``_new_model``) to run on."""

    _new_model = UnivariateDetector._new_model
    _add_calendar_models = UnivariateDetector._add_calendar_models
    _add_period_model = UnivariateDetector._add_period_model

    def __init__(self, det: VectorUnivariateDetector, k: int) -> None:
        self.t0_, self.step_ = float(det.t0_[k]), float(det.step_[k])
        self.history_ = deque(det._history(k), maxlen=_HISTORY)
        self.huber, self.scale_alpha, self.seasonal = det.proto.huber, det.proto.scale_alpha, det.proto.seasonal
        self.models_ = det._models(k)


class VectorUnivariateDetector:
    """:class:`~health_monitor.detectors.univariate.UnivariateDetector` for ``keys`` keys.

    Takes the same parameters (plus ``keys``); :meth:`score_learn` takes every key's timestamps
    (epoch seconds) and values as ``(keys, steps)`` arrays and steps all keys through their rows
    together. Scores, expected values and evidence are those of one per-key detector per key fed
    the same rows.
    """

    features: tuple[str, ...] = ()  # a univariate detector judges one value, no named features

    def __init__(self, keys: int, **params: Any) -> None:
        proto = UnivariateDetector(**params)  # validates the parameters and holds their defaults
        self.proto = proto
        self.name, self.version = proto.name, proto.version
        self.keys = 0
        L = proto.subseq_len
        self.size_ = proto.subseq_history + 2 * L - 1
        self.calib_ = VectorTailCalibrator(0, window=proto.calib_window)
        self.scalib_ = VectorTailCalibrator(0, window=proto.calib_window)
        self._fresh = {
            "n_": (0, np.int64, ()), "t0_": (np.nan, float, ()), "t_last_": (np.nan, float, ()),
            "step_": (np.nan, float, ()), "diffs_": (0.0, float, (_DIFFS,)), "ndiffs_": (0, np.int64, ()),
            "on_": (False, bool, (_SLOTS,)), "level_": (np.nan, float, (_SLOTS,)), "trend_": (0.0, float, (_SLOTS,)),
            "mad_": (0.0, float, (_SLOTS,)), "err_": (0.0, float, (_SLOTS,)), "cpos_": (0.0, float, (_SLOTS,)),
            "cneg_": (0.0, float, (_SLOTS,)), "rsum_pos_": (0.0, float, (_SLOTS,)),
            "rsum_neg_": (0.0, float, (_SLOTS,)), "nm_": (0, np.int64, (_SLOTS,)),
            "rn_pos_": (0, np.int64, (_SLOTS,)), "rn_neg_": (0, np.int64, (_SLOTS,)),
            "bins_": (1, np.int64, (_SLOTS,)), "period_": (0.0, float, (_SLOTS,)),
            "season_": (0.0, float, (3, _SEASON)), "season_n_": (0, np.int64, (3, _SEASON)),
            "hist_t_": (0.0, float, (_HISTORY,)), "hist_x_": (0.0, float, (_HISTORY,)),
            "hist_len_": (0, np.int64, ()),
            "hist_pos_": (0, np.int64, ()),
            "long_mad_": (0.0, float, ()), "abs_level_": (0.0, float, ()), "resolution_": (np.inf, float, ()),
            "res_count_": (0, np.int64, ()), "last_x_": (np.nan, float, ()), "hold_score_": (0.0, float, ()),
            "hold_left_": (0, np.int64, ()),
            # the stretch statistic
            "buf_": (0.0, float, (self.size_,)), "filled_": (0, np.int64, ()), "usual_": (np.nan, float, ()),
            "recent_": (np.inf, float, (L - 1,)), "recent_pos_": (0, np.int64, ()),
            "d2_": (0.0, float, (self.size_ - 2 * L + 1,)), "d2ok_": (False, bool, ()),
            "since_": (0, np.int64, ()), "big_": (0.0, float, ()),
        }
        for name, (fill, dtype, shape) in self._fresh.items():
            setattr(self, name, np.full((0, *shape), fill, dtype=dtype))
        self.add_keys(keys)

    # ------------------------------------------------------------------ keys
    def add_keys(self, n: int) -> int:
        """Room for ``n`` more keys (fresh state, as a new per-key detector); returns the first new row."""
        first = self.keys
        if n <= 0:
            return first
        for name, (fill, dtype, shape) in self._fresh.items():
            setattr(self, name, np.concatenate([getattr(self, name), np.full((n, *shape), fill, dtype=dtype)]))
        self.on_[first:, :3] = True
        self.calib_.add_keys(n)
        self.scalib_.add_keys(n)
        self.keys += n
        return first

    def reset_key(self, k: int) -> None:
        """Row ``k`` back to a fresh detector's state."""
        self.load_key(k, UnivariateDetector(**self._params()))

    def _params(self) -> dict[str, Any]:
        return _params(self.proto)

    def load_key(self, k: int, det: UnivariateDetector) -> None:
        """Put a per-key detector's learned state into row ``k`` (a catch-up's handed-over key):
        from here on row ``k`` scores as ``det`` would. A detector with other parameters than
        this one's (a restored state keeps its own) raises ValueError: the caller relearns."""
        sub = det._subsequences()
        if sub is None or _params(det) != self._params():
            raise ValueError("the per-key detector has other parameters")
        for name, (fill, _, _) in self._fresh.items():
            getattr(self, name)[k] = fill
        self.n_[k], self.t0_[k], self.t_last_[k], self.step_[k] = det.n_, det.t0_, det.t_last_, det.step_
        diffs = list(det.diffs_)[:_DIFFS]
        self.diffs_[k, :len(diffs)] = diffs
        self.ndiffs_[k] = len(diffs)
        self._put_models(k, det.models_)
        hist = list(det.history_)
        self.hist_t_[k, :len(hist)] = [t for t, _ in hist]
        self.hist_x_[k, :len(hist)] = [x for _, x in hist]
        self.hist_len_[k] = len(hist)
        self.hist_pos_[k] = len(hist) % _HISTORY
        self.long_mad_[k], self.abs_level_[k] = det.long_mad_, det.abs_level_
        self.resolution_[k] = det.__dict__.get("resolution_", math.inf)
        self.res_count_[k] = det.__dict__.get("res_count_", 0)
        self.last_x_[k], self.hold_score_[k], self.hold_left_[k] = det._last_x, det.hold_score_, det.hold_left_
        self.calib_.load_key(k, det._calibrator())
        if sub.buf_.shape != self.buf_.shape[1:] or sub.k != self.proto.subseq_k or sub.length != self.proto.subseq_len:
            raise ValueError("the per-key stretch statistic has another shape")
        self.buf_[k], self.filled_[k], self.usual_[k] = sub.buf_, sub.filled_, sub.usual_
        recent = list(sub.recent_p_)
        self.recent_[k, :len(recent)] = recent
        self.recent_pos_[k] = len(recent) % (sub.length - 1)
        d2 = sub.__dict__.get("d2_")
        self.d2ok_[k] = d2 is not None
        if d2 is not None:
            self.d2_[k] = d2
        self.since_[k], self.big_[k] = sub.since_full_, sub.big_
        self.scalib_.load_key(k, sub.calib_)

    def _history(self, k: int) -> list[tuple[float, float]]:
        """Key ``k``'s learned rows ``(t, x)``, oldest first (its last 2,048)."""
        n = int(self.hist_len_[k])
        order = np.arange(n) if n < _HISTORY else (np.arange(_HISTORY) + int(self.hist_pos_[k])) % _HISTORY
        return list(zip(self.hist_t_[k, order].tolist(), self.hist_x_[k, order].tolist(), strict=True))

    def _models(self, k: int) -> list[_Model]:
        """Key ``k``'s forecasters as per-key ``_Model`` objects, in the per-key list's order."""
        out = []
        for s in np.flatnonzero(self.on_[k]).tolist():
            bins = int(self.bins_[k, s])
            kind = "none" if s < 3 else ("calendar" if s < 5 else "steps")
            m = _Model(self._label(k, s), kind, bins, float(self.period_[k, s]), float(_ALPHA[s]), float(_BETA[s]),
                       float(_GAMMA[s]))
            m.level, m.trend, m.mad, m.err = (float(self.level_[k, s]), float(self.trend_[k, s]),
                                              float(self.mad_[k, s]), float(self.err_[k, s]))
            m.cpos, m.cneg, m.rsum_pos, m.rsum_neg = (float(self.cpos_[k, s]), float(self.cneg_[k, s]),
                                                      float(self.rsum_pos_[k, s]), float(self.rsum_neg_[k, s]))
            m.n, m.rn_pos, m.rn_neg = int(self.nm_[k, s]), int(self.rn_pos_[k, s]), int(self.rn_neg_[k, s])
            if s >= 3:
                m.season = self.season_[k, s - 3, :bins].tolist()
                m.season_n = self.season_n_[k, s - 3, :bins].tolist()
            out.append(m)
        return out

    def _label(self, k: int, s: int) -> str:
        """The per-key label of key ``k``'s forecaster in slot ``s``."""
        bins = int(self.bins_[k, s])
        if s < 3:
            return _BASE[s][0]
        if s == 3:
            return "hour-of-day"
        return ("day-of-week" if bins <= 7 else "day-of-week x hour") if s == 4 else f"{bins}-step cycle"

    def _put_models(self, k: int, models: list[_Model]) -> None:
        """Key ``k``'s slots from a per-key model list (ValueError for a list it cannot hold)."""
        slots = []
        for m in models:
            if m.kind == "none":
                s = next((i for i, b in enumerate(_BASE) if b[0] == m.label), -1)
            elif m.kind == "calendar":
                s = 3 if m.period == _DAY else (4 if m.period == _WEEK else -1)
            else:
                s = 5
            if s < 0 or (slots and s <= slots[-1]) or (m.alpha, m.beta, m.gamma, m.phi) != (
                    _ALPHA[s], _BETA[s], _GAMMA[s], _PHI) or (s < 3 and m.bins != 1) or m.bins > _SEASON:
                raise ValueError(f"no slot for the per-key model {m.label!r}")
            slots.append(s)
        self.on_[k] = False
        for s, m in zip(slots, models, strict=True):
            self.on_[k, s] = True
            self.level_[k, s], self.trend_[k, s], self.mad_[k, s], self.err_[k, s] = m.level, m.trend, m.mad, m.err
            self.cpos_[k, s], self.cneg_[k, s], self.rsum_pos_[k, s], self.rsum_neg_[k, s] = (
                m.cpos, m.cneg, m.rsum_pos, m.rsum_neg)
            self.nm_[k, s], self.rn_pos_[k, s], self.rn_neg_[k, s] = m.n, m.rn_pos, m.rn_neg
            # a slot's phases beyond the bins it ever held are still zero: clear only those it held
            # (writing the whole 682-phase row touched memory a young key never uses)
            held = max(int(self.bins_[k, s]), m.bins)
            self.bins_[k, s], self.period_[k, s] = m.bins, m.period
            if s >= 3:
                self.season_[k, s - 3, :held] = 0.0
                self.season_n_[k, s - 3, :held] = 0
                self.season_[k, s - 3, :m.bins] = m.season
                self.season_n_[k, s - 3, :m.bins] = m.season_n

    def _change_models(self, k: int, action: str) -> None:
        """Run the per-key code that adds forecasters (``action``) on key ``k``'s state."""
        view = _KeyModels(self, k)
        getattr(view, action)()
        self._put_models(k, view.models_)

    # ------------------------------------------------------------------ scoring
    def score_learn(self, t: np.ndarray, x: np.ndarray, lengths: np.ndarray,
                    rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, list[list[list[str]]]]:
        """Score and learn every key's rows, step by step across keys.

        Args:
            t: ``(n, steps)`` epoch seconds of each row (NaN: not scored, not learned).
            x: ``(n, steps)`` values (NaN or infinite: not scored, not learned).
            lengths: rows of each of the ``n`` keys (the rest of its line is padding).
            rows: the detector row of each of the ``n`` keys (default: rows ``0..n-1``).

        Returns:
            score and expected ``(n, steps)`` arrays and, per key, its rows' evidence lists.
        """
        n = len(lengths)
        rows = np.arange(n) if rows is None else np.asarray(rows, dtype=np.int64)
        steps = t.shape[1] if t.ndim == 2 else 0
        score = np.zeros((n, steps))
        expected = np.full((n, steps), np.nan)
        evidence: list[list[list[str]]] = [[[] for _ in range(int(m))] for m in lengths]
        for j in range(steps):
            live = np.flatnonzero((lengths > j) & ~np.isnan(t[:, j]))
            if not len(live):
                continue
            s, e, ev = self._step(rows[live], t[live, j], x[live, j])
            score[live, j] = s
            expected[live, j] = e
            for i, strings in ev:
                evidence[int(live[i])][j] = strings
        return score, expected, evidence

    def _step(self, ks: np.ndarray, t: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, list]:
        """One row of each key ``ks`` (timestamps known): the per-key ``_one``, all keys at once."""
        pr = self.proto
        g = len(ks)
        n = self.n_[ks]
        step, t0, tl = self.step_[ks], self.t0_[ks], self.t_last_[ks]
        idx = n.copy()
        known = ~(np.isnan(step) | np.isnan(t0))
        if known.any():
            idx[known] = np.round((t[known] - t0[known]) / step[known]).astype(np.int64)
        kk = np.ones(g, dtype=np.int64)
        gk = np.flatnonzero(~(np.isnan(step) | np.isnan(tl)))
        gap = gk[t[gk] - tl[gk] > 1.5 * step[gk]]
        if len(gap):
            kk[gap] = np.minimum(np.round((t[gap] - tl[gap]) / step[gap]), 10_000).astype(np.int64)
        on = self.on_[ks]
        level, trend = self.level_[ks], self.trend_[ks]
        bins = self.bins_[ks]
        # each slot's phase: calendar slots from the time, the cycle slot from the row index
        ph = np.zeros((g, _SLOTS), dtype=np.int64)
        period = np.where(on[:, 3:5], self.period_[ks, 3:5], 1.0)
        ph[:, 3:5] = np.where(on[:, 3:5], ((np.mod(t[:, None], period) / period * bins[:, 3:5]).astype(np.int64))
                              % bins[:, 3:5], 0)
        ph[:, 5] = np.where(on[:, 5], idx % bins[:, 5], 0)
        seas = np.zeros((g, _SLOTS))
        seas[:, 3:] = self.season_[ks[:, None], np.arange(3)[None, :], ph[:, 3:]]
        # the model that has forecast the key best so far (the first of equals)
        err, nm = self.err_[ks], self.nm_[ks]
        best = np.zeros(g, dtype=np.int64)
        best_err = err[:, 0].copy()
        for s in range(1, _SLOTS):
            better = on[:, s] & (nm[:, s] >= 2 * pr.min_history) & (err[:, s] < best_err)
            best[better] = s
            best_err[better] = err[better, s]
        rg = np.arange(g)
        k1 = kk == 1
        phik = np.where(k1, _PHI, _PHI ** kk.astype(float))
        damped = _PHI * (1 - phik) / (1 - _PHI)
        lb, tb = level[rg, best], trend[rg, best]
        fc = np.where(k1, lb + _PHI * tb, lb + tb * damped) + seas[rg, best]
        expected = np.where(np.isnan(lb), np.nan, fc)
        score = np.zeros(g)
        fin = np.flatnonzero(np.isfinite(x))
        if not len(fin):
            return score, expected, []
        if len(fin) < g:
            ks, t, x, n, kk, k1, phik, damped, best = (a[fin] for a in (ks, t, x, n, kk, k1, phik, damped, best))
            on, level, trend, bins, ph, seas, err, nm = (a[fin] for a in (on, level, trend, bins, ph, seas, err, nm))
            idx = idx[fin]
            g = len(fin)
            rg = np.arange(g)
        # the scale's floor: a share of the level, of the typical step, half the resolution
        res = self.resolution_[ks]
        res_ok = (res < np.inf) & (self.res_count_[ks] >= np.maximum(5, 0.01 * n))
        floor = np.maximum(np.maximum(pr.rel_floor * self.abs_level_[ks], 0.05 * self.long_mad_[ks]),
                           np.maximum(np.where(res_ok, 0.5 * res, 0.0), 1e-9))
        z_best, shift_flag = self._forecasters(ks, x, kk, k1, phik, damped, best, on, level, trend, bins, ph, seas,
                                               err, nm, floor)
        p_sub, sub_stat = self._stretch(ks, x, floor) if pr.subseq_weight > 0 else (np.ones(g), np.full(g, np.nan))
        evidence = []
        sc = np.flatnonzero(n >= 2)
        if len(sc):
            kc = ks[sc]
            az = np.abs(z_best[sc])
            warm = np.clip((n[sc] - pr.min_history) / pr.warmup_ramp, 0.0, 1.0)
            p = p_z = self.calib_.tail_p(az, kc)
            w = pr.subseq_weight
            if w > 0:
                p = np.minimum(np.minimum(1.0, p / (1.0 - w)), p_sub[sc] / w)
            with np.errstate(divide="ignore"):
                s = np.where(p >= 1.0, 0.0, np.minimum(1.0, -np.log10(np.maximum(p, 1e-300)) / DECADES)) * warm
            hl = self.hold_left_[kc]
            held = self.hold_score_[kc] * hl / (pr.shift_hold + 1)
            s = np.where((hl > 0) & (held > s), held, s)
            self.hold_left_[kc] = np.where(hl > 0, hl - 1, hl)
            if pr.shift_hold > 0:
                shifted = kc[shift_flag[sc]]
                self.hold_score_[shifted] = s[shift_flag[sc]]
                self.hold_left_[shifted] = pr.shift_hold
            learn = n[sc] > pr.min_history
            self.calib_.learn(az[learn], kc[learn])
            score[fin[sc]] = s
            for i in np.flatnonzero((s >= 0.5) | shift_flag[sc]).tolist():
                r = int(sc[i])
                evidence.append((int(fin[r]), self._evidence(
                    float(x[r]), float(expected[fin[r]]), float(z_best[r]), int(ks[r]), int(best[r]),
                    bool(shift_flag[r]), float(p_sub[r]), float(p_z[i]), float(sub_stat[r]))))
        if pr.subseq_weight > 0:
            ok = ~np.isnan(sub_stat)
            self.scalib_.learn(sub_stat[ok], ks[ok])
        self._learn_series(ks, t, x, n)
        return score, expected, evidence

    def _forecasters(self, ks: np.ndarray, x: np.ndarray, kk: np.ndarray, k1: np.ndarray, phik: np.ndarray,
                     damped: np.ndarray, best: np.ndarray, on: np.ndarray, level: np.ndarray, trend: np.ndarray,
                     bins: np.ndarray, ph: np.ndarray, seas: np.ndarray, err: np.ndarray, nm: np.ndarray,
                     floor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Score the row against every forecaster, then update each (the per-key model loop);
        returns the best model's z and whether it re-baselined after a confirmed shift."""
        pr = self.proto
        g = len(ks)
        rg = np.arange(g)
        first = on & np.isnan(level)
        upd = on & ~first
        base = np.where(k1[:, None], level + _PHI * trend, level + trend * damped[:, None])
        r = x[:, None] - base - seas
        mad = self.mad_[ks]
        sigma = _S * np.where(mad > floor[:, None], mad, floor[:, None])
        far = ~k1
        if far.any():
            inflate = np.sqrt(1.0 + (kk[:, None] - 1) * _ALPHA * _ALPHA)
            sigma = np.where(far[:, None], sigma * np.where(inflate < 3.0, inflate, 3.0), sigma)
        z = r / sigma
        z_best = np.where(upd[rg, best], z[rg, best], 0.0)
        a_s = 1.0 / (nm + 1)
        a_s = np.where(a_s < pr.scale_alpha, pr.scale_alpha, a_s)
        over5 = nm > 5
        lim = pr.huber * sigma
        rc = np.where(over5, np.where(r > lim, lim, np.where(r < -lim, -lim, r)), r)
        ar = np.abs(r)
        ar = np.where(over5 & (ar >= 3 * lim), 3 * lim, ar)
        zc = np.where(over5, np.where(z > 4.0, 4.0, np.where(z < -4.0, -4.0, z)), 0.0)
        new_mad = mad + a_s * (np.abs(rc) - mad)
        a_e = 1.0 / (nm + 1)
        err = self.err_[ks]
        new_err = err + np.where(a_e > 0.01, a_e, 0.01) * (ar - err)
        new_level = base + _ALPHA * rc
        new_trend = np.where(k1[:, None], _PHI, phik[:, None]) * trend + _BETA * rc
        ck, ch = pr.cusum_k, pr.cusum_h
        cpos = self.cpos_[ks] + zc - ck
        cneg = self.cneg_[ks] - zc - ck
        pos, neg = cpos > 0, cneg > 0
        rsum_pos = np.where(pos, self.rsum_pos_[ks] + (r - rc), 0.0)
        rsum_neg = np.where(neg, self.rsum_neg_[ks] + (r - rc), 0.0)
        rn_pos = np.where(pos, self.rn_pos_[ks] + 1, 0)
        rn_neg = np.where(neg, self.rn_neg_[ks] + 1, 0)
        cpos, cneg = np.where(pos, cpos, 0.0), np.where(neg, cneg, 0.0)
        up, down = cpos > ch, cneg > ch
        shift = up | down
        if shift.any():
            new_level = np.where(up, new_level + rsum_pos / np.maximum(rn_pos, 1),
                                 np.where(down, new_level + rsum_neg / np.maximum(rn_neg, 1), new_level))
            new_trend = np.where(shift, 0.0, new_trend)
            cpos, cneg = np.where(shift, 0.0, cpos), np.where(shift, 0.0, cneg)
            rsum_pos, rsum_neg = np.where(shift, 0.0, rsum_pos), np.where(shift, 0.0, rsum_neg)
            rn_pos, rn_neg = np.where(shift, 0, rn_pos), np.where(shift, 0, rn_neg)
        shift_flag = shift[rg, best] & upd[rg, best]
        # seasonal slots: the phase's count and profile (one phase per key and slot, so no clashes)
        kr, sr = np.nonzero(upd[:, 3:])
        if len(kr):
            s3 = sr + 3
            cnt = self.season_n_[ks[kr], sr, ph[kr, s3]]
            gam = _GAMMA[s3]
            inv = 1.0 / (cnt + 1)
            gam = np.where((cnt < 3) & (inv > gam), inv, gam)
            self.season_n_[ks[kr], sr, ph[kr, s3]] = cnt + 1
            self.season_[ks[kr], sr, ph[kr, s3]] = seas[kr, s3] + gam * (1 - _ALPHA[s3]) * rc[kr, s3]
        for name, new, on_first in (("level_", new_level, x[:, None]), ("trend_", new_trend, None),
                                    ("mad_", new_mad, None), ("err_", new_err, None), ("cpos_", cpos, None),
                                    ("cneg_", cneg, None), ("rsum_pos_", rsum_pos, None),
                                    ("rsum_neg_", rsum_neg, None), ("rn_pos_", rn_pos, None),
                                    ("rn_neg_", rn_neg, None), ("nm_", nm + 1, 1)):
            arr = getattr(self, name)
            old = arr[ks]
            out = np.where(upd, new, old)
            if on_first is not None:
                out = np.where(first, on_first, out)
            arr[ks] = out
        return z_best, shift_flag

    def _stretch(self, ks: np.ndarray, x: np.ndarray, floor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The stretch statistic of each key's row (``_Subsequences.tail_p``): tail probability and
        statistic (1 and NaN while warming up)."""
        pr = self.proto
        L, kn, size = pr.subseq_len, pr.subseq_k, self.size_
        h = size - 2 * L + 1
        g = len(ks)
        x = np.where(x < -1e150, -1e150, np.where(x > 1e150, 1e150, x))
        near2 = np.full(g, np.nan)
        ready = 2 * L + kn - 1
        inc = self.d2ok_[ks] & (self.since_[ks] < 256)
        recompute = []
        a = np.flatnonzero(inc)
        if len(a):
            ka = ks[a]
            buf, d2 = self.buf_[ka], self.d2_[ka]
            d2 -= (buf[:, :h] - buf[:, size - L:size - L + 1]) ** 2
            buf[:, :-1] = buf[:, 1:]
            buf[:, -1] = x[a]
            add = (buf[:, L - 1:L - 1 + h] - x[a, None]) ** 2
            d2 += add
            big = add.max(axis=1)
            big = np.where(big > self.big_[ka], big, self.big_[ka])
            fill = np.minimum(self.filled_[ka] + 1, size)
            self.buf_[ka], self.d2_[ka], self.big_[ka], self.filled_[ka] = buf, d2, big, fill
            n2 = _k_smallest_mean(_valid(d2, size - fill), kn)
            ok = (fill >= ready) & (big * 1e-12 <= n2)
            near2[a[ok]] = n2[ok]
            self.since_[ka] = np.where(ok | (fill < ready), self.since_[ka] + 1, 256)
            recompute.append(a[(fill >= ready) & ~ok])
        b = np.flatnonzero(~inc)
        if len(b):
            kb = ks[b]
            buf = self.buf_[kb]
            buf[:, :-1] = buf[:, 1:]
            buf[:, -1] = x[b]
            self.buf_[kb] = buf
            self.filled_[kb] = np.minimum(self.filled_[kb] + 1, size)
            recompute.append(b[self.filled_[kb] >= ready])
        rc = np.sort(np.concatenate(recompute)) if recompute else np.zeros(0, dtype=np.int64)
        if len(rc):
            # every window's distance anew, as the per-key einsum computes them (bit for bit)
            kp = ks[rc]
            d2 = np.empty((len(kp), h))
            for a in range(0, len(kp), _RECOMPUTE_KEYS):  # in blocks: the differences are 80 KB a key
                buf = self.buf_[kp[a:a + _RECOMPUTE_KEYS]]
                diff = sliding_window_view(buf[:, :size - L], L, axis=1) - buf[:, None, size - L:]
                d2[a:a + _RECOMPUTE_KEYS] = np.einsum("gij,gij->gi", diff, diff)
            self.d2_[kp], self.d2ok_[kp], self.since_[kp], self.big_[kp] = d2, True, 0, d2.max(axis=1)
            near2[rc] = _k_smallest_mean(_valid(d2, size - self.filled_[kp]), kn)
        p = np.ones(g)
        stat = np.full(g, np.nan)
        have = np.flatnonzero(~np.isnan(near2))
        if not len(have):
            return p, stat
        kh = ks[have]
        near = np.sqrt(np.where(near2[have] > 0, near2[have], 0.0) / L)
        usual = self.usual_[kh]
        new = np.isnan(usual)
        self.usual_[kh[new]] = near[new]
        old = ~new
        ho, ko, uo, no = have[old], kh[old], usual[old], near[old]
        fo = floor[ho]
        st = _STRETCH_SCALE * no / np.where(uo > fo, uo, fo)
        self.usual_[ko] = uo + 0.01 * (no - uo)
        stat[ho] = st
        ready = self.scalib_.len_[ko] >= self.scalib_.min_rows
        if ready.any():
            hr, kr = ho[ready], ko[ready]
            pr_ = self.scalib_.tail_p(st[ready], kr)
            counts = pr_ < self.recent_[kr].min(axis=1)
            self.recent_[kr, self.recent_pos_[kr]] = pr_
            self.recent_pos_[kr] = (self.recent_pos_[kr] + 1) % (L - 1)
            p[hr] = np.where(counts, pr_, 1.0)
        return p, stat

    def _learn_series(self, ks: np.ndarray, t: np.ndarray, x: np.ndarray, n: np.ndarray) -> None:
        """The per-key detector's series-level state after a learned row: scale floors, the
        resolution, the sampling step (and the models it brings), the history, the cycle search."""
        pr = self.proto
        last = self.last_x_[ks]
        abs_level, long_mad = self.abs_level_[ks], self.long_mad_[ks]
        seen = n >= 1
        ax = np.abs(x)
        dx = np.where(seen, np.abs(x - last), 0.0)
        warm = n > pr.min_history
        cap = 5.0 * (abs_level + long_mad) + 1e-12
        ax = np.where(warm & (ax >= cap), cap, ax)
        cap = 5.0 * long_mad + 1e-3 * abs_level + 1e-12
        dx = np.where(warm & (dx >= cap), cap, dx)
        abs_level = abs_level + np.maximum(0.02, 1.0 / (n + 1)) * (ax - abs_level)
        with np.errstate(divide="ignore", invalid="ignore"):  # rows before the first: masked
            long_mad = np.where(seen, long_mad + np.maximum(0.005, 1.0 / n) * (dx - long_mad), long_mad)
        self.abs_level_[ks], self.long_mad_[ks] = abs_level, long_mad
        step = np.where(seen, np.abs(x - last), 0.0)
        moved = step > 1e-9 * (abs_level + 1e-12)
        res, cnt = self.resolution_[ks], self.res_count_[ks]
        finer = moved & (step < res * (1 - 1e-6))
        same = moved & ~finer & (step <= res * (1 + 1e-6))
        self.resolution_[ks] = np.where(finer, step, res)
        self.res_count_[ks] = np.where(finer, 1, np.where(same, cnt + 1, cnt))
        self.last_x_[ks] = x
        t0 = self.t0_[ks]
        self.t0_[ks] = np.where(np.isnan(t0), t, t0)
        tl = self.t_last_[ks]
        add = ~np.isnan(tl) & np.isnan(self.step_[ks]) & (t > tl)
        if add.any():
            ka = ks[add]
            self.diffs_[ka, self.ndiffs_[ka]] = t[add] - tl[add]
            self.ndiffs_[ka] += 1
            for k in ka[self.ndiffs_[ka] >= _DIFFS].tolist():
                self.step_[k] = float(np.median(self.diffs_[k, :_DIFFS].tolist()))
                self._change_models(k, "_add_calendar_models")
        self.t_last_[ks] = t
        at = self.hist_pos_[ks]
        self.hist_t_[ks, at] = t
        self.hist_x_[ks, at] = x
        self.hist_pos_[ks] = (at + 1) % _HISTORY
        self.hist_len_[ks] = np.minimum(self.hist_len_[ks] + 1, _HISTORY)
        self.n_[ks] = n + 1
        if pr.seasonal:
            for k in ks[np.isin(n + 1, _ACF_AT)].tolist():
                self._change_models(k, "_add_period_model")

    def _evidence(self, x: float, expected: float, z: float, k: int, best: int, shift: bool, p_sub: float,
                  p_z: float, stat: float) -> list[str]:
        """The per-key detector's evidence strings for a high score of key ``k``."""
        pr = self.proto
        out = UnivariateDetector._evidence(pr, x, expected, z, _Label(self._label(k, best)), shift)
        w = pr.subseq_weight
        if w > 0 and p_sub < 1.0 and p_sub * (1.0 - w) < p_z * w:
            alone = p_z / (1.0 - w) > 10 ** (-0.5 * DECADES)
            out.insert(len(out) - (1 + shift if alone else 0),
                       f"the last {pr.subseq_len} values unlike the key's earlier stretches "
                       f"({stat / _STRETCH_SCALE:.1f}x their usual distance)")
        return out


def _params(det: UnivariateDetector) -> dict[str, Any]:
    """A per-key detector's parameters (its attributes that are not learned state)."""
    return {n: v for n, v in vars(det).items() if not n.endswith("_") and not n.startswith("_")}


def _valid(d2: np.ndarray, first: np.ndarray) -> np.ndarray:
    """``d2`` with the windows before each row's ``first`` (reaching into the empty buffer) at +inf."""
    if not (first > 0).any():
        return d2
    return np.where(np.arange(d2.shape[1])[None, :] < first[:, None], np.inf, d2)


def _k_smallest_mean(d2: np.ndarray, k: int) -> np.ndarray:
    """Per row, the mean of its ``k`` smallest values (as ``np.partition(row, k - 1)[:k].mean()``)."""
    if k == 1:
        return d2.min(axis=1)
    if k == 2:  # two passes of min instead of a partition (several times faster on 1,000 columns)
        rows = np.arange(len(d2))
        at = d2.argmin(axis=1)
        first = d2[rows, at]
        d2[rows, at] = np.inf
        second = d2.min(axis=1)
        d2[rows, at] = first
        return (first + second) / 2
    return np.partition(d2, k - 1, axis=1)[:, :k].mean(axis=1)
