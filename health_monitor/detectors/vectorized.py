"""Vectorized forms of the detectors: many keys scored at once, detector state held as arrays.

Why: the per-key detectors (:mod:`~health_monitor.detectors.multivariate`,
:class:`~health_monitor.detectors.base.TailCalibrator`) score one row at a time in Python, so a
batch of 10,000 keys costs 10,000 detector objects and a Python loop per row. Here the state of
all keys lives in arrays of shape ``(keys, ...)`` and one time step of every key is a handful of
NumPy operations, so the Python overhead is per time step, not per row.

The recurrences are the same, step by step, as the per-row forms (a unit test checks the scores
agree on the same rows), so quality work on the detectors and speed work here do not fight:
change the math in one place, and the equivalence test says whether the other still agrees.

River's Half-Space Trees have a NumPy form here too (:class:`VectorHalfSpaceTrees`: the trees of
every key share one structure, so only their masses are per key). What stays per key: the rare
tail refinement of the calibrator (only rows already rarer than 1%, where it needs the key's own
buffer) and the evidence strings of high scores.

The stream's bucketed layout (:mod:`health_monitor.streaming.bucketed`) keeps each key's row of
these fixed-width arrays packed in the key's own record and stacks the rows of the keys a call
scores into a detector of that many keys; a per-key detector's learned state can be copied into a
key's row (:meth:`~VectorMultivariateDetector.load_key`: a catch-up's handover). Cost's univariate
detector has the same form in :mod:`health_monitor.detectors.vector_univariate`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd
from river.anomaly import HalfSpaceTrees

from health_monitor.detectors.base import _Q90, _Q99_MINUS_Q90, DECADES, DRIVER_Z, TailCalibrator, tail_floor
from health_monitor.detectors.base import SIGMA_PER_MAD as _S
from health_monitor.detectors.multivariate import COUNT_RESOLUTION, MultivariateDetector


class VectorTailCalibrator:
    """:class:`~health_monitor.detectors.base.TailCalibrator` for ``keys`` keys at once.

    Each key's recent statistics sit in one row of a ring buffer; the calibrator only ever uses
    them as a set (counts, quantiles, the top 1%), so the ring's order does not matter.
    """

    def __init__(self, keys: int, window: int = 2000, min_rows: int = 100) -> None:
        self.window = window
        self.min_rows = min_rows
        self.buf_ = np.zeros((keys, window))
        self.len_ = np.zeros(keys, dtype=np.int64)
        self.pos_ = np.zeros(keys, dtype=np.int64)
        self.q90_ = np.full(keys, _Q90)
        self.q99_ = np.full(keys, _Q90 + _Q99_MINUS_Q90)
        self.since_fit_ = np.zeros(keys, dtype=np.int64)

    def _kept(self, k: int) -> np.ndarray:
        return self.buf_[k, :self.len_[k]]

    def tail_p(self, stat: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """Tail probability of ``stat[i]`` for key ``idx[i]``, before learning it."""
        q90, q99 = self.q90_[idx], self.q99_[idx]
        with np.errstate(over="ignore"):
            p = np.where(stat <= q90, 1.0 - 0.9 * stat / q90,
                         0.1 * np.power(10.0, -(stat - q90) / (q99 - q90)))
        # Only rows already rarer than 1% need the key's own buffer: few, so a loop is fine.
        for i in np.flatnonzero((p < 0.01) & (self.len_[idx] >= self.min_rows)):
            p[i] = tail_floor(self._kept(idx[i]), float(stat[i]), float(p[i]), float(q90[i]))
        return np.minimum(p, 1.0)

    def score(self, stat: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """Calibrated scores in [0, 1] (``-log10(p) / DECADES``), as the per-key form."""
        p = self.tail_p(stat, idx)
        s = np.clip(-np.log10(np.maximum(p, 1e-300)) / DECADES, 0.0, 1.0)
        return np.where(p >= 1.0, 0.0, np.minimum(1.0, s))

    def learn(self, stat: np.ndarray, idx: np.ndarray) -> None:
        """Add ``stat[i]`` to key ``idx[i]``'s history (each key at most once per call)."""
        ok = np.isfinite(stat)
        idx, stat = idx[ok], stat[ok]
        self.buf_[idx, self.pos_[idx]] = stat
        self.pos_[idx] = (self.pos_[idx] + 1) % self.window
        self.len_[idx] = np.minimum(self.len_[idx] + 1, self.window)
        self.since_fit_[idx] += 1
        refit = idx[(self.since_fit_[idx] >= 16) & (self.len_[idx] >= self.min_rows)]
        if not len(refit):
            return
        self.since_fit_[refit] = 0
        full = refit[self.len_[refit] == self.window]
        if len(full):  # one quantile call for every key whose window is full
            q = np.quantile(self.buf_[full], [0.9, 0.99], axis=1)
            self._set_q(full, q[0], q[1])
        part = refit[self.len_[refit] < self.window]
        for n in np.unique(self.len_[part]).tolist():  # keys with as many statistics share one call
            same = part[self.len_[part] == n]
            q = np.quantile(self.buf_[same, :n], [0.9, 0.99], axis=1)
            self._set_q(same, q[0], q[1])

    def add_keys(self, n: int) -> None:
        """Room for ``n`` more keys, each with a fresh calibrator's state."""
        self.buf_ = np.concatenate([self.buf_, np.zeros((n, self.window))])
        self.len_ = np.concatenate([self.len_, np.zeros(n, dtype=np.int64)])
        self.pos_ = np.concatenate([self.pos_, np.zeros(n, dtype=np.int64)])
        self.q90_ = np.concatenate([self.q90_, np.full(n, _Q90)])
        self.q99_ = np.concatenate([self.q99_, np.full(n, _Q90 + _Q99_MINUS_Q90)])
        self.since_fit_ = np.concatenate([self.since_fit_, np.zeros(n, dtype=np.int64)])

    def load_key(self, k: int, cal: TailCalibrator) -> None:
        """Row ``k`` takes a per-key calibrator's state (its buffer oldest first: the ring's next
        write then replaces the oldest value, as the per-key deque drops it)."""
        if cal.buf_.maxlen != self.window or cal.min_rows != self.min_rows:
            raise ValueError("the per-key calibrator has another window")
        kept = np.fromiter(cal.buf_, dtype=float, count=len(cal.buf_))
        self.buf_[k] = 0.0
        self.buf_[k, :len(kept)] = kept
        self.len_[k] = len(kept)
        self.pos_[k] = len(kept) % self.window
        self.q90_[k], self.q99_[k], self.since_fit_[k] = cal.q90_, cal.q99_, cal.since_fit_

    def _set_q(self, idx: np.ndarray, q90: np.ndarray, q99: np.ndarray) -> None:
        self.q90_[idx] = np.maximum(_Q90, q90)
        self.q99_[idx] = np.maximum(self.q90_[idx] + _Q99_MINUS_Q90, q99)


class VectorHalfSpaceTrees:
    """river's ``HalfSpaceTrees`` for ``keys`` keys at once: one tree structure, per-key masses.

    Every key's river trees are built from the same seed over the same features, so they share
    their splits; only the masses differ. The structure is taken from a river instance (so the
    splits are river's own), stored as a complete binary tree per tree (node ``i``'s children are
    ``2i + 1`` and ``2i + 2``), and a step of every key walks all trees with integer indexing.
    Every feature must be present in every row (the per-key detector always passes all of them).
    """

    def __init__(self, keys: int, features: list[str], n_trees: int, height: int, window_size: int,
                 seed: int) -> None:
        river = HalfSpaceTrees(n_trees=n_trees, height=height, window_size=window_size,
                               limits={f: (0.0, 1.0) for f in features}, seed=seed)
        river.learn_one(dict.fromkeys(features, 0.5))  # builds the trees (masses are not kept)
        nodes = 2 ** (height + 1) - 1
        self.feature_ = np.zeros((n_trees, nodes), dtype=np.int64)
        self.threshold_ = np.zeros((n_trees, nodes))
        col = {f: j for j, f in enumerate(features)}
        for t, root in enumerate(river.trees):
            stack = [(root, 0)]
            while stack:
                node, i = stack.pop()
                if getattr(node, "children", None):
                    self.feature_[t, i] = col[node.feature]
                    self.threshold_[t, i] = node.threshold
                    stack += [(node.children[0], 2 * i + 1), (node.children[1], 2 * i + 2)]
        self.height, self.window_size, self.n_trees = height, window_size, n_trees
        self.l_mass_ = np.zeros((keys, n_trees, nodes), dtype=np.int32)
        self.r_mass_ = np.zeros((keys, n_trees, nodes), dtype=np.int32)
        self.counter_ = np.zeros(keys, dtype=np.int64)
        self.first_window_ = np.ones(keys, dtype=bool)
        self._trees = np.arange(n_trees)
        self._max_score = n_trees * window_size * (2 ** (height + 1) - 1)

    def add_keys(self, n: int) -> None:
        """Room for ``n`` more keys, each with fresh (empty) masses."""
        shape = (n, *self.l_mass_.shape[1:])
        self.l_mass_ = np.concatenate([self.l_mass_, np.zeros(shape, dtype=np.int32)])
        self.r_mass_ = np.concatenate([self.r_mass_, np.zeros(shape, dtype=np.int32)])
        self.counter_ = np.concatenate([self.counter_, np.zeros(n, dtype=np.int64)])
        self.first_window_ = np.concatenate([self.first_window_, np.ones(n, dtype=bool)])

    def load_key(self, k: int, river: HalfSpaceTrees) -> None:
        """Row ``k`` takes the masses of one key's river trees (built from the same seed, so
        with the same splits: checked node by node)."""
        self.l_mass_[k] = 0
        self.r_mass_[k] = 0
        for t, root in enumerate(river.trees):  # none before river's first learn_one
            stack = [(root, 0)]
            while stack:
                node, i = stack.pop()
                self.l_mass_[k, t, i], self.r_mass_[k, t, i] = node.l_mass, node.r_mass
                if getattr(node, "children", None):
                    if node.threshold != self.threshold_[t, i]:
                        raise ValueError("the river trees have other splits")
                    stack += [(node.children[0], 2 * i + 1), (node.children[1], 2 * i + 2)]
        self.counter_[k] = river.counter
        self.first_window_[k] = river._first_window

    def _child(self, x: np.ndarray, node: np.ndarray) -> np.ndarray:
        """Next node of every (row, tree): left when the split feature is below the threshold."""
        feat = self.feature_[self._trees, node]  # (rows, trees)
        value = np.take_along_axis(x, feat, axis=1)
        return 2 * node + 1 + (value >= self.threshold_[self._trees, node])

    def score(self, x: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """river's ``score_one`` of row ``x[i]`` for key ``idx[i]`` (0 during a key's first window)."""
        rows = len(idx)
        node = np.zeros((rows, self.n_trees), dtype=np.int64)
        total = np.zeros((rows, self.n_trees), dtype=np.int64)
        walking = np.ones((rows, self.n_trees), dtype=bool)
        limit = 0.1 * self.window_size
        kk = idx[:, None]
        for depth in range(self.height + 1):
            r = self.r_mass_[kk, self._trees, node]
            total += np.where(walking, r << depth, 0)
            if depth == self.height:
                break
            walking &= r >= limit  # river stops at the first node lighter than the limit
            node = np.where(walking, self._child(x, node), node)
        out = 1 - total.sum(axis=1) / self._max_score
        return np.where(self.first_window_[idx], 0.0, out)

    def learn(self, x: np.ndarray, idx: np.ndarray) -> None:
        """river's ``learn_one`` of row ``x[i]`` for key ``idx[i]`` (each key at most once)."""
        node = np.zeros((len(idx), self.n_trees), dtype=np.int64)
        kk = idx[:, None]
        for depth in range(self.height + 1):
            self.l_mass_[kk, self._trees, node] += 1
            if depth < self.height:
                node = self._child(x, node)
        self.counter_[idx] += 1
        pivot = idx[self.counter_[idx] == self.window_size]
        if len(pivot):
            self.r_mass_[pivot] = self.l_mass_[pivot]
            self.l_mass_[pivot] = 0
            self.first_window_[pivot] = False
            self.counter_[pivot] = 0


class VectorMultivariateDetector:
    """:class:`~health_monitor.detectors.multivariate.MultivariateDetector` for ``keys`` keys.

    Takes the same arguments (plus ``keys``); :meth:`score_learn` takes every key's rows as one
    array and steps all keys through their rows together. Scores, expected values and evidence
    are those of one per-key detector per key fed the same rows.
    """

    def __init__(self, keys: int, features: list[str], **params: object) -> None:
        # The per-key class validates the parameters and is the single source of their defaults.
        proto = MultivariateDetector(features, **params)
        self.proto = proto
        self.keys = keys
        self.features = proto.features
        p = len(self.features)
        self.n_ = np.zeros(keys, dtype=np.int64)
        self.center_ = np.full((keys, p), np.nan)
        self.mad_ = np.zeros((keys, p))
        self.spread_ = np.zeros((keys, p))
        self.mean_abs_ = np.zeros((keys, p))
        self.integer_ = np.ones((keys, p), dtype=bool)
        self.unit_ = np.ones((keys, p), dtype=bool)
        self.q_hi_ = np.full((keys, p), np.nan)
        self.q_lo_ = np.full((keys, p), np.nan)
        self.count_ = np.zeros((keys, p), dtype=np.int64)
        self.calib_ = VectorTailCalibrator(keys, window=proto.calib_window)
        self.q_trees_ = np.full(keys, 0.5)
        self.trees_ = VectorHalfSpaceTrees(keys, self.features, proto.n_trees, proto.height, proto.window_size,
                                           proto.seed)
        # Per-feature constants of the baseline (the per-key form recomputes them every row).
        floor = np.array([proto.min_scale.get(f, 1e-6) if isinstance(proto.min_scale, Mapping) else proto.min_scale
                          for f in self.features], dtype=float)
        self.has_prior_ = np.array([f in proto.prior for f in self.features])
        self.c0_ = np.array([proto.prior[f][0] if f in proto.prior else 0.0 for f in self.features])
        self.s0_ = np.array([proto.prior[f][1] if f in proto.prior else 0.0 for f in self.features])
        self.floor_ = np.where(self.has_prior_, np.maximum(floor, 0.1 * self.s0_ / _S), floor)
        self.dirs_ = np.array([proto.directions.get(f, 1) for f in self.features])
        self.log_ = np.array([f in proto.log_features for f in self.features])

    def _baseline(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Centre and up/down sigma of keys ``idx`` (the per-key ``_baseline``, all keys at once)."""
        center = self.center_[idx].copy()
        base = np.maximum(self.mad_[idx], 0.5 * self.spread_[idx])
        up = np.maximum(base, np.nan_to_num(self.q_hi_[idx] - center, nan=0.0) / 1.645 / _S)
        down = np.maximum(base, np.nan_to_num(center - self.q_lo_[idx], nan=0.0) / 1.645 / _S)
        if self.has_prior_.any():
            cnt = self.count_[idx]
            w = cnt / (cnt + self.proto.prior_weight)
            pc = np.where(np.isnan(center), self.c0_, w * center + (1 - w) * self.c0_)
            center = np.where(self.has_prior_, pc, center)
            up = np.where(self.has_prior_, w * up + (1 - w) * self.s0_ / _S, up)
            down = np.where(self.has_prior_, w * down + (1 - w) * self.s0_ / _S, down)
        lvl = np.where(np.isnan(center), 0.0, np.abs(center))
        floor = np.maximum(self.floor_, 1e-3 * lvl)
        integer, unit = self.integer_[idx], self.unit_[idx]
        floor = np.where(integer | unit, np.maximum(floor, np.sqrt(self.mean_abs_[idx]) / _S), floor)
        floor = np.where(integer, np.maximum(floor, COUNT_RESOLUTION / _S), floor)
        return center, _S * np.maximum(up, floor), _S * np.maximum(down, floor)

    def _untransform(self, v: np.ndarray) -> np.ndarray:
        if not self.log_.any():
            return v
        return np.where(self.log_, np.sign(v) * np.expm1(np.abs(v)), v)

    def score_learn(self, values: np.ndarray, lengths: np.ndarray,
                    rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, list, list]:
        """Score and learn the new rows of some keys.

        Args:
            values: ``(n, steps, features)``; the ``i``-th key's rows (event-time order) are
                ``values[i, :lengths[i]]``, the rest is padding. NaN features are not scored or
                learned for that row, as in the per-key form.
            lengths: rows per key.
            rows: which key (row of the state arrays) each of the ``n`` is; all keys in order
                when None (then ``n`` must be ``keys``).

        Returns:
            ``(score, expected, evidence, drivers)``: arrays ``(n, steps)`` (0 / NaN on padding)
            and, per key, a list with its rows' evidence lists and one with their driver lists
            (the features at least ``DRIVER_Z`` sigmas out, on rows scored 0.5 or more).
        """
        n_keys, steps, p = values.shape
        rows = np.arange(self.keys) if rows is None else np.asarray(rows, dtype=np.int64)
        if len(rows) != n_keys:
            raise ValueError(f"values hold {n_keys} keys, rows name {len(rows)}")
        raw = values.astype(float)
        X = np.where(self.log_, np.sign(raw) * np.log1p(np.abs(raw)), raw)
        score = np.zeros((n_keys, steps))
        expected = np.full((n_keys, steps), np.nan)
        evidence: list[list[list[str]]] = [[[] for _ in range(int(n))] for n in lengths]
        drivers: list[list[list[str]]] = [[[] for _ in range(int(n))] for n in lengths]
        pr = self.proto
        n_prior = pr.prior_weight if pr.prior else 0.0
        for t in range(steps):
            sel = np.flatnonzero(lengths > t)
            if not len(sel):
                break
            idx = rows[sel]
            x = X[sel, t]
            ok = np.isfinite(x)
            center, sig_up, sig_down = self._baseline(idx)
            known = ok & ~np.isnan(center)
            sigma = np.where(x >= center, sig_up, sig_down)
            z = np.zeros_like(x)
            z[known] = (x[known] - center[known]) / sigma[known]
            zdir = np.where(self.dirs_ > 0, np.maximum(z, 0), np.where(self.dirs_ < 0, np.maximum(-z, 0), np.abs(z)))
            top = np.sort(zdir, axis=1)[:, ::-1][:, :3]
            z_agg = np.sqrt(np.sum(top ** 2, axis=1))
            j_top = np.argmax(zdir, axis=1)
            at = np.arange(len(idx))
            c_top = center[at, j_top]
            expected[sel, t] = np.where(np.isnan(c_top), np.nan, self._untransform(center)[at, j_top])
            live = ok.any(axis=1)
            if not live.any():
                continue
            li, ls = idx[live], sel[live]
            n_eff = self.n_[li] + n_prior
            warm = np.clip((n_eff - pr.min_history) / pr.warmup_ramp, 0.0, 1.0)
            s_r = self.calib_.score(z_agg[live], li)
            s_t = np.zeros(len(li))
            zl = z[live]
            # math.tanh, as the per-key form: a last-bit difference could flip a tree split
            scaled = np.array([[0.5 + 0.5 * math.tanh(v / 3.0) for v in row] for row in zl.tolist()])
            if pr.trees_weight > 0:
                due = self.n_[li] >= pr.window_size
                if due.any():
                    h = self.trees_.score(scaled[due], li[due])
                    q = self.q_trees_[li[due]]
                    s_t[due] = np.maximum(0.0, (h - q) / np.maximum(1e-9, 1.0 - q))
                    q = q * np.where(h > q, math.exp(0.02 * 0.95), math.exp(-0.02 * 0.05))
                    self.q_trees_[li[due]] = np.minimum(q, 0.99)
            self.trees_.learn(scaled, li)
            s = np.clip((s_r + (1 - s_r) * pr.trees_weight * s_t) * warm, 0.0, 1.0)
            learn_cal = self.n_[li] > pr.min_history
            self.calib_.learn(z_agg[live][learn_cal], li[learn_cal])
            unt = self._untransform(center[live])
            zd_live = zdir[live]
            for i in np.flatnonzero(s >= 0.5):
                k = ls[i]
                zd = zd_live[i]
                evidence[k][t] = pr._evidence(raw[k, t], unt[i], zl[i], zd, float(s_t[i]))
                drivers[k][t] = [self.features[j] for j in np.argsort(-zd, kind="stable") if zd[j] >= DRIVER_Z]
            self._learn(li, x[live], ok[live], sigma[live])
            self.n_[li] += 1
            score[ls, t] = s
        return score, expected, evidence, drivers

    def add_keys(self, n: int) -> int:
        """Room for ``n`` more keys (fresh state, as a new per-key detector); returns the first new row."""
        first = self.keys
        if n <= 0:
            return first
        p = len(self.features)
        for name, fill, dtype in (("n_", 0, np.int64), ("center_", np.nan, float), ("mad_", 0.0, float),
                                  ("spread_", 0.0, float), ("mean_abs_", 0.0, float), ("integer_", True, bool),
                                  ("unit_", True, bool), ("q_hi_", np.nan, float), ("q_lo_", np.nan, float),
                                  ("count_", 0, np.int64)):
            shape = (n,) if name == "n_" else (n, p)
            setattr(self, name, np.concatenate([getattr(self, name), np.full(shape, fill, dtype=dtype)]))
        self.q_trees_ = np.concatenate([self.q_trees_, np.full(n, 0.5)])
        self.calib_.add_keys(n)
        self.trees_.add_keys(n)
        self.keys += n
        return first

    def reset_key(self, k: int) -> None:
        """Row ``k`` back to a fresh detector's state."""
        params = {n: v for n, v in vars(self.proto).items() if not n.endswith("_") and n != "features"}
        self.load_key(k, MultivariateDetector(self.features, **params))

    def load_key(self, k: int, det: MultivariateDetector) -> None:
        """Put a per-key detector's learned state into row ``k`` (a catch-up's handed-over key,
        a key moving from the per-key layout): from here on row ``k`` scores as ``det`` would."""
        if list(det.features) != list(self.features):
            raise ValueError("the per-key detector judges other features")
        for name in ("center_", "mad_", "spread_", "mean_abs_", "integer_", "unit_", "q_hi_", "q_lo_", "count_"):
            getattr(self, name)[k] = getattr(det, name)
        self.n_[k] = det.n_
        self.q_trees_[k] = det.q_trees_
        self.calib_.load_key(k, det._calibrator())
        self.trees_.load_key(k, det.trees_)

    def _learn(self, idx: np.ndarray, x: np.ndarray, ok: np.ndarray, sigma: np.ndarray) -> None:
        """The per-key ``_learn`` for keys ``idx`` (one row each), masked by ``ok``."""
        c = self.center_[idx]
        first = ok & np.isnan(c)
        rest = ok & ~first
        k = self.count_[idx]
        a = np.maximum(self.proto.scale_alpha, 1.0 / (k + 1))
        r = x - c
        lim = np.where(k > 5, self.proto.huber * sigma, np.inf)
        rc = np.maximum(-lim, np.minimum(lim, r))
        spread, mean_abs, mad = self.spread_[idx], self.mean_abs_[idx], self.mad_[idx]
        ar, ax = np.abs(r), np.abs(x)
        cap = (k > 5) & (spread > 0)
        ar = np.where(cap, np.minimum(ar, 100.0 * spread + 10.0 * sigma), ar)
        ax = np.where(cap, np.minimum(ax, 100.0 * (mean_abs + spread)), ax)
        new_spread = spread + (a / 2) * (ar - spread)
        new_mean_abs = mean_abs + (a / 2) * (ax - mean_abs)
        whole = x == np.round(x)
        in_unit = (x >= 0.0) & (x <= 1.0)
        step = 0.05 * np.maximum(np.maximum(new_spread, mad), 1e-12)
        q_hi, q_lo = self.q_hi_[idx], self.q_lo_[idx]
        q_hi = np.where(np.isnan(q_hi), x, q_hi)
        q_lo = np.where(np.isnan(q_lo), x, q_lo)
        new_q_hi = q_hi + step * (0.95 - (x <= q_hi)) / 0.05
        new_q_lo = q_lo + step * (0.05 - (x < q_lo)) / 0.05
        new_mad = mad + a * (np.abs(rc) - mad)

        def put(arr: np.ndarray, on_rest: np.ndarray, on_first: np.ndarray | float | bool) -> None:
            arr[idx] = np.where(rest, on_rest, np.where(first, on_first, arr[idx]))

        put(self.center_, c + a * rc, x)
        put(self.spread_, new_spread, spread)
        put(self.mean_abs_, new_mean_abs, np.abs(x))
        put(self.integer_, self.integer_[idx] & whole, whole)
        put(self.unit_, self.unit_[idx] & in_unit, in_unit)
        put(self.q_hi_, new_q_hi, x)
        put(self.q_lo_, new_q_lo, x)
        put(self.mad_, new_mad, mad)
        put(self.count_, k + 1, 1)


def pad_keys(frames: list[pd.DataFrame], features: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per-key frames (event-time order) -> the ``(keys, steps, features)`` array and lengths."""
    lengths = np.array([len(f) for f in frames], dtype=np.int64)
    out = np.full((len(frames), int(lengths.max()) if len(frames) else 0, len(features)), np.nan)
    for k, f in enumerate(frames):
        out[k, :len(f)] = f[features].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    return out, lengths
