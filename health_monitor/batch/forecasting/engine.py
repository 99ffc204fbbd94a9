"""The forecasting engine: inner validation, weighted ensemble, calibrated sample paths.

How one forecast is made (``simulate_paths``):

1. The history is reindexed to whole days (gaps stay NaN), cut to its last four years, and
   a long run of leading zeros (before the thing existed) is dropped; each training slice has
   its isolated outliers cleaned.
2. Every candidate model of :mod:`.models` forecasts from up to four *inner origins* in the
   most recent part of the history (each 7 days apart, each seeing only its past). Candidates
   are scored on daily WAPE plus twice the error of the window total (recent origins weigh more)
   and combined with weights 1/score^2; those scoring worse than 1.5 x the best get none.
3. The ensemble's out-of-sample errors at those origins, normalised by the forecast (or the
   local level), are split into a per-origin *level error* (the mean: what makes a month
   total wrong) and day-to-day *noise* (the rest). Sample paths add a fresh level error
   (normal, or log-normal for multiplicative series) and 7-day blocks of noise (x 1.1, recent
   origins drawn more often) to the ensemble forecast. The level error's spread is the RMS of
   the level errors at the inner origins and at eight older origins 14 days apart (the
   statistical members refitted there: four overlapping windows alone understate it), floored
   by split-conformal calibration (a window total's P10-P90 is at least the conformal 80%
   interval of the inner origins' level errors); it widens with the square root of the lead
   beyond the validated horizon.
   Non-negative histories give non-negative paths; for additive (mostly intermittent) series
   the clipping at zero is scaled so it cannot lift a day's mean above the point forecast.
4. Daily quantiles are quantiles of the paths per day; quantiles of a period total are
   quantiles of the path sums, which keeps their correlation (not a sum of daily quantiles).

Spiky histories (:func:`is_spiky`: event-driven bursts, such as page views) go through the same
steps on log(y + c): a burst moves the level by its log rather than its size, and the paths are
log-normal. Candidates are still scored on the original scale.

Short histories (< 28 days) skip validation: a damped level/drift with a weekly profile when two
weeks exist, and wide bands from in-sample variation; 1-3 points give the mean with wide bands.

Why one module over 400 lines: steps 1-4 are one pipeline sharing the origins' errors; the
candidates live in ``models.py`` and the backtest in ``backtest.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from health_monitor.batch.forecasting import models as M
from health_monitor.errors import HealthMonitorError

#: Enough validation origins to see a few level errors, few enough to keep Prophet cheap.
INNER_ORIGINS = 4
INNER_STEP = 7
MIN_TRAIN = 21
MAX_HISTORY_DAYS = 4 * 365
#: Histories shorter than this use the short-history fallback.
MIN_VALIDATED = MIN_TRAIN + 7
#: Level-error spread inflation. It was 1.25 while only the four overlapping inner origins were
#: seen; with the older calibration origins and the conformal floor it is not needed.
LEVEL_INFLATION = 1.0
NOISE_BLOCK = 7
#: Day-to-day noise inflation: the ensemble was weighted on the same windows its errors come
#: from, so those errors are slightly optimistic.
NOISE_INFLATION = 1.1
#: Candidates scoring within this factor of the best are combined (weights 1/score^2): picking
#: a single winner from four noisy validation windows is less reliable than averaging the good.
COMBINE_WITHIN = 1.5
#: Weight of the window-total error against daily WAPE when scoring candidates (measured on
#: the dev series: 2 lowers the 30-day-total MAPE without hurting daily WAPE).
TOTAL_WEIGHT = 2.0
#: Short histories: level = mean of the last two weeks; the fitted slope is halved.
SHORT_LEVEL_DAYS = 14
SHORT_SLOPE_SHRINK = 0.5
#: Later inner origins count more when scoring candidates (weight RECENCY**k for the k-th most
#: recent): after a level change the newest windows say most about the next one.
RECENCY = 0.7
#: Nominal coverage of the P10-P90 band, and the standard-normal quantile of its upper edge.
BAND = 0.8
Z_BAND = 1.2816
#: Older origins (CAL_STEP days apart, before the inner ones) whose level errors calibrate the band.
CAL_ORIGINS = 8
CAL_STEP = 14
#: A history is modelled on the log scale when its 99th-percentile day is this many times its
#: local level (:func:`is_spiky`).
SPIKE_RATIO = 3.0


@dataclass
class PathForecast:
    """Sample paths for the days after the history (what quantiles are taken from)."""

    dates: pd.DatetimeIndex
    point: np.ndarray
    paths: np.ndarray
    weights: dict[str, float] = field(default_factory=dict)
    method: str = "ensemble"

    def daily_quantiles(self, quantiles: tuple[float, ...]) -> np.ndarray:
        """Array (horizon, len(quantiles)), non-decreasing along the quantile axis."""
        q = np.quantile(self.paths, quantiles, axis=0).T
        return np.maximum.accumulate(q, axis=1)

    def total_quantiles(self, quantiles: tuple[float, ...], first: int = 0, last: int | None = None,
                        mask: np.ndarray | None = None) -> np.ndarray:
        """Quantiles of the sum over days ``first..last`` (inclusive) of the horizon."""
        block = self.paths[:, first:(None if last is None else last + 1)]
        if mask is not None:
            block = block[:, mask]
        q = np.quantile(block.sum(axis=1), quantiles)
        return np.maximum.accumulate(q)


def quantile_names(quantiles: tuple[float, ...]) -> list[str]:
    """Column names for quantiles: 0.1 -> ``p10``, 0.5 -> ``p50``, 0.975 -> ``p97.5``."""
    names = []
    for q in quantiles:
        if not 0 < q < 1:
            raise HealthMonitorError(f"quantile {q} must be strictly between 0 and 1")
        pct = round(q * 100, 6)
        names.append(f"p{int(pct)}" if pct == int(pct) else f"p{pct:g}")
    return names


def check_country(country: str | None) -> str | None:
    """The upper-case holiday country code; an unknown one is a one-line error up front."""
    if country is None:
        return None
    import holidays

    code = str(country).strip().upper()
    if code not in holidays.list_supported_countries():
        raise HealthMonitorError(
            f"unknown holiday country {country!r}: use a code such as US, GB, DE, or none")
    return code


def is_multiplicative(y: np.ndarray) -> bool:
    """Seasonality and errors scale with the level for non-negative, mostly non-zero series."""
    v = y[np.isfinite(y)]
    return bool(v.size and v.min() >= 0 and v.mean() > 0 and np.mean(v == 0) <= 0.3)


def is_spiky(y: np.ndarray) -> bool:
    """Event-driven bursts: at least 1% of days reach SPIKE_RATIO x their local (29-day median) level.

    Attention series (page views, posts per day) jump several-fold for days around an event and
    fall back. On the raw scale those bursts dominate every level and error estimate; on the log
    scale they are ordinary large deviations. Weekly patterns, month-end bumps and plain noise
    stay far below the ratio (the backtest's series reach at most 2.7).
    """
    if not is_multiplicative(y):
        return False
    local = pd.Series(y).rolling(29, center=True, min_periods=7).median().to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(local > 0, y / local, np.nan)
    ratio = ratio[np.isfinite(ratio)]
    return bool(ratio.size >= 60 and np.quantile(ratio, 0.99) >= SPIKE_RATIO)


def simulate_paths(series: pd.Series, horizon: int, holidays_country: str | None = "US", *,
                   use_prophet: bool = True, n_paths: int = 2000, seed: int = 0) -> PathForecast:
    """Sample future paths for a daily series from :func:`prepare_history`.

    Args:
        series: daily float series on a gap-free ``DatetimeIndex`` (NaN = missing day).
        horizon: number of days after the last history day to forecast.
        holidays_country: country code for Prophet's holiday effects, or None.
        use_prophet: include Prophet among the candidates (turn off for speed).
        n_paths: number of sample paths.
        seed: random seed; the same inputs and seed give the same forecast.
    """
    if horizon < 1:
        raise HealthMonitorError(f"horizon must be at least 1 day (got {horizon})")
    holidays_country = check_country(holidays_country)
    series = _relevant_history(series)
    y = series.to_numpy(dtype=float)
    dates = pd.DatetimeIndex(series.index)
    rng = np.random.default_rng(seed)
    nonneg = bool(np.nanmin(y) >= 0)
    if np.isfinite(y).sum() <= 3:
        fc = _tiny(y, dates, horizon, rng, n_paths)
    elif np.nanmax(y) == np.nanmin(y):
        # A flat history (a fixed fee, an idle workspace at zero) has nothing to calibrate on.
        point = np.full(horizon, float(np.nanmax(y)))
        future = pd.date_range(dates[-1] + pd.Timedelta(days=1), periods=horizon, freq="D")
        fc = PathForecast(future, point, np.repeat(point[None, :], n_paths, axis=0), {"constant": 1.0}, "constant")
    elif len(y) < MIN_VALIDATED:
        fc = _short(y, dates, horizon, rng, n_paths)
    elif is_spiky(y):
        fc = _log_ensemble(y, dates, horizon, holidays_country, use_prophet, rng, n_paths)
    else:
        fc = _ensemble(y, dates, horizon, holidays_country, use_prophet, rng, n_paths)
    if nonneg:
        fc.point = np.maximum(fc.point, 0.0)
        # Multiplicative series carry log-normal level errors and rarely reach zero; additive
        # (mostly intermittent) ones need their clipping kept from lifting the totals.
        fc.paths = np.maximum(fc.paths, 0.0) if is_multiplicative(y) else _clip_keeping_mean(fc.paths, fc.point)
    return fc


def _clip_keeping_mean(paths: np.ndarray, point: np.ndarray) -> np.ndarray:
    """Clip paths at zero without letting the clipping raise their mean above the point forecast.

    Noise borrowed from validation windows with a higher forecast can push many days below
    zero; cutting those off alone would lift the mean (and every period total) far above the
    forecast for intermittent series. Each day is scaled back so its mean stays at the point
    forecast (never scaled up).
    """
    clipped = np.maximum(paths, 0.0)
    mean = clipped.mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(mean > point, point / mean, 1.0)
    return clipped * factor[None, :]


def _relevant_history(series: pd.Series) -> pd.Series:
    """Drop what only slows the fit or misleads it.

    Four years hold every signal the candidates use (Prophet reads three, the yearly candidate
    one). A long run of leading zeros followed by steady activity is "did not exist yet" (a
    workspace created later), not intermittent demand, and would otherwise switch the engine
    to additive errors and drag levels down.
    """
    series = series.iloc[-MAX_HISTORY_DAYS:]
    y = series.to_numpy(dtype=float)
    nonzero = np.flatnonzero(np.isfinite(y) & (y != 0))
    if nonzero.size:
        first = int(nonzero[0])
        rest = y[first:][np.isfinite(y[first:])]
        if first >= 14 and rest.size >= 7 and np.mean(rest == 0) < 0.1:
            series = series.iloc[first:]
    return series


# ---------------------------------------------------------------- validated ensemble


def _scale(y: np.ndarray) -> float:
    """Local level used to normalise errors: mean |y| of the last 28 observed days."""
    tail = y[np.isfinite(y)][-28:]
    s = float(np.mean(np.abs(tail))) if tail.size else 0.0
    if s <= 0:
        allv = np.abs(y[np.isfinite(y)])
        s = float(allv.mean()) if allv.size and allv.mean() > 0 else 1.0
    return s


def _denominator(point: np.ndarray, scale: float, mult: bool) -> np.ndarray:
    # Errors of multiplicative series grow with the forecast; the 0.2 x level floor keeps
    # near-zero days (weekends of a business series) from producing huge relative errors.
    return np.maximum(point, 0.2 * scale) if mult else np.full(point.shape, scale)


def _train(y: np.ndarray, dates: pd.DatetimeIndex, end: int, mult: bool, country: str | None) -> M.Train:
    dow = dates[:end].dayofweek.to_numpy()
    holidays = M.holiday_names(dates[:end], country) != "" if country else None
    return M.Train(M.clean_outliers(y[:end], dow, holidays), dates[:end], mult, country)


def _run(name: str, train: M.Train, horizon: int) -> np.ndarray | None:
    out = M.CANDIDATES[name](train, horizon)
    if out is None or len(out) != horizon or not np.all(np.isfinite(out)):
        return None
    return np.asarray(out, dtype=float)


def _log_ensemble(y: np.ndarray, dates: pd.DatetimeIndex, horizon: int, country: str | None,
                  use_prophet: bool, rng: np.random.Generator, n_paths: int) -> PathForecast:
    """The ensemble on log(y + c) (c = a tenth of the median positive day, for zero days).

    A burst in the history moves a log-scale level by its log, not by its size, so recent
    events no longer inflate the level; weekly and holiday effects become factors; sample paths
    are log-normal, so future bursts widen the band upwards. Candidates are still scored on the
    original scale, where budgets and totals are read.
    """
    v = y[np.isfinite(y)]
    c = 0.1 * float(np.median(v[v > 0]))
    z = np.log(y + c)

    def back(x: np.ndarray) -> np.ndarray:
        return np.exp(np.clip(x, -50, 50)) - c

    fc = _ensemble(z, dates, horizon, country, use_prophet, rng, n_paths, mult=False, inverse=back)
    fc.paths = back(fc.paths)
    fc.point = fc.paths.mean(axis=0)  # the mean of the log-normal paths, not exp of the log mean
    fc.method = "log_ensemble"
    return fc


def _ensemble(y: np.ndarray, dates: pd.DatetimeIndex, horizon: int, country: str | None,
              use_prophet: bool, rng: np.random.Generator, n_paths: int, mult: bool | None = None,
              inverse: Callable[[np.ndarray], np.ndarray] | None = None) -> PathForecast:
    """The validated ensemble; ``inverse`` maps a transformed series back for scoring candidates."""
    n = len(y)
    mult = is_multiplicative(y) if mult is None else mult
    inverse = inverse or (lambda x: x)
    hv = int(min(horizon, max(7, (n - MIN_TRAIN) // 2)))
    origins = [n - hv - INNER_STEP * k for k in range(INNER_ORIGINS)]
    origins = [o for o in origins if o >= MIN_TRAIN]
    names = M.candidate_names(n, use_prophet)

    fc: dict[str, list[np.ndarray]] = {m: [] for m in names}
    actuals, scales = [], []
    for o in origins:
        train = _train(y, dates, o, mult, country)
        actuals.append(y[o:o + hv])
        scales.append(_scale(y[:o]))
        for m in list(fc):
            out = _run(m, train, hv)
            if out is None:
                del fc[m]  # a candidate that fails once is not trusted anywhere
            else:
                fc[m].append(out)
    if not fc:
        return _short(y, dates, horizon, rng, n_paths)

    recency = RECENCY ** np.arange(len(origins))
    scores = {m: float(np.average([_score(inverse(a), inverse(f)) for a, f in zip(actuals, fc[m], strict=True)],
                                  weights=recency))
              for m in fc}
    weights = _weights(scores)

    residuals = []
    for k, (a, s) in enumerate(zip(actuals, scales, strict=True)):
        f = sum(w * fc[m][k] for m, w in weights.items())
        residuals.append((a - f) / _denominator(f, s, mult))

    final = _train(y, dates, n, mult, country)
    point = np.zeros(horizon)
    total_w = 0.0
    for m, w in weights.items():
        out = _run(m, final, horizon)
        if out is not None:
            point += w * out
            total_w += w
    if total_w == 0:
        point, total_w = M.seasonal_naive(final, horizon), 1.0
    point /= total_w
    older = _older_level_errors(y, dates, min(origins) if origins else n, hv, weights, mult, country)
    paths = _sample(point, residuals, hv, _scale(y), mult, rng, n_paths, older)
    return PathForecast(final.future_dates(horizon), point, paths, weights)


def _older_level_errors(y: np.ndarray, dates: pd.DatetimeIndex, first: int, hv: int,
                        weights: dict[str, float], mult: bool, country: str | None) -> list[float]:
    """Window-mean errors of the ensemble's statistical members at CAL_ORIGINS older origins.

    The inner origins are a week apart, so their windows overlap and their level errors move
    together: four of them say little about how wrong a month total can be. Older origins,
    CAL_STEP days apart, add level errors from other weeks and seasons to calibrate the band
    on. Prophet is left out here (too slow to refit a dozen times); the other members keep
    their relative weights.
    """
    members = {m: w for m, w in weights.items() if m != "prophet"}
    total = sum(members.values())
    if not members or total <= 0:
        return []
    out = []
    for k in range(1, CAL_ORIGINS + 1):
        o = first - CAL_STEP * k
        if o < MIN_TRAIN:
            break
        train = _train(y, dates, o, mult, country)
        f, used = np.zeros(hv), 0.0
        for m, w in members.items():
            pred = _run(m, train, hv)
            if pred is not None:
                f, used = f + w * pred, used + w
        a = y[o:o + hv]
        if used <= 0 or not np.isfinite(a).any():
            continue
        r = (a - f / used) / _denominator(f / used, _scale(y[:o]), mult)
        r = r[np.isfinite(r)]
        if r.size:
            out.append(float(r.mean()))
    return out


def _score(actual: np.ndarray, forecast: np.ndarray) -> float:
    """Daily WAPE plus TOTAL_WEIGHT x the relative error of the window total.

    Budgets are read as period totals, and a total error (a level or trend mistake) does not
    average out over a month while daily noise does, so the total counts double.
    """
    ok = np.isfinite(actual)
    if not ok.any():
        return 0.0
    a, f = actual[ok], forecast[ok]
    denom = max(np.sum(np.abs(a)), 1e-9 * max(1.0, np.sum(np.abs(f))))
    return float(np.sum(np.abs(a - f)) / denom + TOTAL_WEIGHT * abs(np.sum(a - f)) / denom)


def _weights(scores: dict[str, float]) -> dict[str, float]:
    best = min(scores.values())
    if best <= 1e-12:
        return {min(scores, key=scores.get): 1.0}
    keep = {m: 1.0 / s ** 2 for m, s in scores.items() if s <= COMBINE_WITHIN * best}
    total = sum(keep.values())
    return {m: w / total for m, w in sorted(keep.items(), key=lambda kv: -kv[1])}


def _sample(point: np.ndarray, residuals: list[np.ndarray], hv: int, scale: float, mult: bool,
            rng: np.random.Generator, n_paths: int, older: list[float] | None = None) -> np.ndarray:
    """Paths = point + (level error x sqrt-lead growth + block-bootstrapped noise) x denominator.

    ``older``: window-mean errors at older origins (:func:`_older_level_errors`), calibrating
    the level spread together with the inner origins' own.
    """
    horizon = len(point)
    means, noise = [], []
    for r in residuals:
        r = r[np.isfinite(r)]
        if r.size:
            means.append(float(r.mean()))
            noise.append(r - r.mean())
    if not means:
        return np.repeat(point[None, :], n_paths, axis=0)
    pooled = np.concatenate(noise)
    sd_noise = float(pooled.std()) if pooled.size > 1 else 0.0
    # RMS of per-origin mean errors (bias included), floored so that a few lucky origins
    # cannot promise a near-exact month total.
    levels = np.array(means + list(older or []))
    sd_level = float(np.sqrt(np.mean(np.square(levels))))
    sd_level = max(sd_level, sd_noise / np.sqrt(hv) + 0.01) * LEVEL_INFLATION
    # Split-conformal floor: the P10-P90 band of a window total is at least as wide as the
    # conformal 80% interval of the inner origins' level errors (the ceil(0.8 (k+1))-th smallest
    # |error| of k origins: the largest of four), so one bad recent origin is not averaged away.
    # The older origins only enter the RMS: they come from other regimes and seasons.
    k = len(means)
    rank = min(k, int(np.ceil(BAND * (k + 1))))
    sd_level = max(sd_level, float(np.sort(np.abs(means))[rank - 1]) / Z_BAND)
    lead = np.arange(1, horizon + 1)
    growth = np.sqrt(np.maximum(1.0, lead / hv))
    level = rng.normal(0.0, sd_level, size=(n_paths, 1)) * growth[None, :]
    if mult:
        # Level errors of multiplicative series are ratios: log-normal, so a large spread (say
        # after a level change) widens the band upwards instead of pushing paths below zero.
        level = np.expm1(level)
    eps = _block_bootstrap(noise, horizon, rng, n_paths) * NOISE_INFLATION
    den = _denominator(point, scale, mult)
    return point[None, :] + (level + eps) * den[None, :]


def _block_bootstrap(noise: list[np.ndarray], horizon: int, rng: np.random.Generator,
                     n_paths: int) -> np.ndarray:
    """Concatenate random 7-day blocks of validation noise (keeps short autocorrelation).

    ``noise`` lists each inner origin's sequence, most recent origin first.
    """
    seqs = [s for s in noise if s.size]
    # Recent windows are drawn more often, as in candidate scoring: after a level change the
    # older windows mix two regimes and would overstate (and skew) the day-to-day noise.
    prob = RECENCY ** np.arange(len(seqs))
    prob /= prob.sum()
    out = np.empty((n_paths, horizon))
    block = min(NOISE_BLOCK, min(s.size for s in seqs))
    for start in range(0, horizon, block):
        width = min(block, horizon - start)
        which = rng.choice(len(seqs), size=n_paths, p=prob)
        for i, s in enumerate(seqs):
            rows = np.flatnonzero(which == i)
            if rows.size == 0:
                continue
            offs = rng.integers(0, s.size, size=rows.size)
            idx = (offs[:, None] + np.arange(width)[None, :]) % s.size
            out[rows, start:start + width] = s[idx]
    return out


# ---------------------------------------------------------------- short histories


def _tiny(y: np.ndarray, dates: pd.DatetimeIndex, horizon: int, rng: np.random.Generator,
          n_paths: int) -> PathForecast:
    """1-3 observations: their mean, with bands of at least +-30% of it (or their spread)."""
    v = y[np.isfinite(y)]
    level = float(v.mean())
    sd = max(float(v.std()), 0.3 * abs(level))
    point = np.full(horizon, level)
    shared = rng.normal(0, sd, size=(n_paths, 1))
    paths = point[None, :] + shared + rng.normal(0, sd, size=(n_paths, horizon))
    future = pd.date_range(dates[-1] + pd.Timedelta(days=1), periods=horizon, freq="D")
    return PathForecast(future, point, paths, {"mean": 1.0}, "mean")


def _short(y: np.ndarray, dates: pd.DatetimeIndex, horizon: int, rng: np.random.Generator,
           n_paths: int) -> PathForecast:
    """Under four weeks: damped level/drift x weekly profile (from two full weeks), wide bands.

    The level is the mean of the last two weeks (one week's mean is as noisy as seasonal naive)
    moved to the last day along half the fitted slope: a slope from a few noisy weeks is
    mostly noise, so it is shrunk and its drift damped (it saturates at 4 days' worth).
    """
    mult = is_multiplicative(y)
    train = M.Train(y, dates, mult)
    if len(y) < 14:
        train.profile = np.ones(7) if mult else np.zeros(7)  # one week cannot tell a pattern from noise
    d = train.deseasonalized
    ok = np.isfinite(d)
    t = np.flatnonzero(ok)
    slope = SHORT_SLOPE_SHRINK * float(np.polyfit(t, d[ok], 1)[0]) if ok.sum() >= 4 else 0.0
    recent = t[t >= len(d) - SHORT_LEVEL_DAYS]
    level = M.recent_level(d, SHORT_LEVEL_DAYS) + slope * (len(d) - 1 - recent.mean() if recent.size else 0.0)
    if mult:
        level = max(level, 0.0)
    lead = np.arange(1, horizon + 1)
    drift = slope * np.cumsum(0.8 ** lead)  # saturates at 4 days of slope
    if mult:
        drift = np.clip(drift, -0.5 * abs(level), 0.5 * abs(level))
    point = train.reseasonalize(level + drift, horizon)
    # In-sample one-step errors against the mean of the previous three days: they overstate the
    # error of a two-week mean, hence the factors below 1 (measured on short windows of the
    # synthetic series: without them 90% of days and 97% of totals fell inside P10-P90).
    prev = pd.Series(d).shift(1).rolling(3, min_periods=1).mean().to_numpy()
    err = (d - prev)[np.isfinite(d - prev)]
    sd = float(err.std()) if err.size > 1 else 0.3 * abs(level)
    sd = max(sd, 0.1 * abs(level))
    s = train.profile[train.future_dow(horizon)] if mult else np.ones(horizon)
    level_err = rng.normal(0, 0.8 * sd, size=(n_paths, 1)) * np.sqrt(1.0 + lead / 14.0)[None, :]
    noise = rng.normal(0, 0.85 * sd, size=(n_paths, horizon))
    paths = point[None, :] + (level_err + noise) * s[None, :]
    return PathForecast(train.future_dates(horizon), point, paths, {"damped_level_drift": 1.0}, "short")
