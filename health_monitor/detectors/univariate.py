"""Online detector for one univariate series (a workspace's hourly cost, any metric in a CSV).

Why this design: it must work on series it has never seen (any sampling interval, flat stretches,
gaps, level shifts, trends, seasonality) and score strictly causally, a micro-batch at a time.
So instead of fitting one model, it runs a small family of robust exponential-smoothing
forecasters side by side and, at each row, trusts the one with the lowest recent forecast error
on this series (model selection by running error, so nothing is tuned per series):

* three non-seasonal robust Holt models: near-naive with trend (random-walk-like series), a
  fast and a slow EW level (noisy stationary series), all with damped trends;
* calendar-seasonal ones (hour-of-day, day-of-week [x hour]) when the sampling interval allows
  and the timestamps are real dates (not a row number written as a time);
* one with a period found by autocorrelation of the history (non-calendar cycles), re-searched
  as the history grows. Late-joining models are warm-started on the history (per-phase median
  profile, then a replay), which is still causal: the history holds only rows already scored.

Each model's residual is standardised by its own robust scale (EW mean absolute deviation of
Huber-clipped residuals, with a floor so a flat line does not explode on float noise, yet a jump
off a flat line still scores high). After a gap, forecasts carry the damped trend over the missed
steps and their sigma widens. A two-sided CUSUM on the standardised residuals flags sustained
shifts and re-baselines the level, so a level shift alarms for a few points and is then accepted
as the new normal. The scale has floors relative to the level, the typical step and the
measurement's resolution (flat, quantized and zero-inflated series). The robust |z| becomes a
calibrated tail probability of this series (:class:`~health_monitor.detectors.base.TailCalibrator`:
score 0.8 = p 1e-4, so a series without anomalies stays under 1 alarm per 1,000 rows), damped
during warm-up. Rows are scored before they are learned.

A second, complementary statistic watches the *shape* of the recent stretch rather than one
row's distance from a forecast (:class:`_Subsequences`, what the published KNN CAD detector does):
the distance of the last ``subseq_len`` values to their nearest neighbours among the key's
earlier stretches, calibrated by its own :class:`TailCalibrator`. A forecaster tracks a changed
daily shape or a multi-row burst after its first row; the stretch has no neighbour in the key's
history. The two tail probabilities are combined by a weighted Bonferroni rule,
``p = min(p_forecast / (1 - w), p_subsequence / w)`` with ``w = subseq_weight``, which is a valid
tail probability whatever the dependence between the two, so the score keeps its meaning and the
false-alarm budget. A stretch stays unusual for ``subseq_len`` rows after one odd value; only a
row whose stretch is rarer than each of the previous ``subseq_len - 1`` rows' counts (it adds to
the excursion), so one spike is not reported ten times.

NaN values (and NaT timestamps) are not scored and not learned: score 0 and ``is_anomaly``
False; ``expected`` is still given. Missing timestamps need no filling: seasonal phases come from
the timestamps themselves. Known weakness (see bench/bench_detect_quality.py): a slow trend
change is tracked rather than flagged.

Why one module over 400 lines: the family of forecasters shares one state, one standardisation
and one CUSUM; none of the pieces is usable alone.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from health_monitor.detectors.base import DECADES, Scores, StreamingDetector, TailCalibrator
from health_monitor.detectors.base import SIGMA_PER_MAD as _SIGMA_PER_MAD

_DAY = 86400.0
_WEEK = 7 * _DAY


def _damped_sum(phi: float, k: int) -> float:
    """phi + phi^2 + ... + phi^k: how far a damped trend carries over k steps."""
    return phi * (1 - phi ** k) / (1 - phi)


class _Model:
    """One robust additive Holt(-Winters) forecaster with its own scale and shift detector."""

    __slots__ = ("label", "kind", "bins", "period", "alpha", "beta", "phi", "gamma", "level", "trend",
                 "season", "season_n", "mad", "n", "cpos", "cneg", "rsum_pos", "rn_pos", "rsum_neg",
                 "rn_neg", "err")

    def __init__(self, label: str, kind: str, bins: int, period: float, alpha: float, beta: float,
                 gamma: float) -> None:
        self.label = label
        self.kind = kind  # "none", "calendar" (phase from time within `period` seconds), "steps"
        self.bins = bins
        self.period = period
        self.alpha = alpha
        self.beta = beta
        self.phi = 0.98
        self.gamma = gamma
        self.level = math.nan
        self.trend = 0.0
        self.season = [0.0] * max(bins, 1)
        self.season_n = [0] * max(bins, 1)
        self.mad = 0.0
        self.n = 0
        self.cpos = self.cneg = 0.0
        self.rsum_pos = self.rsum_neg = 0.0
        self.rn_pos = self.rn_neg = 0
        self.err = 0.0  # EW mean absolute standardised... raw error used to pick the best model

    def phase(self, t: float, idx: int) -> int:
        if self.kind == "calendar":
            return int((t % self.period) / self.period * self.bins) % self.bins
        if self.kind == "steps":
            return idx % self.bins
        return 0

    def forecast(self, ph: int, k: int = 1) -> float:
        """Forecast ``k`` steps after the last learned row (k > 1 after a gap)."""
        if k == 1:
            return self.level + self.phi * self.trend + self.season[ph]
        return self.level + self.trend * _damped_sum(self.phi, k) + self.season[ph]


#: The stretch statistic is 1.5x its distance ratio (see :meth:`_Subsequences.tail_p`).
_STRETCH_SCALE = 1.5
#: Its defaults (chosen on half of NAB, docs/detection-quality.md): stretch length, neighbours
#: averaged (2: one earlier look-alike, the same incident last week, does not hide a stretch),
#: earlier stretches searched, share of the false-alarm budget.
_SUBSEQ_LEN, _SUBSEQ_K, _SUBSEQ_HISTORY, _SUBSEQ_WEIGHT = 10, 2, 1000, 0.8


class _Subsequences:
    """The stretch statistic: how far the last ``length`` values are from their ``k`` nearest
    neighbours among the key's earlier stretches (RMS distance, stretches ending at least
    ``length`` rows back so none overlaps the current one), relative to its usual value.

    Why: a forecaster judges one row at a time and follows a changed shape after its first row;
    a stretch unlike anything in the key's recent history stays visible as one. State is a fixed
    buffer of ``history + 2 * length - 1`` values, an EW mean and a :class:`TailCalibrator`.
    """

    def __init__(self, length: int, k: int, history: int, calib_window: int) -> None:
        self.length = length
        self.k = k
        self.buf_ = np.zeros(history + 2 * length - 1)
        self.filled_ = 0
        self.usual_ = math.nan  # EW mean of the neighbour distance: what "far" is measured against
        self.calib_ = TailCalibrator(window=calib_window)
        self.recent_p_: deque[float] = deque(maxlen=length - 1)
        self.d2_: np.ndarray | None = None  # squared distances to the earlier stretches, once full
        self.since_full_ = 0
        self.big_ = 0.0  # largest squared difference added to d2_ since it was last computed

    def _nearest(self, x: float) -> float | None:
        """Append ``x``; the mean squared distance of the current stretch to its ``k`` nearest
        earlier ones (None while the buffer holds too few values).

        The distances to every window of the buffer (windows reaching into the zeros before the
        first value included: they join the search as the buffer fills) are updated in place
        (the current stretch and each window move by one row: add the new pair of values, drop
        the oldest) instead of recomputed, which costs O(history) per row instead of
        O(history x length). Round-off of those updates is about 1e-13 of the largest term added
        since the last full computation, so they are recomputed every 256 rows, and at once when
        that could matter against the nearest distance (a huge spike in the buffer next to exact
        repeats). (Before 2026-12-05 they were recomputed on every row until the buffer was full:
        the same values up to that round-off, at ten times the cost.)"""
        x = -1e150 if x < -1e150 else (1e150 if x > 1e150 else x)  # squares stay finite
        buf, L, k = self.buf_, self.length, self.k
        size = len(buf)
        h = size - 2 * L + 1
        d2 = self.d2_ if "d2_" in self.__dict__ else None
        ready = 2 * L + k - 1
        if d2 is not None and self.since_full_ < 256:
            d2 -= (buf[:h] - buf[size - L]) ** 2
            buf[:-1] = buf[1:]
            buf[-1] = x
            add = (buf[L - 1:L - 1 + h] - x) ** 2
            d2 += add
            self.since_full_ += 1
            self.filled_ = min(self.filled_ + 1, size)
            big = float(add.max())
            self.big_ = big if big > self.big_ else self.big_
            if self.filled_ < ready:
                return None
            near2 = float(np.partition(d2[size - self.filled_:], k - 1)[:k].mean())
            if self.big_ * 1e-12 <= near2:
                return near2
            self.since_full_ = 256  # round-off could matter: recompute below
        else:
            buf[:-1] = buf[1:]
            buf[-1] = x
            self.filled_ = min(self.filled_ + 1, size)
        if self.filled_ < ready:
            return None
        diff = sliding_window_view(buf[:-L], L) - buf[-L:]
        d2 = np.einsum("ij,ij->i", diff, diff)
        self.d2_, self.since_full_, self.big_ = d2, 0, float(d2.max())
        return float(np.partition(d2[size - self.filled_:], k - 1)[:k].mean())

    def tail_p(self, x: float, floor: float) -> tuple[float, float]:
        """Add ``x`` (the row being scored) to the stretch; return the stretch's tail probability
        (1 while warming up or when an earlier row of the same stretch was rarer) and its statistic."""
        near2 = self._nearest(x)
        if near2 is None:
            return 1.0, math.nan
        near = math.sqrt((near2 if near2 > 0 else 0.0) / self.length)
        usual = self.usual_
        if usual != usual:  # first stretch: nothing to compare with yet
            self.usual_ = near
            return 1.0, math.nan
        # 1.5x: the calibrator treats |z| under 1.645 as ordinary until the key's own 90th percentile
        # is known to be higher; at 1x the ratio (usually near 1) hid a 20-sigma spike on a
        # seasonal series (tests/unit/test_calibration.py)
        stat = _STRETCH_SCALE * near / (usual if usual > floor else floor)
        self.usual_ = usual + 0.01 * (near - usual)
        if len(self.calib_.buf_) < self.calib_.min_rows:
            return 1.0, stat
        p = self.calib_.tail_p(stat)
        recent = self.recent_p_
        counts = not recent or p < min(recent)
        recent.append(p)
        return (p if counts else 1.0), stat

    def learn(self, stat: float) -> None:
        """Learn the stretch statistic of the row just scored (NaN while warming up: skipped)."""
        if stat == stat:
            self.calib_.learn(stat)


class UnivariateDetector(StreamingDetector):
    """Causal anomaly scores for one numeric series; see the module docstring for the method.

    Args:
        threshold: ``score >= threshold`` is an anomaly (:meth:`is_anomaly`).
        min_history: rows learned before any non-zero score (warm-up).
        warmup_ramp: rows over which scores ramp from 0 to full weight after ``min_history``.
        scale_alpha: EW weight of the robust scale update (smaller = steadier scale; 0.01: a
            disturbance of a few dozen rows does not widen the scale enough to hide the next one).
        huber: residuals beyond this many sigmas are clipped before they update a model.
        cusum_k, cusum_h: CUSUM slack and decision threshold, in sigmas, for level shifts.
        rel_floor: scale floor relative to the series' level (flat lines).
        calib_window: recent rows whose |z| the score's calibration is fitted on
            (:class:`~health_monitor.detectors.base.TailCalibrator`); 5,000 rows (17 days of
            5-minute data) so a tail probability near 1e-3 rests on a handful of the key's own
            rows rather than on two or three.
        shift_hold: rows after a confirmed level shift whose score stays at least a linearly
            decaying share of the shift's score (0 disables).
        seasonal: look for daily/weekly/autocorrelation seasonality.
        subseq_len, subseq_k, subseq_history: the stretch statistic's length (rows), number of
            nearest neighbours averaged, and how many earlier stretches it searches (a fixed-size
            buffer: subseq_history + 2 * subseq_len values).
        subseq_weight: share of the false-alarm budget given to the stretch statistic in the
            weighted Bonferroni combination (0 = forecast residual only, the v3 detector).
    """

    name = "univariate_robust_ensemble"
    version = "4"
    # v3 changed two defaults (calibration rows, scale weight), not the state: v2 keys go on. v4
    # adds the stretch statistic; the state it had still means the same, and a continued key
    # starts the new statistic's buffers empty (it counts once it has learned 100 stretches).
    continues = ("2", "3")

    def __init__(self, threshold: float = 0.8, min_history: int = 12, warmup_ramp: int = 24,
                 scale_alpha: float = 0.01, huber: float = 3.0, cusum_k: float = 1.0,
                 cusum_h: float = 8.0, rel_floor: float = 1e-3, calib_window: int = 5000,
                 seasonal: bool = True,
                 shift_hold: int = 6, subseq_len: int = _SUBSEQ_LEN, subseq_k: int = _SUBSEQ_K,
                 subseq_history: int = _SUBSEQ_HISTORY, subseq_weight: float = _SUBSEQ_WEIGHT) -> None:
        if subseq_len < 2 or subseq_k < 1 or subseq_history < subseq_k or not 0.0 <= subseq_weight < 1.0:
            raise ValueError("subseq_len must be >= 2, subseq_k >= 1, subseq_history >= subseq_k and "
                             "subseq_weight in [0, 1)")
        self.threshold = threshold
        self.min_history = min_history
        self.warmup_ramp = warmup_ramp
        self.scale_alpha = scale_alpha
        self.huber = huber
        self.cusum_k = cusum_k
        self.cusum_h = cusum_h
        self.rel_floor = rel_floor
        self.calib_window = calib_window
        self.seasonal = seasonal
        self.shift_hold = shift_hold
        self.subseq_len = subseq_len
        self.subseq_k = subseq_k
        self.subseq_history = subseq_history
        self.subseq_weight = subseq_weight
        # learned state (scikit-learn convention: trailing underscore)
        self.n_ = 0
        self.t0_ = math.nan
        self.t_last_ = math.nan
        self.diffs_: list[float] = []
        self.step_ = math.nan
        self.models_: list[_Model] = [
            _Model("last value + trend", "none", 1, 0.0, 0.9, 0.1, 0.0),
            _Model("EW level (fast)", "none", 1, 0.0, 0.5, 0.02, 0.0),
            _Model("EW level (slow)", "none", 1, 0.0, 0.1, 0.01, 0.0),
        ]
        self.history_: deque[tuple[float, float]] = deque(maxlen=2048)
        self.acf_checked_at_: list[int] = []
        self.long_mad_ = 0.0
        self.abs_level_ = 0.0
        self.resolution_ = math.inf  # smallest step between distinct values: the measurement's resolution
        self.res_count_ = 0  # how many steps of exactly that size
        self.calib_ = TailCalibrator(window=calib_window)
        self._last_x = math.nan
        self.hold_score_ = 0.0
        self.hold_left_ = 0
        self.subseq_ = _Subsequences(subseq_len, subseq_k, subseq_history, calib_window)

    # ------------------------------------------------------------------ public API
    def is_anomaly(self, scores: Scores) -> np.ndarray:
        """Boolean anomaly flags for ``scores`` at this detector's threshold."""
        return np.asarray(scores.score) >= self.threshold

    def score_learn(self, frame: pd.DataFrame) -> Scores:
        """Score each row (columns ``timestamp``, ``value``) before learning it."""
        n = len(frame)
        ts = pd.to_datetime(frame["timestamp"])
        tsec = ts.to_numpy(dtype="datetime64[ns]").astype("int64") / 1e9
        tsec = np.where(ts.isna().to_numpy(), np.nan, tsec)
        vals = pd.to_numeric(frame["value"], errors="coerce").to_numpy(dtype=float)
        score = np.zeros(n)
        expected = np.full(n, np.nan)
        evidence: list[list[str]] = [[] for _ in range(n)]
        for i in range(n):
            s, e, ev = self._one(float(tsec[i]), float(vals[i]))
            score[i] = s
            expected[i] = e
            if ev:
                evidence[i] = ev
        return Scores(score=score, expected=expected, evidence=evidence)

    # ------------------------------------------------------------------ internals
    def _learn_resolution(self, step: float) -> None:
        """Smallest step between distinct values, and how often it recurs: it is the measurement's
        resolution only when common (>= 1% of rows), not when the only steps were two spikes."""
        res = self.__dict__.get("resolution_", math.inf)
        if step < res * (1 - 1e-6):
            self.resolution_, self.res_count_ = step, 1
        elif step <= res * (1 + 1e-6):
            self.res_count_ = self.__dict__.get("res_count_", 0) + 1

    def _calibrator(self) -> TailCalibrator:
        # state pickled before version 2 has no calibrator: start one (it learns within 100 rows)
        if "calib_" not in self.__dict__:
            self.calib_ = TailCalibrator(window=self.__dict__.get("calib_window", 2000))
        return self.calib_

    def _subsequences(self) -> _Subsequences | None:
        # state continued from v2/v3 has no stretch statistic: start one with today's defaults
        if "subseq_" not in self.__dict__:
            self.subseq_weight = _SUBSEQ_WEIGHT
            self.subseq_ = _Subsequences(_SUBSEQ_LEN, _SUBSEQ_K, _SUBSEQ_HISTORY,
                                         self.__dict__.get("calib_window", 5000))
        return self.subseq_ if self.subseq_weight > 0 else None

    def _index(self, t: float) -> int:
        if math.isnan(self.step_) or math.isnan(self.t0_):
            return self.n_
        return int(round((t - self.t0_) / self.step_))

    def _one(self, t: float, x: float) -> tuple[float, float, list[str]]:
        if math.isnan(t):
            return 0.0, math.nan, []
        idx = self._index(t)
        # steps since the last learned row: a gap widens the forecast's uncertainty
        k = 1
        if not (math.isnan(self.step_) or math.isnan(self.t_last_)) and t - self.t_last_ > 1.5 * self.step_:
            k = min(int(round((t - self.t_last_) / self.step_)), 10_000)
        models = self.models_
        # pick the model that has forecast this series best so far
        best = models[0]
        for m in models[1:]:
            if m.n >= 2 * self.min_history and m.err < best.err:
                best = m
        expected = math.nan if math.isnan(best.level) else best.forecast(best.phase(t, idx), k)
        if math.isnan(x) or math.isinf(x):
            return 0.0, expected, []

        score = 0.0
        evidence: list[str] = []
        # no division by a near-zero spread: the scale is at least a share of the level, of the
        # series' typical step, and half its resolution (a one-step move of a quantized or
        # zero-inflated series is never more than z ~ 1.6 on its own)
        res = self.__dict__.get("resolution_", math.inf)
        res_ok = res < math.inf and self.__dict__.get("res_count_", 0) >= max(5, 0.01 * self.n_)
        floor = max(self.rel_floor * self.abs_level_, 0.05 * self.long_mad_, 0.5 * res if res_ok else 0.0,
                    1e-9)
        shift_flag = False
        z_best = 0.0
        huber, ck, ch = self.huber, self.cusum_k, self.cusum_h
        scale_alpha = self.scale_alpha
        for m in models:
            # hand-inlined (no min/max/method calls): this loop runs rows x models times
            if m.level != m.level:  # NaN: first value
                m.level = x
                m.n = 1
                continue
            bins = m.bins
            if bins == 1:
                ph = 0
            elif m.kind == "calendar":
                ph = int((t % m.period) / m.period * bins) % bins
            else:
                ph = idx % bins
            season = m.season
            base = m.level + m.phi * m.trend if k == 1 else m.level + m.trend * _damped_sum(m.phi, k)
            r = x - base - season[ph]
            mad = m.mad if m.mad > floor else floor
            sigma = _SIGMA_PER_MAD * mad
            if k > 1:
                inflate = math.sqrt(1.0 + (k - 1) * m.alpha * m.alpha)
                sigma *= inflate if inflate < 3.0 else 3.0
            z = r / sigma
            if m is best:
                z_best = z
            # --- learn (after the score was taken) ---
            n_m = m.n
            a_s = 1.0 / (n_m + 1)
            if a_s < scale_alpha:
                a_s = scale_alpha
            if n_m > 5:
                lim = huber * sigma
                rc = lim if r > lim else (-lim if r < -lim else r)
                ar = -r if r < 0 else r
                ar = ar if ar < 3 * lim else 3 * lim
                zc = 4.0 if z > 4.0 else (-4.0 if z < -4.0 else z)
            else:
                rc = r
                ar = -r if r < 0 else r
                zc = 0.0
            arc = -rc if rc < 0 else rc
            m.mad += a_s * (arc - m.mad)
            a_e = 1.0 / (n_m + 1)
            m.err += (a_e if a_e > 0.01 else 0.01) * (ar - m.err)
            m.level = base + m.alpha * rc
            m.trend = (m.phi if k == 1 else m.phi ** k) * m.trend + m.beta * rc
            if bins > 1:
                cnt = m.season_n[ph]
                g = m.gamma
                if cnt < 3 and 1.0 / (cnt + 1) > g:
                    g = 1.0 / (cnt + 1)
                m.season_n[ph] = cnt + 1
                season[ph] += g * (1 - m.alpha) * rc
            # CUSUM on standardised residuals, clipped so one spike cannot trigger it alone
            cpos = m.cpos + zc - ck
            cneg = m.cneg - zc - ck
            if cpos > 0:
                m.rsum_pos += r - rc
                m.rn_pos += 1
            else:
                cpos = 0.0
                m.rsum_pos, m.rn_pos = 0.0, 0
            if cneg > 0:
                m.rsum_neg += r - rc
                m.rn_neg += 1
            else:
                cneg = 0.0
                m.rsum_neg, m.rn_neg = 0.0, 0
            if cpos > ch or cneg > ch:
                # re-baseline: move the level by the part of the recent residuals it did not absorb
                if cpos > ch:
                    m.level += m.rsum_pos / (m.rn_pos or 1)
                else:
                    m.level += m.rsum_neg / (m.rn_neg or 1)
                m.trend = 0.0
                cpos = cneg = 0.0
                m.rsum_pos = m.rsum_neg = 0.0
                m.rn_pos = m.rn_neg = 0
                if m is best:
                    shift_flag = True
            m.cpos, m.cneg = cpos, cneg
            m.n = n_m + 1

        n_before = self.n_
        sub = self._subsequences()
        p_sub, sub_stat = (sub.tail_p(x, floor) if sub is not None else (1.0, math.nan))
        if n_before >= 2:
            az = abs(z_best)
            calib = self._calibrator()
            warm = (n_before - self.min_history) / self.warmup_ramp
            warm = 0.0 if warm < 0 else (1.0 if warm > 1 else warm)
            p = p_z = calib.tail_p(az)
            if sub is not None:
                # weighted Bonferroni: a valid tail probability whatever the two statistics' dependence
                w = self.subseq_weight
                p = min(1.0, p / (1.0 - w), p_sub / w)
            score = (0.0 if p >= 1.0 else min(1.0, -math.log10(max(p, 1e-300)) / DECADES)) * warm
            # after a confirmed shift the next rows are still off the *old* normal: hold the alarm
            # for a few rows, decaying, so the change is reported as one event of sensible length
            if self.hold_left_ > 0:
                held = self.hold_score_ * self.hold_left_ / (self.shift_hold + 1)
                score = held if held > score else score
                self.hold_left_ -= 1
            if shift_flag and self.shift_hold > 0:
                self.hold_score_ = score
                self.hold_left_ = self.shift_hold
            if n_before > self.min_history:
                calib.learn(az)
            if score >= 0.5 or shift_flag:
                evidence = self._evidence(x, expected, z_best, best, shift_flag)
                # the stretch decided the score (it counts, and its share of the budget is the rarer);
                # where the forecast alone would not have scored 0.5 it is the reason, so it goes
                # before the forecast's z (`detect` prints the first two entries)
                w = self.subseq_weight
                if sub is not None and p_sub < 1.0 and p_sub * (1.0 - w) < p_z * w:
                    alone = p_z / (1.0 - w) > 10 ** (-0.5 * DECADES)
                    evidence.insert(len(evidence) - (1 + shift_flag if alone else 0),
                                    f"the last {sub.length} values unlike the key's earlier stretches "
                                    f"({sub_stat / _STRETCH_SCALE:.1f}x their usual distance)")
        if sub is not None:
            sub.learn(sub_stat)

        # series-level state
        # the scale floors must not be poisoned by one absurd value (a 1000x spike would blind the
        # detector for thousands of rows), so after warm-up their updates are capped: they can
        # still grow geometrically when the series truly changes scale
        ax, dx = abs(x), (abs(x - self._last_x) if n_before >= 1 else 0.0)
        if n_before > self.min_history:
            cap = 5.0 * (self.abs_level_ + self.long_mad_) + 1e-12
            ax = ax if ax < cap else cap
            cap = 5.0 * self.long_mad_ + 1e-3 * self.abs_level_ + 1e-12
            dx = dx if dx < cap else cap
        self.abs_level_ += max(0.02, 1.0 / (n_before + 1)) * (ax - self.abs_level_)
        if n_before >= 1:
            self.long_mad_ += max(0.005, 1.0 / n_before) * (dx - self.long_mad_)
        step = abs(x - self._last_x) if n_before >= 1 else 0.0
        if step > 1e-9 * (self.abs_level_ + 1e-12):  # (float round-off between equal values is not a step)
            self._learn_resolution(step)
        self._last_x = x
        if math.isnan(self.t0_):
            self.t0_ = t
        if not math.isnan(self.t_last_) and math.isnan(self.step_):
            if t > self.t_last_:
                self.diffs_.append(t - self.t_last_)
            if len(self.diffs_) >= 16:
                self.step_ = float(np.median(self.diffs_))
                self._add_calendar_models()
        self.t_last_ = t
        self.history_.append((t, x))
        self.n_ += 1
        if self.seasonal and self.n_ in (64, 128, 256, 512, 1024, 2048, 4096, 8192):
            self._add_period_model()
        return score, expected, evidence

    def _evidence(self, x: float, expected: float, z: float, best: _Model, shift: bool) -> list[str]:
        out = []
        if not math.isnan(expected):
            pct = (x - expected) / abs(expected) * 100 if abs(expected) > 1e-12 else math.inf
            pct_s = f"{pct:+.0f}%" if math.isfinite(pct) else "n/a"
            out.append(f"value {x:.4g} vs expected {expected:.4g} ({pct_s})")
        out.append(f"z={z:+.1f} vs {best.label} baseline")
        if shift:
            out.append("level shift")
        return out

    def _new_model(self, label: str, kind: str, bins: int, period: float) -> _Model:
        m = _Model(label, kind, bins, period, 0.2, 0.005, 0.15)
        # warm-start on the history so a late-joining model competes fairly (still causal: the
        # history holds only rows already scored)
        t0 = self.t0_
        hist = list(self.history_)
        phases = [m.phase(t, int(round((t - t0) / self.step_)) if not math.isnan(self.step_) else 0)
                  for t, _ in hist]
        if len(hist) >= 2 * bins:
            # seasonal profile from the history: per-phase median of the detrended values
            x = np.array([v for _, v in hist])
            tt = np.arange(len(x), dtype=float)
            y = x - np.polyval(np.polyfit(tt, x, 1), tt)
            ph_arr = np.array(phases)
            prof = np.zeros(bins)
            seen = np.zeros(bins, dtype=bool)
            for b in np.unique(ph_arr):
                prof[b] = np.median(y[ph_arr == b])
                seen[b] = True
            prof[seen] -= prof[seen].mean()
            m.season = prof.tolist()
            m.season_n = [3 if s else 0 for s in seen]
        for (_, x), ph in zip(hist, phases, strict=True):
            if math.isnan(m.level):
                m.level = x - m.season[ph]
                m.n = 1
                continue
            r = x - m.forecast(ph)
            sigma = _SIGMA_PER_MAD * max(m.mad, 1e-9)
            lim = self.huber * sigma if m.n > 5 else math.inf
            rc = max(-lim, min(lim, r))
            a_s = max(self.scale_alpha, 1.0 / (m.n + 1))
            m.mad += a_s * (abs(rc) - m.mad)
            m.err += max(0.01, 1.0 / (m.n + 1)) * (min(abs(r), 3 * lim) - m.err)
            g = max(m.gamma, 1.0 / (m.season_n[ph] + 1)) if m.season_n[ph] < 3 else m.gamma
            m.season_n[ph] += 1
            m.level = m.level + m.phi * m.trend + m.alpha * rc
            m.trend = m.phi * m.trend + m.beta * rc
            m.season[ph] += g * (1 - m.alpha) * rc
            m.n += 1
        return m

    def _add_calendar_models(self) -> None:
        if not self.seasonal or not (self.step_ > 0):
            return
        if self.t0_ < 3.2e8:
            return  # times before 1980 are a row index written as a time, not a calendar
        per_day = _DAY / self.step_
        if per_day >= 4:  # at least 4 points a day: an hour-of-day (or finer) profile
            bins = int(min(round(per_day), 96))
            self.models_.append(self._new_model("hour-of-day", "calendar", bins, _DAY))
        per_week = _WEEK / self.step_
        if per_week >= 7 and self.step_ <= _DAY:
            bins = int(min(round(per_week), 7 * 24))
            label = "day-of-week" if bins <= 7 else "day-of-week x hour"
            self.models_.append(self._new_model(label, "calendar", bins, _WEEK))

    def _add_period_model(self) -> None:
        """Find a dominant non-calendar cycle by autocorrelation of the recent history."""
        if math.isnan(self.step_):
            return
        x = np.array([v for _, v in self.history_], dtype=float)
        n = len(x)
        if n < 64:
            return
        tt = np.arange(n, dtype=float)
        coef = np.polyfit(tt, x, 1)
        y = x - np.polyval(coef, tt)
        y = y - y.mean()
        var = float(np.dot(y, y))
        if var <= 1e-12:
            return
        spec = np.fft.rfft(y, 2 * n)
        acf = np.fft.irfft(spec * np.conj(spec))[: n // 3] / var
        if len(acf) < 6:
            return
        # first dip below zero, then the highest peak after it
        neg = np.nonzero(acf < 0)[0]
        if len(neg) == 0:
            return
        start = int(neg[0])
        if start >= len(acf) - 2:
            return
        lag = start + int(np.argmax(acf[start:]))
        if acf[lag] < 0.3 or lag < 3:
            return
        for m in self.models_:
            if m.kind == "calendar" and abs(m.period / self.step_ - lag) <= max(1.0, 0.02 * lag):
                return  # the calendar model already covers it
            if m.kind == "steps" and m.bins == lag:
                return
        self.models_ = [m for m in self.models_ if m.kind != "steps"]
        self.models_.append(self._new_model(f"{lag}-step cycle", "steps", lag, 0.0))
