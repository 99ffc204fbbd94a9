"""Turn whatever the caller has (a frame of timestamps and values) into one clean daily series."""

from __future__ import annotations

import numpy as np
import pandas as pd

from health_monitor.errors import HealthMonitorError


def prepare_history(history: pd.DataFrame | pd.Series, timestamp_col: str = "ds",
                    value_col: str = "y") -> pd.Series:
    """Return a float series on a gap-free daily ``DatetimeIndex`` (missing days are NaN).

    Args:
        history: a frame with a timestamp column and a numeric value column, or a series
            indexed by timestamps.
        timestamp_col: name of the timestamp column (frames only).
        value_col: name of the value column (frames only).

    Several rows on one day (sub-daily timestamps) are summed into that day; a day without
    rows stays NaN, never zero, because "no data" and "zero spend" are different facts.
    Time-zone-aware timestamps keep their wall-clock date.

    Raises:
        HealthMonitorError: missing columns, unparseable dates, non-numeric or infinite
            values, or no usable rows.
    """
    if isinstance(history, pd.Series):
        frame = pd.DataFrame({timestamp_col: history.index, value_col: history.to_numpy()})
    elif isinstance(history, pd.DataFrame):
        frame = history
    else:
        raise HealthMonitorError(f"history must be a pandas DataFrame or Series, not {type(history).__name__}")
    for col in (timestamp_col, value_col):
        if col not in frame.columns:
            raise HealthMonitorError(
                f"history has no column {col!r} (columns: {', '.join(map(str, frame.columns)) or 'none'})")
    ds = _to_dates(frame[timestamp_col], timestamp_col)
    y = _to_numbers(frame[value_col], value_col)
    keep = ds.notna().to_numpy()
    if not keep.any():
        raise HealthMonitorError("history has no rows with a timestamp")
    daily = pd.Series(y[keep], index=pd.DatetimeIndex(ds[keep]).normalize())
    # min_count=1: a day whose only rows are blank stays NaN instead of becoming 0.
    daily = daily.groupby(level=0).sum(min_count=1).sort_index()
    daily = daily.loc[daily.first_valid_index():daily.last_valid_index()] if daily.notna().any() else daily
    if daily.notna().sum() == 0:
        raise HealthMonitorError("history has no numeric values")
    full = pd.date_range(daily.index[0], daily.index[-1], freq="D")
    out = daily.reindex(full).astype(float)
    out.index.name = "ds"
    out.name = "y"
    return out


def _to_dates(col: pd.Series, name: str) -> pd.Series:
    """Parse a timestamp column; one-line error naming a bad example."""
    if pd.api.types.is_datetime64_any_dtype(col):
        parsed = col
    else:
        text = col.astype("string").str.strip()
        try:
            parsed = pd.to_datetime(text, errors="coerce", format="mixed")
        except (ValueError, TypeError):
            parsed = pd.to_datetime(text, errors="coerce")
        bad = parsed.isna() & text.notna() & (text != "")
        if bad.any():
            example = text[bad].iloc[0]
            raise HealthMonitorError(
                f"{int(bad.sum())} value(s) in column {name!r} are not dates, e.g. {example!r} "
                f"(row {int(np.flatnonzero(bad.to_numpy())[0]) + 1})")
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_localize(None)  # keep the wall-clock date the data was written in
    return parsed


def _to_numbers(col: pd.Series, name: str) -> np.ndarray:
    """Parse a value column to floats; blanks become NaN, anything else non-numeric is an error."""
    if pd.api.types.is_bool_dtype(col):
        return col.astype(float).to_numpy()
    if pd.api.types.is_numeric_dtype(col):
        values = col.astype(float).to_numpy()
    else:
        text = col.astype("string").str.strip()
        parsed = pd.to_numeric(text, errors="coerce")
        bad = parsed.isna() & text.notna() & (text != "") & ~text.str.lower().isin(["nan", "na", "null", "none"])
        if bad.any():
            example = col.astype("string")[bad].iloc[0]
            raise HealthMonitorError(
                f"{int(bad.sum())} value(s) in column {name!r} are not numbers, e.g. {example!r} "
                f"(row {int(np.flatnonzero(bad.to_numpy())[0]) + 1})")
        values = parsed.astype(float).to_numpy()
    if np.isinf(values).any():
        raise HealthMonitorError(f"column {name!r} contains infinite values")
    return values
