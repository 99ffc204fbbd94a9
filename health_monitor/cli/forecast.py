"""``health-monitor forecast``: forecast any daily series from a CSV, or backtest the engine on it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from health_monitor import progress
from health_monitor.errors import HealthMonitorError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "forecast", help="forecast a daily series from a CSV with P10/P50/P90 bands (no Spark needed)",
        description="Forecast each day after the history with the budget forecaster's engine (a "
        "validated ensemble of Prophet and robust statistical models with calibrated P10-P90 bands), "
        "or with --backtest compare it with a weekly seasonal-naive forecast on rolling origins. "
        "Sub-daily timestamps are summed per day; missing days are gaps, not zeros.")
    p.add_argument("input", metavar="INPUT.csv", help="CSV with a date/time column and a numeric column")
    p.add_argument("--timestamp-col", help="date column (default: 'ds' or the first column of dates)")
    p.add_argument("--value-col", help="value column (default: 'y' or the first numeric column)")
    p.add_argument("--horizon", type=_positive, default=30, help="days to forecast (default 30)")
    p.add_argument("--encoding", help="text encoding of the CSV (default: UTF-8, else Windows-1252 with a note)")
    p.add_argument("--output", "-o", metavar="FORECAST.csv",
                   help="where to write ds,p10,p50,p90 (default: print to stdout)")
    p.add_argument("--backtest", action="store_true",
                   help="run rolling-origin backtests instead and print MAPE and P10-P90 coverage")
    p.add_argument("--origins", type=_positive, default=6, help="backtest origins (default 6)")
    p.add_argument("--step", type=_positive, default=14, help="days between backtest origins (default 14)")
    p.add_argument("--holidays", default="US", metavar="COUNTRY",
                   help="country code for holiday effects, or 'none' (default US)")
    p.add_argument("--no-prophet", action="store_true", help="statistical models only (faster)")
    p.set_defaults(func=run)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def read_daily_csv(path: str | Path, timestamp_col: str | None = None,
                   value_col: str | None = None, encoding: str | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Read a CSV into a ``ds, y`` frame for the engine, with notes for the user.

    Column detection and parsing are shared with ``health-monitor detect``; unlike detection,
    forecasting refuses non-numeric values instead of skipping them, because a silently dropped
    day would bias every total.
    """
    from health_monitor.detectors.series_io import MAX_MODELLED_MAGNITUDE, read_series, text_encoding

    encoding, encoding_note = text_encoding(Path(path), encoding) if Path(path).is_file() else (None, None)
    header = _header(path, encoding)
    # Prophet's column names are the conventional ones for forecasting input: prefer them.
    if timestamp_col is None and header.count("ds") == 1:
        timestamp_col = "ds"
    if value_col is None and header.count("y") == 1 and timestamp_col != "y":
        value_col = "y"
    picked_note = None
    if value_col is None:
        value_col, picked_note = _pick_value_column(path, header, timestamp_col, encoding)
    raw, ts_name, val_name, times, values, notes = read_series(path, timestamp_col, value_col, encoding)
    notes += [n for n in (encoding_note, picked_note) if n]
    text = raw.iloc[:, list(raw.columns).index(val_name)].str.strip()
    bad = values.isna() & text.ne("")
    if bad.any():
        first = int(np.argmax(bad.to_numpy()))
        raise HealthMonitorError(
            f"column {val_name!r} has {int(bad.sum())} non-numeric value(s) "
            f"(first: {text.iloc[first]!r} on line {first + 2}); fix them or pass --value-col")
    if not np.isfinite(values.dropna().to_numpy()).all():
        raise HealthMonitorError(f"column {val_name!r} contains infinite values")
    big = values.abs() > MAX_MODELLED_MAGNITUDE
    if big.any():
        # Sums and squares of such values overflow: the bands would come out 0 or empty.
        raise HealthMonitorError(
            f"column {val_name!r} has {int(big.sum())} value(s) beyond {MAX_MODELLED_MAGNITUDE:g} in magnitude "
            f"(first on line {int(np.argmax(big.to_numpy())) + 2}); rescale the column (e.g. to millions) first")
    notes = [n for n in notes if "not scored" not in n]
    if times.isna().any():
        notes.append(f"{int(times.isna().sum())} row(s) without a timestamp are ignored")
    frame = pd.DataFrame({"ds": times, "y": values}).dropna(subset=["ds"])
    days = frame.ds.dt.normalize()
    if len(frame) and ((frame.ds != days).any() or days.duplicated().any()):
        notes.append(f"aggregated {len(frame):,} sub-daily rows to {days.nunique():,} daily sums")
    if days.nunique() < 2:
        raise HealthMonitorError(f"{path} covers {days.nunique()} day(s); at least 2 days are needed to forecast")
    gap = float(np.median(np.diff(np.sort(days.unique())).astype("timedelta64[D]").astype(float)))
    if gap >= 5:
        notes.append(f"rows are about {gap:.0f} days apart: the forecast is per day, and days without "
                     "rows count as unknown, not zero (aggregate to daily values first if that is wrong)")
    notes.insert(0, f"time column {ts_name!r}, value column {val_name!r}")
    return frame, notes


#: Column names that say "this is the quantity to forecast".
_VALUE_HINTS = ("y", "value", "cost", "spend", "amount", "total", "sales", "revenue", "usage", "dbus",
                "quantity", "count", "demand", "views", "visits", "calls", "load")
#: Name fragments of identifier columns that are numeric but not a quantity.
_ID_HINTS = ("id", "key", "store", "code", "zip", "year", "month", "day", "week", "hour")


def _pick_value_column(path: str | Path, header: list[str], timestamp_col: str | None,
                       encoding: str | None = None) -> tuple[str | None, str | None]:
    """The numeric column to forecast when none is named: a value-like name first, never a
    constant or identifier-like column (a store number is numeric but is not the series)."""
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True, nrows=5000,
                          encoding=encoding)
    except (OSError, ValueError, pd.errors.ParserError, UnicodeDecodeError):
        return None, None  # read_series reports the problem
    if len(set(header)) != len(header) or list(raw.columns) != header:
        return None, None
    numeric = []
    for col in header:
        if col == timestamp_col:
            continue
        text = raw[col].str.strip()
        vals = pd.to_numeric(text.str.replace(r"[\s,$€£%]", "", regex=True), errors="coerce")
        if vals.notna().sum() == 0 or vals.notna().sum() < 0.5 * max(int(text.ne("").sum()), 1):
            continue
        if vals.notna().sum() >= 0.5 * len(text) and _looks_like_dates(text):
            continue  # a date column written as text (the time column when none was named)
        numeric.append((col, vals))
    if len(numeric) < 2:
        return None, None  # read_series' own choice is the only one anyway

    def rank(item: tuple[str, pd.Series]) -> tuple[int, int]:
        name, vals = item[0].strip().lower(), item[1]
        constant = vals.nunique(dropna=True) <= 1
        hinted = any(h == name or name.endswith(h) or name.startswith(h) for h in _VALUE_HINTS)
        id_like = any(h == name or name.endswith(f"_{h}") or name.endswith(h) for h in _ID_HINTS)
        return (2 if constant else 0) + (1 if id_like and not hinted else 0), 0 if hinted else 1

    best = min(numeric, key=rank)
    others = [c for c, _ in numeric if c != best[0]]
    return best[0], (f"forecasting column {best[0]!r} (other numeric columns: {', '.join(others)}; "
                     "pass --value-col to choose)")


def _looks_like_dates(text: pd.Series) -> bool:
    sample = text[text.ne("")].head(50)
    return bool(len(sample)) and bool(sample.str.contains(r"^\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}", regex=True).all())


def _header(path: str | Path, encoding: str | None = None) -> list[str]:
    """Column names of a CSV, or [] when it cannot be read (read_series then says why)."""
    try:
        return [str(c).strip() for c in pd.read_csv(path, nrows=0, dtype=str, encoding=encoding).columns]
    except (OSError, ValueError, pd.errors.ParserError, UnicodeDecodeError):
        return []


def run(args: argparse.Namespace, ctx) -> int:  # noqa: ANN001 - Context; no Spark is touched
    from health_monitor.batch.forecasting import backtest, forecast_daily
    from health_monitor.batch.forecasting.engine import check_country

    country = None if str(args.holidays).lower() in ("none", "", "off") else args.holidays
    frame, notes = read_daily_csv(args.input, args.timestamp_col, args.value_col, args.encoding)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    check_country(country)
    if args.backtest:
        with progress.step(f"backtesting {args.origins} origins x {args.horizon} days"):
            result = backtest(frame, horizon=args.horizon, origins=args.origins, step=args.step,
                              holidays_country=country, use_prophet=not args.no_prophet)
        print(result.table())
        verdict = "beats" if result.beats_seasonal_naive() else "does NOT beat"
        print(f"ours {verdict} seasonal naive on this series (lower daily WAPE and {args.horizon}-day-total MAPE)")
        return 0
    with progress.step(f"forecasting {args.horizon} days"):
        fc = forecast_daily(frame, args.horizon, holidays_country=country, use_prophet=not args.no_prophet)
    fc["ds"] = fc["ds"].dt.strftime("%Y-%m-%d")
    if args.output:
        out = Path(args.output)
        if out.parent and not out.parent.exists():
            raise HealthMonitorError(f"output folder {out.parent} does not exist")
        fc.to_csv(out, index=False, float_format="%.6g")
        print(f"{len(fc)} days forecast ({fc.ds.iloc[0]} to {fc.ds.iloc[-1]}); written to {out}")
    else:
        fc.to_csv(sys.stdout, index=False, float_format="%.6g")
    return 0
