"""The one contract every streaming detector follows.

A detector watches one key (a workspace's hourly cost, a user's activity, a job's runs). It
sees that key's rows in event-time order, a micro-batch at a time, and for each row returns a
score in [0, 1] computed *before* learning the row (strictly causal), then learns it. Its whole
learned state round-trips through bytes so the streaming state store and the checkpoint can keep
it across restarts. Higher score = more anomalous, as in river's ``AnomalyDetector``.
"""

from __future__ import annotations

import math
import pickle
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

#: Mean absolute deviation -> standard deviation for Gaussian noise (both detectors scale by it).
SIGMA_PER_MAD = 1.2533


@dataclass
class Scores:
    """What a detector returns for a batch of rows of one key.

    Attributes:
        score: anomaly score per row, in [0, 1].
        expected: the value the detector expected per row (NaN where it has no opinion yet).
        evidence: per row, the top contributing features/reasons as short strings.
        drivers: per row, the features at least :data:`DRIVER_Z` robust sigmas from the key's
            baseline, strongest first (detectors of several features; empty lists otherwise):
            how many independent signals back a score, which alert severity weighs.
    """

    score: np.ndarray
    expected: np.ndarray
    evidence: list[list[str]] = field(default_factory=list)
    drivers: list[list[str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.evidence:
            self.evidence = [[] for _ in range(len(self.score))]
        if not self.drivers:
            self.drivers = [[] for _ in range(len(self.score))]


#: A feature this many robust sigmas from its key's baseline is a signal (a driver of the score).
DRIVER_Z = 3.0


class StreamingDetector(ABC):
    """Base class of online detectors: ``__init__`` stores parameters only; learned state lives
    in attributes ending in ``_`` (scikit-learn's convention), so ``get_state`` can pickle it."""

    #: Stable name used in the anomaly_scores and alerts tables.
    name: str = "detector"
    #: Bumped when the algorithm changes so old scores stay attributable.
    version: str = "1"
    #: Earlier versions whose saved state this code continues as it is (only defaults changed, the
    #: state layout did not): a stream upgraded under a running checkpoint keeps what its keys
    #: learned instead of starting them afresh. The restored detector keeps its own parameters.
    continues: tuple[str, ...] = ()

    @abstractmethod
    def score_learn(self, frame: pd.DataFrame) -> Scores:
        """Score each row of ``frame`` (one key, event-time order), learning it after scoring it."""

    def get_state(self) -> bytes:
        """Everything learned so far, as bytes (parameters included)."""
        return pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)

    @staticmethod
    def from_state(state: bytes) -> StreamingDetector:
        """Rebuild a detector from :meth:`get_state` output."""
        obj = pickle.loads(state)  # noqa: S301 - our own state store, never user input
        if not isinstance(obj, StreamingDetector):
            raise TypeError("state does not hold a StreamingDetector")
        return obj


#: The score at the default threshold (0.8) means a tail probability of 10**-(0.8 * DECADES) = 1e-4.
DECADES = 5.0
#: The false-alarm budget the default threshold is tested against (tests/unit/test_calibration.py):
#: on a series with no anomaly, at most this share of rows per key scores >= 0.8.
FALSE_ALARM_BUDGET = 1e-3
# |z| quantiles of a standard normal: the prior, and the floor of the tail's steepness
_Q90, _Q99_MINUS_Q90 = 1.645, 0.931


def tail_floor(arr: np.ndarray, stat: float, p: float, q90: float) -> float:
    """The tail probability ``p`` of ``stat`` (already under 1%), raised to what the key's own
    recent statistics ``arr`` say is that common (shared by the per-key and vectorized forms)."""
    n = len(arr)
    # values this extreme recur here (at least 3 times in the window): that often, no rarer
    seen = int(np.count_nonzero(arr >= stat))
    if seen >= 3:
        p = max(p, seen / (n + 1))
    # a power-law tail (Hill estimate on the top 1%) where the key's own tail is heavy:
    # bursts of every size are normal for a zero-inflated key, only a far larger one is news
    k = max(5, n // 100)
    top = np.partition(arr, n - k - 1)[n - k - 1:]
    x_k = float(top.min())
    if x_k > q90:
        hill = float(np.mean(np.log(top / x_k))) * (k + 1) / k
        if hill > 1e-6:
            p = max(p, k / n * (stat / x_k) ** (-1.0 / hill))
    return p


class TailCalibrator:
    """Turns a key's anomaly statistic (a robust |z|) into a calibrated tail probability.

    Why: a fixed squashing of z gives a score whose meaning depends on the series (heavy tails,
    bursts, quantized steps all produce large z routinely). This keeps the key's own recent
    statistics and asks "how often does this key produce a value this extreme?":

    * up to its 90th percentile a value is ordinary (p >= 0.1);
    * beyond it, an exponential tail fitted to the key's own 90th and 99th percentiles (never
      steeper than a Gaussian's, so the estimate errs towards fewer alarms on light tails);
    * never rarer than the share of the key's recent rows at least as extreme (3 or more), nor
      than a power-law tail fitted to its top 1% (Hill) where that tail is heavy: a key whose
      bursts recur is not alarmed on each one; a burst far beyond them still is.

    The score is ``-log10(p) / DECADES`` clipped to [0, 1]: 0.8 (the default threshold) is a
    tail probability of 1e-4, 0.6 of 1e-3; one scale for every detector and key.
    """

    def __init__(self, window: int = 2000, min_rows: int = 100) -> None:
        self.window = window
        self.min_rows = min_rows
        self.buf_: deque[float] = deque(maxlen=window)
        self.q90_ = _Q90
        self.q99_ = _Q90 + _Q99_MINUS_Q90
        self.since_fit_ = 0

    def tail_p(self, stat: float) -> float:
        """Tail probability of ``stat`` (a non-negative statistic) for this key, before learning it."""
        if stat <= self.q90_:
            return 1.0 - 0.9 * stat / self.q90_
        p = 0.1 * 10.0 ** (-(stat - self.q90_) / (self.q99_ - self.q90_))
        if p < 0.01 and len(self.buf_) >= self.min_rows:
            p = tail_floor(np.fromiter(self.buf_, dtype=float, count=len(self.buf_)), stat, p, self.q90_)
        return min(p, 1.0)

    def score(self, stat: float) -> float:
        """Calibrated score in [0, 1] of ``stat`` (see the class docstring)."""
        p = self.tail_p(stat)
        return 0.0 if p >= 1.0 else min(1.0, max(0.0, -math.log10(max(p, 1e-300)) / DECADES))

    def learn(self, stat: float) -> None:
        """Add ``stat`` to the key's history; the tail is refitted every 16 rows."""
        if not math.isfinite(stat):
            return
        self.buf_.append(stat)
        self.since_fit_ += 1
        if self.since_fit_ >= 16 and len(self.buf_) >= self.min_rows:
            self.since_fit_ = 0
            arr = np.fromiter(self.buf_, dtype=float, count=len(self.buf_))
            q90, q99 = np.quantile(arr, [0.9, 0.99])
            self.q90_ = max(_Q90, float(q90))
            self.q99_ = max(self.q90_ + _Q99_MINUS_Q90, float(q99))


#: Rows a key's score must stay below the threshold before :func:`episode_alarms` raises again.
#: 100 rows: about 8 hours of 5-minute metrics, 4 days of hourly cost, longer than a typical
#: disturbance of either, so one incident is one alarm.
REARM_ROWS = 100


def recent_peak(score: np.ndarray, rearm: int = REARM_ROWS) -> np.ndarray:
    """Per row, the highest score among the ``rearm`` rows before it (-inf where there are none).

    NaN scores (rows that were not scored) count as below any threshold."""
    s = np.nan_to_num(np.asarray(score, dtype=float), nan=-np.inf)
    if rearm <= 0 or len(s) == 0:
        return np.full(len(s), -np.inf)
    return pd.Series(s).shift(1).rolling(rearm, min_periods=1).max().fillna(-np.inf).to_numpy()


def episode_alarms(score: np.ndarray, threshold: float, rearm: int = REARM_ROWS) -> np.ndarray:
    """One alarm per excursion: the first row of each run of scores ``>= threshold``.

    Why: an on-call user wants to hear about an incident once, not on every row of it. A row
    alarms when its score reaches ``threshold`` and none of the ``rearm`` rows before it did, so
    the policy re-arms once the score has stayed below the threshold for ``rearm`` rows (a long
    disturbance that dips below the threshold now and then stays one alarm). ``rearm=0``
    alarms on every row at or above the threshold (``is_anomaly``). Written as a comparison
    with :func:`recent_peak` so a benchmark can sweep the threshold over exactly this policy.
    """
    s = np.nan_to_num(np.asarray(score, dtype=float), nan=-np.inf)
    return (s >= threshold) & (recent_peak(s, rearm) < threshold)
