"""Every detector's score means the same thing on every shape of series (issue 12, item 1).

On generated series without anomalies (constant, quantized steps, zeros with rare bursts,
noise-free periodic, heavy-tailed, trend, seasonality) the share of rows scoring at or above
the default threshold stays within the stated false-alarm budget; planted spikes, level shifts
and variance changes are found. All detectors run with their defaults: nothing is tuned per shape.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from health_monitor.detectors.base import FALSE_ALARM_BUDGET, StreamingDetector, TailCalibrator
from health_monitor.detectors.multivariate import MultivariateDetector
from health_monitor.detectors.univariate import UnivariateDetector

N = 2400  # 100 days of hourly rows
WARMUP = 24 * 7  # rows every detector may spend learning before it is held to the budget


def _shape(name: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    i = np.arange(N, dtype=float)
    day = np.sin(2 * np.pi * i / 24)
    if name == "constant":
        return np.full(N, 42.0)
    if name == "quantized_steps":  # CPU % that moves in whole steps around a slow level
        return np.round(50 + 3 * np.sin(2 * np.pi * i / 500) + rng.normal(0, 1.0, N))
    if name == "zeros_rare_bursts":  # disk bytes that sit at zero, now and then a write
        return np.where(rng.random(N) < 0.03, rng.lognormal(10, 1.0, N), 0.0)
    if name == "noise_free_periodic":
        return 100 + 20 * day + 5 * np.sin(2 * np.pi * i / (24 * 7))
    if name == "heavy_tailed":
        return 100 + 3 * rng.standard_t(3, N)
    if name == "trend":
        return 10 + 0.05 * i + rng.normal(0, 1.0, N)
    if name == "seasonality":
        return 200 + 40 * day + 15 * (pd.date_range("2026-01-05", periods=N, freq="h").dayofweek >= 5) \
            + rng.normal(0, 3.0, N)
    raise ValueError(name)


NORMAL_SHAPES = ["constant", "quantized_steps", "zeros_rare_bursts", "noise_free_periodic",
                 "heavy_tailed", "trend", "seasonality"]


def _frame(values: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"timestamp": pd.date_range("2026-01-05", periods=len(values), freq="h"),
                         "value": values})


DETECTORS: dict[str, Callable[[], StreamingDetector]] = {
    "univariate": UnivariateDetector,
    "multivariate": lambda: MultivariateDetector(["value"], directions={"value": 0}),
}


def _scores(det_name: str, values: np.ndarray) -> np.ndarray:
    return DETECTORS[det_name]().score_learn(_frame(values)).score


@pytest.mark.parametrize("det_name", sorted(DETECTORS))
@pytest.mark.parametrize("shape", NORMAL_SHAPES)
def test_no_anomaly_shapes_stay_within_the_false_alarm_budget(det_name: str, shape: str) -> None:
    alarms = 0
    rows = 0
    for seed in (1, 2):
        s = _scores(det_name, _shape(shape, seed))[WARMUP:]
        alarms += int((s >= 0.8).sum())
        rows += len(s)
    assert alarms / rows <= FALSE_ALARM_BUDGET, f"{alarms} alarms in {rows} rows of {shape}"


#: spike size per shape, in the shape's own units: about 10 noise scales; 50 on the t(3) tail
#: (where 20 scales is still a 1-in-3,000 event, below the 1e-4 the threshold stands for) and
#: 20 on the seasonal shape (its residuals have a heavy tail at each weekend edge until the
#: day-of-week x hour profile is learned, and the calibration rightly reflects it)
SPIKES = {"constant": 5.0, "quantized_steps": 10.0, "heavy_tailed": 150.0, "trend": 10.0,
          "seasonality": 60.0, "noise_free_periodic": 5.0}
#: the multivariate detector treats whole-number features as counts (Poisson noise, sd ~ 7 at 50)
SPIKES_COUNTS = {"constant": 70.0, "quantized_steps": 70.0, "heavy_tailed": 150.0}


@pytest.mark.parametrize(("det_name", "shape"),
                         [("univariate", s) for s in SPIKES]
                         # the multivariate detector judges a key's features, not its seasonality
                         + [("multivariate", s) for s in SPIKES_COUNTS])
def test_planted_spikes_are_found(det_name: str, shape: str) -> None:
    found = []
    for seed, at in ((3, 900), (4, 1500), (5, 2100)):  # one spike per series: earlier ones would
        values = _shape(shape, seed)                   # rightly make a later one less surprising
        values[at] += (SPIKES if det_name == "univariate" else SPIKES_COUNTS)[shape]
        found.append(_scores(det_name, values)[at])
    assert min(found) >= 0.8, found


@pytest.mark.parametrize("det_name", sorted(DETECTORS))
def test_level_shift_and_variance_change_are_found(det_name: str) -> None:
    rng = np.random.default_rng(5)
    shift = 100 + rng.normal(0, 2.0, N)
    shift[1500:] += 20
    s = _scores(det_name, shift)
    assert s[1500:1506].max() >= 0.8, "the shift is found"
    assert (s[1600:] >= 0.8).mean() <= 0.01, "and then becomes the new normal"
    var = 100 + rng.normal(0, 1.0, N)
    var[1500:1700] = 100 + rng.normal(0, 8.0, 200)
    s = _scores(det_name, var)
    assert (s[WARMUP:1500] >= 0.8).sum() == 0
    assert (s[1500:1550] >= 0.8).sum() >= 2, "the variance change raises alarms as it starts"


def test_tail_calibrator_meaning() -> None:
    """Gaussian |z| of 4.4 is p ~ 1e-4 (score 0.8); a recurring burst is not news, one a hundred
    times larger is (the five bursts make the key's tail heavy: ten times larger is not enough)."""
    cal = TailCalibrator()
    assert cal.score(1.0) < 0.1 and 0.75 <= cal.score(4.4) <= 0.85
    rng = np.random.default_rng(0)
    for v in np.abs(rng.normal(size=1000)):
        cal.learn(float(v))
    for _ in range(5):
        cal.learn(50.0)
    assert cal.score(50.0) < 0.8 <= cal.score(5000.0)
