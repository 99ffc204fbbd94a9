"""Online detector for one key's feature vector (a user's security activity, a job's runs).

Why two parts: a per-key robust baseline explains *which* feature moved and by how much (what an
analyst needs in the alert), while river's Half-Space Trees catch unusual *combinations* that no
single feature shows. The baseline is per feature: an EW robust centre and scale (Huber-clipped
updates), shrunk towards a global prior while the key has little history, so a new user is judged
against everyone else until it has a history of its own. The aggregated robust z becomes a
calibrated tail probability of this key (:class:`~health_monitor.detectors.base.TailCalibrator`,
the same scale as every detector: 0.8 = p 1e-4), and the trees' score (calibrated against their
own running quantile) can raise it but never dominate it. Rows are scored before they are
learned; NaN features are neither scored nor learned for that row.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd
from river.anomaly import HalfSpaceTrees

from health_monitor.detectors.base import DRIVER_Z, Scores, StreamingDetector, TailCalibrator
from health_monitor.detectors.base import SIGMA_PER_MAD as _SIGMA_PER_MAD

#: Smallest sigma of a count feature (see :meth:`MultivariateDetector._baseline`).
COUNT_RESOLUTION = 0.5


class MultivariateDetector(StreamingDetector):
    """Causal anomaly scores for a vector of numeric features of one key.

    Args:
        features: the feature columns, in the order evidence lists ties.
        threshold: ``score >= threshold`` is an anomaly (:meth:`is_anomaly`).
        directions: per feature, +1 if only high values are anomalous (the default: more failed
            logins, more bytes exported, longer runs), -1 if only low ones, 0 if both.
        prior: per feature ``(centre, scale)`` of the whole population (e.g. medians and MADs
            across users); the key's own baseline is shrunk towards it while its history is short.
        prior_weight: how many rows of the key's own history the prior is worth.
        min_scale: absolute floor of every feature's scale (float or per-feature mapping).
        min_history, warmup_ramp: warm-up rows (no score) and ramp rows (partial score); with a
            prior the warm-up is shortened, since the prior already says what normal looks like.
        scale_alpha, huber: EW weight and clipping (sigmas) of the robust baseline updates.
        calib_window: recent rows whose aggregated z the score's calibration is fitted on
            (:class:`~health_monitor.detectors.base.TailCalibrator`).
        trees_weight: how far the Half-Space Trees score may lift the robust score (0 disables).
        log_features: features judged on a log scale (byte volumes, durations, costs: heavy
            right tails where a 3x jump matters, not a fixed number of bytes). Evidence still
            shows their raw values.
        n_trees, height, window_size, seed: river HalfSpaceTrees parameters (kept small: the
            state of every key is stored).
    """

    name = "multivariate_robust_hst"
    version = "3"

    def __init__(self, features: list[str], threshold: float = 0.8,
                 directions: Mapping[str, int] | None = None,
                 prior: Mapping[str, tuple[float, float]] | None = None, prior_weight: float = 10.0,
                 min_scale: float | Mapping[str, float] = 1e-6, min_history: int = 24,
                 warmup_ramp: int = 48, scale_alpha: float = 0.05, huber: float = 3.0,
                 calib_window: int = 2000, trees_weight: float = 0.5,
                 n_trees: int = 10, height: int = 6, window_size: int = 64, seed: int = 42,
                 log_features: list[str] | tuple[str, ...] = ()) -> None:
        if not features:
            raise ValueError("MultivariateDetector needs at least one feature")
        self.features = list(features)
        self.threshold = threshold
        self.directions = dict(directions or {})
        self.prior = dict(prior or {})
        self.prior_weight = prior_weight
        self.min_scale = min_scale
        self.min_history = min_history
        self.warmup_ramp = warmup_ramp
        self.scale_alpha = scale_alpha
        self.huber = huber
        self.calib_window = calib_window
        self.trees_weight = trees_weight
        self.n_trees = n_trees
        self.height = height
        self.window_size = window_size
        self.seed = seed
        unknown = sorted(set(log_features) - set(self.features))
        if unknown:
            raise ValueError(f"log_features not among the features: {', '.join(unknown)}")
        self.log_features = tuple(log_features)
        p = len(self.features)
        self.n_ = 0
        self.center_ = np.full(p, np.nan)
        self.mad_ = np.zeros(p)
        self.spread_ = np.zeros(p)  # unclipped EW mean absolute deviation: lets the scale grow
        self.mean_abs_ = np.zeros(p)  # EW mean of |x|: the Poisson (count) noise floor
        # every value so far a whole number (a count) or within [0, 1] (a share or a rate)
        self.integer_ = np.ones(p, dtype=bool)
        self.unit_ = np.ones(p, dtype=bool)
        self.q_hi_ = np.full(p, np.nan)  # running 95th / 5th percentiles (stochastic approximation)
        self.q_lo_ = np.full(p, np.nan)
        self.count_ = np.zeros(p, dtype=int)
        self.calib_ = TailCalibrator(window=calib_window)
        self.q_trees_ = 0.5
        self.trees_ = HalfSpaceTrees(n_trees=n_trees, height=height, window_size=window_size,
                                     limits={f: (0.0, 1.0) for f in self.features}, seed=seed)

    def is_anomaly(self, scores: Scores) -> np.ndarray:
        """Boolean anomaly flags for ``scores`` at this detector's threshold."""
        return np.asarray(scores.score) >= self.threshold

    def _baseline(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Centre and upward/downward sigma per feature, shrunk to the prior while history is short.

        Why asymmetric and quantile-aware: activity features are zero-inflated and skewed (most
        hours a user exports nothing; some hours a few MB). A MAD alone collapses to 0 on such a
        feature and every ordinary non-zero value would alarm; the scale is therefore at least
        the distance from the centre to the key's own 95th (5th) percentile over 1.645, so a
        value is judged against how far this key's usual upper (lower) tail reaches.
        """
        center = self.center_.copy()
        base = np.maximum(self.mad_, 0.5 * self.spread_)
        up = np.maximum(base, np.nan_to_num(self.q_hi_ - center, nan=0.0) / 1.645 / _SIGMA_PER_MAD)
        down = np.maximum(base, np.nan_to_num(center - self.q_lo_, nan=0.0) / 1.645 / _SIGMA_PER_MAD)
        for j, f in enumerate(self.features):
            floor = self.min_scale.get(f, 1e-6) if isinstance(self.min_scale, Mapping) else self.min_scale
            if f in self.prior:
                c0, s0 = self.prior[f]
                w = self.count_[j] / (self.count_[j] + self.prior_weight)
                center[j] = c0 if math.isnan(center[j]) else w * center[j] + (1 - w) * c0
                up[j] = w * up[j] + (1 - w) * s0 / _SIGMA_PER_MAD
                down[j] = w * down[j] + (1 - w) * s0 / _SIGMA_PER_MAD
                floor = max(floor, 0.1 * s0 / _SIGMA_PER_MAD)
            lvl = 0.0 if math.isnan(center[j]) else abs(center[j])
            # counts are at least Poisson-noisy (sd >= sqrt(mean)), so a feature that is usually 0
            # but sometimes 1 (a sensitive read, a failed login) is not an alarm each time it is 1
            floor = max(floor, 1e-3 * lvl)
            if self.integer_[j] or self.unit_[j]:
                # counts and shares are at least Poisson / binomial noisy
                floor = max(floor, math.sqrt(self.mean_abs_[j]) / _SIGMA_PER_MAD)
            if self.integer_[j]:
                # A count moves in whole steps: half a count is its resolution. Without this a
                # count that was always 0 has no scale at all and its first 1 (one weekend event,
                # one grant) scores a z of millions.
                floor = max(floor, COUNT_RESOLUTION / _SIGMA_PER_MAD)
            up[j] = max(up[j], floor)
            down[j] = max(down[j], floor)
        return center, _SIGMA_PER_MAD * up, _SIGMA_PER_MAD * down

    def score_learn(self, frame: pd.DataFrame) -> Scores:
        """Score each row (columns ``timestamp`` plus the features) before learning it."""
        missing = [f for f in self.features if f not in frame.columns]
        if missing:
            raise ValueError(f"frame lacks feature column(s): {', '.join(missing)}")
        raw = frame[self.features].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
        X = raw.copy()
        for f in self.log_features:
            j = self.features.index(f)
            X[:, j] = np.sign(X[:, j]) * np.log1p(np.abs(X[:, j]))
        n, p = X.shape
        dirs = np.array([self.directions.get(f, 1) for f in self.features])
        score = np.zeros(n)
        expected = np.full(n, np.nan)
        evidence: list[list[str]] = [[] for _ in range(n)]
        drivers: list[list[str]] = [[] for _ in range(n)]
        with_prior = bool(self.prior)
        for i in range(n):
            x = X[i]
            ok = np.isfinite(x)
            center, sig_up, sig_down = self._baseline()
            known = ok & ~np.isnan(center)
            sigma = np.where(x >= center, sig_up, sig_down)
            z = np.zeros(p)
            z[known] = (x[known] - center[known]) / sigma[known]
            zdir = np.where(dirs > 0, np.maximum(z, 0), np.where(dirs < 0, np.maximum(-z, 0), np.abs(z)))
            top = np.sort(zdir)[::-1][:3]
            z_agg = float(np.sqrt(np.sum(top ** 2)))
            j_top = int(np.argmax(zdir))
            if not math.isnan(center[j_top]):
                expected[i] = self._untransform(center)[j_top]
            # --- score ---
            s = 0.0
            if ok.any():
                n_eff = self.n_ + (self.prior_weight if with_prior else 0)
                warm = (n_eff - self.min_history) / self.warmup_ramp
                warm = 0.0 if warm < 0 else (1.0 if warm > 1 else warm)
                calib = self._calibrator()
                s_r = calib.score(z_agg)
                scaled = {f: 0.5 + 0.5 * math.tanh(z[j] / 3.0) for j, f in enumerate(self.features)}
                s_t = 0.0
                if self.trees_weight > 0 and self.n_ >= self.window_size:
                    h = float(self.trees_.score_one(scaled))
                    s_t = max(0.0, (h - self.q_trees_) / max(1e-9, 1.0 - self.q_trees_))
                    self.q_trees_ *= math.exp(0.02 * 0.95) if h > self.q_trees_ else math.exp(-0.02 * 0.05)
                    self.q_trees_ = min(self.q_trees_, 0.99)
                s = (s_r + (1 - s_r) * self.trees_weight * s_t) * warm
                s = max(0.0, min(1.0, s))
                if self.n_ > self.min_history:
                    calib.learn(z_agg)
                if s >= 0.5:
                    evidence[i] = self._evidence(raw[i], self._untransform(center), z, zdir, s_t)
                    drivers[i] = [self.features[j] for j in np.argsort(-zdir, kind="stable")
                                  if zdir[j] >= DRIVER_Z]
                # --- learn ---
                self.trees_.learn_one(scaled)
                self._learn(x, ok, sigma)
                self.n_ += 1
            score[i] = s
        return Scores(score=score, expected=expected, evidence=evidence, drivers=drivers)

    def _calibrator(self) -> TailCalibrator:
        # state pickled before version 3 has no calibrator: start one (it learns within 100 rows)
        if "calib_" not in self.__dict__:
            self.calib_ = TailCalibrator(window=self.__dict__.get("calib_window", 2000))
        return self.calib_

    def _untransform(self, v: np.ndarray) -> np.ndarray:
        """Back from the log scale of ``log_features`` to the features' own units."""
        if not self.log_features:
            return v
        v = v.copy()
        for f in self.log_features:
            j = self.features.index(f)
            v[j] = np.sign(v[j]) * np.expm1(np.abs(v[j]))
        return v

    def _learn(self, x: np.ndarray, ok: np.ndarray, sigma: np.ndarray) -> None:
        for j in np.nonzero(ok)[0]:
            c = self.center_[j]
            if math.isnan(c):
                self.center_[j] = x[j]
                self.q_hi_[j] = self.q_lo_[j] = x[j]
                self.mean_abs_[j] = abs(x[j])
                self.integer_[j] = x[j] == round(x[j])
                self.unit_[j] = 0.0 <= x[j] <= 1.0
                self.count_[j] = 1
                continue
            k = self.count_[j]
            a = max(self.scale_alpha, 1.0 / (k + 1))
            r = x[j] - c
            lim = self.huber * sigma[j] if k > 5 else math.inf
            rc = max(-lim, min(lim, r))
            self.center_[j] = c + a * rc
            # capped after warm-up so one absurd value cannot blind the key for weeks
            ar, ax = abs(r), abs(x[j])
            if k > 5 and self.spread_[j] > 0:  # (a feature that was always 0 may still grow)
                ar = min(ar, 100.0 * self.spread_[j] + 10.0 * sigma[j])
                ax = min(ax, 100.0 * (self.mean_abs_[j] + self.spread_[j]))
            self.spread_[j] += (a / 2) * (ar - self.spread_[j])
            self.mean_abs_[j] += (a / 2) * (ax - self.mean_abs_[j])
            if self.integer_[j] and x[j] != round(x[j]):
                self.integer_[j] = False
            if self.unit_[j] and not 0.0 <= x[j] <= 1.0:
                self.unit_[j] = False
            # quantile steps proportional to the feature's spread keep them scale-free
            step = 0.05 * max(self.spread_[j], self.mad_[j], 1e-12)
            if math.isnan(self.q_hi_[j]):
                self.q_hi_[j] = self.q_lo_[j] = x[j]
            self.q_hi_[j] += step * (0.95 - (x[j] <= self.q_hi_[j])) / 0.05
            self.q_lo_[j] += step * (0.05 - (x[j] < self.q_lo_[j])) / 0.05
            self.mad_[j] += a * (abs(rc) - self.mad_[j])
            self.count_[j] = k + 1

    def _evidence(self, x: np.ndarray, center: np.ndarray, z: np.ndarray, zdir: np.ndarray,
                  s_t: float) -> list[str]:
        out = []
        for j in np.argsort(-zdir, kind="stable")[:3]:
            if zdir[j] < 2.0:
                break
            out.append(f"{self.features[j]} {x[j]:.4g} vs baseline {center[j]:.4g} (z={z[j]:+.1f})")
        if s_t >= 0.5:
            out.append("unusual combination of features (half-space trees)")
        return out


def population_prior(frame: pd.DataFrame, features: list[str]) -> dict[str, tuple[float, float]]:
    """``(centre, scale)`` per feature across a whole population (all users, all jobs), for the
    ``prior`` of :class:`MultivariateDetector`: median, and the larger of the normalised MAD and
    the distance from the median to the 95th percentile over 1.645 (zero-inflated features)."""
    out: dict[str, tuple[float, float]] = {}
    for f in features:
        v = pd.to_numeric(frame[f], errors="coerce").to_numpy(dtype=float)
        v = v[np.isfinite(v)]
        if len(v) == 0:
            continue
        med = float(np.median(v))
        mad = 1.4826 * float(np.median(np.abs(v - med)))
        upper = (float(np.quantile(v, 0.95)) - med) / 1.645
        out[f] = (med, max(mad, upper, 1e-3 * abs(med), 1e-9))
    return out

