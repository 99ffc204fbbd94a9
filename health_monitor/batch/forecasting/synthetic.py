"""Synthetic daily series with known structure, for tests, backtests and the benchmark.

Each generator returns a frame ``ds, y``; the structures are the ones real cost, traffic and
retail series show (trend, weekly and yearly cycles, holidays, level shifts, intermittent
demand, month-end batch bumps, gaps, outliers). They exist to evaluate the engine, never to
train it.
"""

from __future__ import annotations

from collections.abc import Callable

import holidays as holidays_lib
import numpy as np
import pandas as pd

START = pd.Timestamp("2023-01-02")


def _frame(y: np.ndarray, start: pd.Timestamp = START) -> pd.DataFrame:
    return pd.DataFrame({"ds": pd.date_range(start, periods=len(y), freq="D"), "y": np.round(y, 2)})


def _weekly(dates: pd.DatetimeIndex, weekend: float) -> np.ndarray:
    return np.where(dates.dayofweek >= 5, weekend, 1.0)


def retail(seed: int, days: int = 1000) -> pd.DataFrame:
    """Trend x weekly x yearly x US holidays (shop closed at Christmas, Black Friday peak)."""
    rng = np.random.default_rng(seed)
    d = pd.date_range(START, periods=days, freq="D")
    t = np.arange(days)
    doy = d.dayofyear.to_numpy()
    base = 200 * (1 + 0.0004 * t) * (1 + 0.25 * np.sin(2 * np.pi * (doy - 80) / 365.25))
    week = np.array([0.9, 0.85, 0.9, 1.0, 1.2, 1.45, 1.1])[d.dayofweek]
    y = base * week * rng.lognormal(0, 0.08, days)
    us = holidays_lib.country_holidays("US", years=range(d[0].year, d[-1].year + 1))
    for i, day in enumerate(d):
        name = us.get(day.date())
        if name and "Christmas" in name:
            y[i] *= 0.1
        elif name and "Thanksgiving" in name:
            y[i] *= 0.5
            if i + 1 < days:
                y[i + 1] *= 2.2  # Black Friday
        elif name:
            y[i] *= 1.3
    return _frame(y)


def level_shift(seed: int, days: int = 300) -> pd.DataFrame:
    """Cost-like workspace spend whose level jumps up (new workload) then partly down."""
    rng = np.random.default_rng(seed)
    d = pd.date_range(START, periods=days, freq="D")
    level = np.full(days, 500.0)
    up, down = int(days * 0.55), int(days * 0.85)
    level[up:] *= 1.8
    level[down:] *= 0.75
    y = level * _weekly(d, 0.55) * rng.lognormal(0, 0.1, days)
    return _frame(y)


def intermittent(seed: int, days: int = 240) -> pd.DataFrame:
    """Sporadic spend: most days zero, occasional runs of varying size (e.g. a monthly job)."""
    rng = np.random.default_rng(seed)
    active = rng.random(days) < 0.3
    y = np.where(active, rng.gamma(2.0, 40.0, days), 0.0)
    return _frame(y)


def short(seed: int, days: int = 70) -> pd.DataFrame:
    """A new workspace: ten weeks of history with a weekday pattern and noise."""
    rng = np.random.default_rng(seed)
    d = pd.date_range(START, periods=days, freq="D")
    y = 80 * _weekly(d, 0.4) * (1 + 0.004 * np.arange(days)) * rng.lognormal(0, 0.15, days)
    return _frame(y)


def noisy(seed: int, days: int = 400) -> pd.DataFrame:
    """Heavy noise (CV ~ 0.45) around a slow level with a weak weekly cycle."""
    rng = np.random.default_rng(seed)
    d = pd.date_range(START, periods=days, freq="D")
    level = 1000 + 100 * np.sin(2 * np.pi * np.arange(days) / 180)
    y = level * _weekly(d, 0.85) * rng.gamma(5.0, 0.2, days)
    return _frame(y)


def growth(seed: int, days: int = 365) -> pd.DataFrame:
    """Multiplicative growth (~0.3%/day, slowing) with weekly seasonality: a scaling platform."""
    rng = np.random.default_rng(seed)
    d = pd.date_range(START, periods=days, freq="D")
    t = np.arange(days)
    y = 50 * np.exp(0.004 * t - 0.000003 * t ** 2) * _weekly(d, 0.6) * rng.lognormal(0, 0.07, days)
    return _frame(y)


def cost_month_end(seed: int, days: int = 540) -> pd.DataFrame:
    """Databricks-like cost: weekday pattern, month-end batch bump, rare runaway-job spikes."""
    rng = np.random.default_rng(seed)
    d = pd.date_range(START, periods=days, freq="D")
    t = np.arange(days)
    y = 3000 * (1 + 0.0006 * t) * _weekly(d, 0.7) * rng.lognormal(0, 0.06, days)
    last3 = d.days_in_month.to_numpy() - d.day.to_numpy() < 3
    y = np.where(last3, y * 1.6, y)
    spikes = rng.random(days) < 0.01
    y = np.where(spikes, y * rng.uniform(3, 6, days), y)
    return _frame(y)


def traffic(seed: int, days: int = 800) -> pd.DataFrame:
    """Site traffic: weekly + yearly cycles, outages (outliers) and missing days in the export."""
    rng = np.random.default_rng(seed)
    d = pd.date_range(START, periods=days, freq="D")
    doy = d.dayofyear.to_numpy()
    y = 10000 * (1 + 0.3 * np.cos(2 * np.pi * (doy - 15) / 365.25)) * _weekly(d, 0.7) * rng.lognormal(0, 0.05, days)
    outage = rng.random(days) < 0.01
    y = np.where(outage, y * 0.2, y)
    frame = _frame(y)
    gaps = rng.random(days) < 0.03
    gaps[-1] = False
    return frame[~gaps].reset_index(drop=True)


GENERATORS: dict[str, Callable[..., pd.DataFrame]] = {
    "retail": retail,
    "level_shift": level_shift,
    "intermittent": intermittent,
    "short": short,
    "noisy": noisy,
    "growth": growth,
    "cost_month_end": cost_month_end,
    "traffic": traffic,
}


def make_series(kind: str, seed: int = 0, days: int | None = None) -> pd.DataFrame:
    """One synthetic series of ``kind`` (a key of :data:`GENERATORS`)."""
    gen = GENERATORS[kind]
    return gen(seed) if days is None else gen(seed, days)
