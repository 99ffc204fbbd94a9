"""Candidate point forecasters for one clean daily series.

Each candidate is a plain function ``(train, horizon) -> np.ndarray`` of point forecasts (means,
not medians), or None when it does not apply. The engine scores every candidate on the most
recent part of the history and weights them, so a candidate only has to be good on *some* kind
of series: the weekly-profile models win on stable or noisy series, the damped trend (linear or
log) and Theta models on trending ones, the yearly model on long retail/traffic series, Prophet
where changepoints, yearly seasonality and holidays matter. The statistical candidates share one
calendar (:class:`Train`): weekly profile x month-start/-end effect x holiday effect, estimated
robustly from the history.

Why one module over 400 lines: about twenty small candidate functions and their shared calendar;
one file keeps the list of candidates readable at a glance.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

#: Spans (days) that switch features on. Yearly seasonality needs ~1.5 years to be identified.
MIN_DAYS_YEARLY = 548
MIN_DAYS_PROPHET = 90
PROPHET_MAX_DAYS = 2 * 365


@dataclass
class Train:
    """The history a candidate may use: values up to the forecast origin, NaN for gaps."""

    y: np.ndarray
    dates: pd.DatetimeIndex
    multiplicative: bool
    holidays_country: str | None = None

    @cached_property
    def dow(self) -> np.ndarray:
        return self.dates.dayofweek.to_numpy()

    def future_dates(self, horizon: int) -> pd.DatetimeIndex:
        return pd.date_range(self.dates[-1] + pd.Timedelta(days=1), periods=horizon, freq="D")

    def future_dow(self, horizon: int) -> np.ndarray:
        return (self.dow[-1] + 1 + np.arange(horizon)) % 7

    @cached_property
    def profile(self) -> np.ndarray:
        return weekly_profile(self.y, self.dow, self.multiplicative)

    @cached_property
    def month_effect(self) -> np.ndarray:
        """Factors (or offsets) per month-position bucket; neutral where not significant."""
        return month_position_effect(self.y, self.dates, self.profile, self.multiplicative)

    @cached_property
    def holiday_effect(self) -> dict[str, float]:
        """Factors (or offsets) per holiday name seen in the history; only the significant ones."""
        if not self.holidays_country:
            return {}
        return holiday_effects(self.y, self.dates, self.profile, self.month_effect,
                               holiday_names(self.dates, self.holidays_country), self.multiplicative)

    def _calendar(self, dates: pd.DatetimeIndex, dow: np.ndarray) -> np.ndarray:
        s = self.profile[dow]
        m = self.month_effect[month_position(dates)]
        neutral = 1.0 if self.multiplicative else 0.0
        h = np.full(len(dates), neutral)
        if self.holiday_effect:
            names = holiday_names(dates, self.holidays_country)
            h = np.array([self.holiday_effect.get(name, neutral) for name in names])
        return s * m * h if self.multiplicative else s + m + h

    @cached_property
    def deseasonalized(self) -> np.ndarray:
        c = self._calendar(self.dates, self.dow)
        if not self.multiplicative:
            return self.y - c
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(c > 1e-6, self.y / c, np.nan)

    def reseasonalize(self, level: np.ndarray, horizon: int) -> np.ndarray:
        c = self._calendar(self.future_dates(horizon), self.future_dow(horizon))
        return level * c if self.multiplicative else level + c


# ---------------------------------------------------------------- shared pieces


def weekly_profile(y: np.ndarray, dow: np.ndarray, multiplicative: bool, window: int = 84) -> np.ndarray:
    """Day-of-week factors (multiplicative, mean 1) or offsets (additive, mean 0).

    Estimated on the last ``window`` days, each weekday's effect shrunk towards "no effect" by
    how much its noise could explain it (James-Stein style), so one odd week cannot invent a
    pattern while a strong pattern is kept at full size. Weekdays never observed (a business
    series without weekend rows) stay neutral and are left out of the normalisation.
    """
    neutral = np.ones(7) if multiplicative else np.zeros(7)
    yw, dw = y[-window:], dow[-window:]
    ok = np.isfinite(yw)
    counts = np.array([np.sum(ok & (dw == d)) for d in range(7)])
    present = counts > 0
    if present.sum() < 2:
        return neutral
    means = np.array([np.mean(yw[ok & (dw == d)]) if counts[d] else np.nan for d in range(7)])
    sds = np.array([np.std(yw[ok & (dw == d)]) if counts[d] > 1 else np.nan for d in range(7)])
    overall = np.nanmean(means)
    noise = np.nanmean(sds) if np.isfinite(sds).any() else np.nan
    if multiplicative and overall <= 0:
        return neutral
    effect = means / overall - 1.0 if multiplicative else means - overall
    noise = noise / overall if multiplicative else noise
    out = neutral.copy()
    for d in np.flatnonzero(present):
        if not np.isfinite(noise) or counts[d] < 2:
            k = counts[d] / (counts[d] + 1.0)  # nothing to judge the noise by: plain shrinkage
        else:
            k = _shrink(effect[d], noise, int(counts[d]))
        out[d] = (1.0 if multiplicative else 0.0) + effect[d] * k
    return out


def month_position(dates: pd.DatetimeIndex) -> np.ndarray:
    """Bucket per day: 1-3 = first three days of the month, 4-6 = last three, 0 = the rest.

    Cost series often have month-start or month-end batch work (billing runs, reports).
    """
    day = dates.day.to_numpy()
    to_end = dates.days_in_month.to_numpy() - day
    out = np.zeros(len(dates), dtype=int)
    out[day <= 3] = day[day <= 3]
    out[to_end <= 2] = 4 + to_end[to_end <= 2]
    return out


def _weekly_adjusted_deviation(y: np.ndarray, dates: pd.DatetimeIndex, profile: np.ndarray,
                               multiplicative: bool) -> np.ndarray:
    """Each day relative to (or minus) the weekly-adjusted median level of the 15 days around it."""
    s = profile[dates.dayofweek.to_numpy()]
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.where(s > 1e-6, y / s, np.nan) if multiplicative else y - s
    local = pd.Series(d).rolling(15, center=True, min_periods=7).median().to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(local > 0, d / local, np.nan) if multiplicative else d - local


def holiday_names(dates: pd.DatetimeIndex, country: str | None) -> np.ndarray:
    """Holiday name per day ('' on ordinary days); "(observed)" days count as the holiday."""
    out = np.full(len(dates), "", dtype=object)
    if not country or len(dates) == 0:
        return out
    import holidays as holidays_lib

    cal = holidays_lib.country_holidays(country, years=range(dates[0].year, dates[-1].year + 1))
    for i, day in enumerate(dates.date):
        name = cal.get(day)
        if name:
            out[i] = name.split(";")[0].replace(" (observed)", "").strip()
    return out


def holiday_effects(y: np.ndarray, dates: pd.DatetimeIndex, profile: np.ndarray, month_effect: np.ndarray,
                    names: np.ndarray, multiplicative: bool) -> dict[str, float]:
    """Effect per holiday name, kept when it stands out from ordinary day-to-day noise.

    A holiday occurs once a year, so its effect is judged against the spread of all days
    (|effect| > 2.5 sd / sqrt(occurrences)) and shrunk the more, the closer it is to that noise.
    """
    if len(y) < 60 or not any(names):
        return {}
    dev = _weekly_adjusted_deviation(y, dates, profile, multiplicative)
    m = month_effect[month_position(dates)]
    with np.errstate(divide="ignore", invalid="ignore"):
        dev = dev / m if multiplicative else dev - m
    base = 1.0 if multiplicative else 0.0
    ordinary = dev[np.isfinite(dev) & (names == "")]
    if ordinary.size < 30:
        return {}
    sd = 1.4826 * float(np.median(np.abs(ordinary - np.median(ordinary))))
    effects = {}
    for name in set(names) - {""}:
        v = dev[(names == name) & np.isfinite(dev)]
        if v.size == 0:
            continue
        center = float(np.median(v))
        if abs(center - base) > 2.5 * sd / np.sqrt(v.size):
            effects[name] = base + (center - base) * _shrink(center - base, sd, v.size)
    return effects


def _shrink(effect: float, sd: float, n: int) -> float:
    """James-Stein-style factor: a marginal effect is shrunk, a glaring one kept (Christmas at -90%)."""
    if effect == 0:
        return 0.0
    return float(max(0.0, 1.0 - sd * sd / (n * effect * effect)))


def month_position_effect(y: np.ndarray, dates: pd.DatetimeIndex, profile: np.ndarray,
                          multiplicative: bool, min_months: int = 3) -> np.ndarray:
    """Month-start/-end factors (multiplicative) or offsets (additive), 7 buckets, bucket 0 neutral.

    Each bucket compares its days with the weekly-adjusted local median level around them; a
    bucket keeps its effect only when at least ``min_months`` months agree on it (robust median,
    shrunk towards none as its standard error grows, and larger than twice that error).
    """
    neutral = np.ones(7) if multiplicative else np.zeros(7)
    if len(y) < 28 * min_months:
        return neutral
    dev = _weekly_adjusted_deviation(y, dates, profile, multiplicative)
    bucket = month_position(dates)
    effect = neutral.copy()
    for b in range(1, 7):
        v = dev[(bucket == b) & np.isfinite(dev)]
        if v.size < min_months:
            continue
        center = float(np.median(v))
        spread = 1.4826 * float(np.median(np.abs(v - center)))
        base = 1.0 if multiplicative else 0.0
        se = 1.25 * spread / np.sqrt(v.size)
        if abs(center - base) > 2 * se and abs(center - base) > (0.03 if multiplicative else 0.0):
            effect[b] = base + (center - base) * _shrink(center - base, spread, v.size)
    return effect


def recent_level(d: np.ndarray, window: int) -> float:
    """Mean of the last ``window`` finite deseasonalized values (falls back to all of them)."""
    tail = d[-window:]
    tail = tail[np.isfinite(tail)]
    if tail.size == 0:
        tail = d[np.isfinite(d)]
    return float(tail.mean()) if tail.size else 0.0


def clean_outliers(y: np.ndarray, dow: np.ndarray, keep: np.ndarray | None = None) -> np.ndarray:
    """Replace isolated spikes/dips (1-2 day runs) by the same-weekday local median.

    Longer runs are kept: three or more unusual days in a row are a level change, which the
    models must follow rather than smooth away. Intermittent series are left alone (their
    spikes *are* the signal). Days flagged in ``keep`` (public holidays) are never cleaned:
    a holiday dip is an isolated outlier by this test, and erasing it would leave the holiday
    effects (and Prophet's holiday terms) nothing to learn from.
    """
    finite = np.isfinite(y)
    if finite.sum() < 21 or np.mean(y[finite] == 0) > 0.3:
        return y
    ref = pd.Series(y).groupby(dow).transform(
        lambda s: s.rolling(7, center=True, min_periods=3).median()).to_numpy()
    res = y - ref
    scale = 1.4826 * np.nanmedian(np.abs(res - np.nanmedian(res)))
    if not np.isfinite(scale) or scale <= 0:
        return y
    bad = np.isfinite(res) & (np.abs(res) > 5 * scale) & (np.abs(res) > 0.1 * np.abs(ref))
    if keep is not None:
        bad &= ~keep
    sign = np.sign(res)
    out = y.copy()
    i, n = 0, len(y)
    while i < n:
        if not bad[i]:
            i += 1
            continue
        j = i
        while j + 1 < n and bad[j + 1] and sign[j + 1] == sign[i]:
            j += 1
        if j - i + 1 <= 2:
            out[i:j + 1] = ref[i:j + 1]
        i = j + 1
    return out


# ---------------------------------------------------------------- candidates


def seasonal_naive(train: Train, horizon: int) -> np.ndarray:
    """Same weekday last week (the latest observed one when last week has a gap)."""
    y, dow = train.y, train.dow
    last = np.full(7, np.nan)
    for d in range(7):
        idx = np.flatnonzero(np.isfinite(y) & (dow == d))
        if idx.size:
            last[d] = y[idx[-1]]
    fallback = np.nanmean(y[np.isfinite(y)][-7:])
    last = np.where(np.isfinite(last), last, fallback)
    return last[train.future_dow(horizon)]


def _profile_level(window: int) -> Callable[[Train, int], np.ndarray]:
    def model(train: Train, horizon: int) -> np.ndarray:
        level = recent_level(train.deseasonalized, window)
        return train.reseasonalize(np.full(horizon, level), horizon)

    model.__name__ = f"profile{window}"
    model.__doc__ = f"Mean of the last {window} deseasonalized days x weekly profile."
    return model


def _ses_states(d: np.ndarray, alphas: np.ndarray, betas: np.ndarray, phis: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run damped-trend exponential smoothing for many parameter sets at once.

    Returns final levels, trends and one-step squared-error sums; NaN days just advance the
    state (no update), so gaps are not mistaken for zeros.
    """
    x = d[np.isfinite(d)]
    level = np.full(alphas.shape, x[0])
    trend = np.zeros(alphas.shape)
    sse = np.zeros(alphas.shape)
    warm = min(7, len(d) // 4)
    for t, v in enumerate(d[1:], start=1):
        pred = level + phis * trend
        if not np.isfinite(v):
            level, trend = pred, phis * trend
            continue
        err = v - pred
        if t >= warm:
            sse += err * err
        new_level = pred + alphas * err
        trend = betas * (new_level - level) + (1 - betas) * phis * trend
        level = new_level
    return level, trend, sse


_ALPHAS = np.array([0.05, 0.15, 0.3, 0.5, 0.8])
#: (alpha, beta, phi) grid: simple smoothing (beta 0) plus damped trends.
_GRID = tuple(np.array(v) for v in zip(
    *([(a, 0.0, 1.0) for a in _ALPHAS] + [(a, b, p) for a in _ALPHAS for b in (0.05, 0.2) for p in (0.9, 0.98)]),
    strict=True))


def damped_trend(train: Train, horizon: int) -> np.ndarray:
    """Damped additive-trend exponential smoothing on the deseasonalized series (grid-fitted)."""
    d = train.deseasonalized[-365:]
    if np.isfinite(d).sum() < 7:
        return _profile_level(7)(train, horizon)
    alphas, betas, phis = _GRID
    level, trend, sse = _ses_states(d, alphas, betas, phis)
    k = int(np.argmin(sse))
    steps = np.arange(1, horizon + 1)
    damp = np.cumsum(phis[k] ** steps) if betas[k] > 0 else np.zeros(horizon)
    path = level[k] + damp * trend[k]
    return train.reseasonalize(path, horizon)


def damped_trend_log(train: Train, horizon: int) -> np.ndarray | None:
    """Damped trend on the log of the deseasonalized series: compounding growth (cloud spend, users)."""
    d = train.deseasonalized[-365:]
    ok = np.isfinite(d)
    if not train.multiplicative or ok.sum() < 14 or d[ok].min() <= 0:
        return None
    logd = np.where(ok, np.log(np.where(ok, d, 1.0)), np.nan)
    alphas, betas, phis = _GRID
    level, trend, sse = _ses_states(logd, alphas, betas, phis)
    k = int(np.argmin(sse))
    steps = np.arange(1, horizon + 1)
    damp = np.cumsum(phis[k] ** steps) if betas[k] > 0 else np.zeros(horizon)
    return train.reseasonalize(np.exp(np.clip(level[k] + damp * trend[k], -50, 50)), horizon)


def theta(train: Train, horizon: int) -> np.ndarray:
    """Theta method: exponential smoothing plus half the long-run linear slope."""
    d = train.deseasonalized[-365:]
    ok = np.isfinite(d)
    if ok.sum() < 7:
        return _profile_level(7)(train, horizon)
    zeros = np.zeros(_ALPHAS.shape)
    level, _, sse = _ses_states(d, _ALPHAS, zeros, np.ones(_ALPHAS.shape))
    k = int(np.argmin(sse))
    t = np.flatnonzero(ok)
    slope = np.polyfit(t, d[ok], 1)[0]
    steps = np.arange(1, horizon + 1)
    path = level[k] + 0.5 * slope * (steps - 1 + 1 / _ALPHAS[k])
    if train.multiplicative:
        path = np.maximum(path, 0.0)
    return train.reseasonalize(path, horizon)


def yearly_profile(train: Train, horizon: int) -> np.ndarray:
    """Recent level x weekly profile x last year's seasonal movement (364 days back keeps weekdays)."""
    d = train.deseasonalized
    n = len(d)
    level = recent_level(d, 28)
    flat = train.reseasonalize(np.full(horizon, level), horizon)
    base_window = d[max(n - 364 - 28, 0):max(n - 364, 0)]
    if n < 364 + 28 or not np.isfinite(base_window).any():
        return flat
    base = float(np.nanmean(base_window))
    past = np.full(horizon, np.nan)
    for j in range(horizon):
        c = n - 364 + j
        window = d[max(c - 3, 0):min(c + 4, n)]
        if window.size and np.isfinite(window).any():
            past[j] = np.nanmean(window)
    if train.multiplicative:
        if base <= 0:
            return flat
        ratio = np.clip(np.where(np.isfinite(past), past / base, 1.0), 0.2, 5.0)
        return train.reseasonalize(level * ratio, horizon)
    return train.reseasonalize(level + np.where(np.isfinite(past), past - base, 0.0), horizon)


def prophet(train: Train, horizon: int) -> np.ndarray | None:
    """Prophet (the spec's algorithm): trend changepoints, weekly/yearly seasonality, holidays.

    Fitted in log space for positive multiplicative series (growth and seasonality scale with
    the level); only its point forecast is used, intervals come from the engine's calibration.
    """
    from prophet import Prophet  # heavy import: only when used

    _quiet_stan()
    # Two years identify yearly seasonality; older data mostly slows the fit (JSON + Stan time).
    y_all, dates = train.y[-PROPHET_MAX_DAYS:], train.dates[-PROPHET_MAX_DAYS:]
    ok = np.isfinite(y_all)
    y = y_all[ok]
    log_space = train.multiplicative and y.min() > 0
    df = pd.DataFrame({"ds": dates[ok], "y": np.log(y) if log_space else y})
    span = len(y_all)
    model = Prophet(
        growth="linear",
        yearly_seasonality=6 if span >= MIN_DAYS_YEARLY else False,
        weekly_seasonality=3 if span >= 14 else False,
        daily_seasonality=False,
        changepoint_range=0.9,
        uncertainty_samples=0,
    )
    if train.holidays_country:
        model.add_country_holidays(country_name=train.holidays_country)
    future = pd.DataFrame({"ds": train.future_dates(horizon)})
    # Month-start/-end buckets that the robust estimate found real become regressors.
    neutral = 1.0 if train.multiplicative else 0.0
    for b in np.flatnonzero(train.month_effect != neutral):
        name = f"month_position_{b}"
        model.add_regressor(name)
        df[name] = (month_position(pd.DatetimeIndex(df.ds)) == b).astype(float)
        future[name] = (month_position(pd.DatetimeIndex(future.ds)) == b).astype(float)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(df)
            out = model.predict(future)["yhat"].to_numpy()
    except Exception as exc:  # noqa: BLE001 - a failed fit just drops this candidate
        log.info("prophet fit failed: %s", exc)
        return None
    if log_space:
        out = np.exp(np.clip(out, -50, 50))
    return out


def _quiet_stan() -> None:
    # cmdstanpy installs its own INFO handler the first time it logs; create it now, then mute.
    from cmdstanpy.utils import get_logger

    get_logger().setLevel(logging.ERROR)
    for name in ("prophet", "prophet.plot"):
        logging.getLogger(name).setLevel(logging.ERROR)


CANDIDATES: dict[str, Callable[[Train, int], np.ndarray | None]] = {
    "seasonal_naive": seasonal_naive,
    "profile7": _profile_level(7),
    "profile28": _profile_level(28),
    "damped_trend": damped_trend,
    "damped_trend_log": damped_trend_log,
    "theta": theta,
    "yearly": yearly_profile,
    "prophet": prophet,
}


def candidate_names(span: int, use_prophet: bool = True) -> list[str]:
    """The candidates worth trying for a history of ``span`` days."""
    names = ["seasonal_naive", "profile7", "profile28", "damped_trend", "damped_trend_log", "theta"]
    if span >= 400:
        names.append("yearly")
    if use_prophet and span >= MIN_DAYS_PROPHET:
        names.append("prophet")
    return names
