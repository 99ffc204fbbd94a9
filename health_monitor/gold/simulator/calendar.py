"""Time grid and the demand curves every generator shares.

Demand is a product of effects a real estate shows: growth, weekly rhythm (quiet weekends),
office hours in each workspace's home timezone, month-end peaks (finance closes, reporting),
public holidays (the ``holidays`` package) and day-to-day noise. Generators multiply their base
rates by these curves, so every fact table carries the same seasonality.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import holidays
import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Window:
    """Half-open hour window [start, end) in UTC, naive timestamps."""

    start: pd.Timestamp
    end: pd.Timestamp

    @property
    def hours(self) -> pd.DatetimeIndex:
        """Start of every hour in the window."""
        return pd.date_range(self.start, self.end, freq="h", inclusive="left")

    @property
    def days(self) -> pd.DatetimeIndex:
        """Midnight of every day the window touches."""
        return pd.date_range(self.start.floor("D"), self.end - pd.Timedelta(seconds=1), freq="D")

    @classmethod
    def for_days(cls, end_date: date, days: int) -> Window:
        """The ``days`` whole days ending with ``end_date``."""
        end = pd.Timestamp(datetime(end_date.year, end_date.month, end_date.day)) + pd.Timedelta(days=1)
        return cls(end - pd.Timedelta(days=days), end)


class Calendar:
    """Holiday and month-end lookups for a set of years (US and UK public holidays)."""

    def __init__(self, years: range) -> None:
        self._hol = {**holidays.US(years=list(years)), **holidays.UK(years=list(years))}
        self._hol_days = np.array(sorted(self._hol), dtype="datetime64[D]")

    def day_factors(self, days: pd.DatetimeIndex, weekend: float, holiday: float,
                    month_end: float) -> np.ndarray:
        """Multiplier per day: weekend, holiday and month-end (last 3 days) effects."""
        dow = days.dayofweek.to_numpy()
        f = np.where(dow >= 5, weekend, 1.0)
        hol = np.isin(days.to_numpy().astype("datetime64[D]"), self._hol_days)
        f = np.where(hol, f * holiday, f)
        last3 = (days + pd.Timedelta(days=3)).month != days.month
        return np.where(last3, f * month_end, f)


def office_curve(hours_local: np.ndarray) -> np.ndarray:
    """Relative activity by local hour of day: low at night, peaks late morning and afternoon."""
    h = hours_local % 24
    curve = np.exp(-0.5 * ((h - 11.0) / 2.2) ** 2) + 0.8 * np.exp(-0.5 * ((h - 15.5) / 2.0) ** 2)
    return 0.04 + curve


def split_intervals(start: np.ndarray, end: np.ndarray, freq: str = "1h") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut intervals at clock boundaries of ``freq``: (row index, piece start, piece end) arrays."""
    step = pd.Timedelta(freq).to_timedelta64()
    s = pd.DatetimeIndex(start)
    e = pd.DatetimeIndex(end)
    first = s.floor(freq)
    n = np.maximum(1, np.ceil(np.asarray((e - first) / pd.Timedelta(freq), dtype=float)).astype(int))
    idx = np.repeat(np.arange(len(s)), n)
    k = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
    slot = first.to_numpy()[idx] + k * step
    return idx, np.maximum(s.to_numpy()[idx], slot), np.minimum(e.to_numpy()[idx], slot + step)
