"""Bring-your-own-metric: read any CSV holding a time series, score it, write it back.

Pure pandas on purpose: ``health-monitor detect`` must work on a laptop without Java or Spark.
Every user mistake (missing file, unknown or ambiguous column, unparseable timestamps, no numeric
values, too few rows) is a one-line :class:`HealthMonitorError`.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from health_monitor.detectors.base import REARM_ROWS, episode_alarms
from health_monitor.detectors.univariate import UnivariateDetector
from health_monitor.errors import HealthMonitorError

#: Column names that announce a time column even when it holds plain numbers (epochs, indices).
_TIME_NAMES = ("timestamp", "time", "datetime", "date", "ts", "epoch", "event_time")
#: Output columns added to every row.
SCORE_COL, FLAG_COL, ALARM_COL = "anomaly_score", "is_anomaly", "alarm"
#: Largest magnitude the detector and forecaster can model: their squares and sums must stay finite.
MAX_MODELLED_MAGNITUDE = 1e100
#: Encodings tried, in order, when a file is not UTF-8 and none was given.
_FALLBACK_ENCODINGS = ("cp1252", "latin-1")


@dataclass
class ScoredSeries:
    """A scored CSV: every input row (sorted by time) plus the score columns."""

    frame: pd.DataFrame
    timestamp_col: str
    value_col: str
    times: pd.Series
    values: pd.Series
    evidence: list[list[str]]
    notes: list[str] = field(default_factory=list)


def _resolve(columns: list[str], wanted: str, what: str) -> str:
    """The one column called ``wanted`` (exact, else case-insensitive), or a one-line error."""
    exact = [c for c in columns if c == wanted]
    if len(exact) == 1:
        return exact[0]
    if len(exact) > 1:
        raise HealthMonitorError(f"{what} column {wanted!r} is ambiguous: the CSV has {len(exact)} columns of that name")
    loose = [c for c in columns if c.strip().lower() == wanted.strip().lower()]
    if len(loose) == 1:
        return loose[0]
    if len(loose) > 1:
        raise HealthMonitorError(f"{what} column {wanted!r} is ambiguous: it matches {', '.join(map(repr, loose))}")
    raise HealthMonitorError(f"no {what} column {wanted!r} in the CSV; columns are: {', '.join(columns)}")


_NUMERIC_JUNK = re.compile(r"[\s,$€£%]")


def _to_numeric(col: pd.Series) -> pd.Series:
    """Numbers from text, tolerating thousands separators, currency and percent signs."""
    out = pd.to_numeric(col.str.strip().replace("", np.nan), errors="coerce")
    bad = out.isna() & col.str.strip().ne("")
    if bad.any():
        out[bad] = pd.to_numeric(col[bad].str.replace(_NUMERIC_JUNK, "", regex=True), errors="coerce")
    return out.astype(float)


def _epoch_unit(values: pd.Series) -> str:
    mag = float(np.nanmax(np.abs(values.to_numpy()))) if values.notna().any() else 0.0
    return "ns" if mag > 1e17 else "us" if mag > 1e14 else "ms" if mag > 1e11 else "s"


def _to_times(col: pd.Series) -> pd.Series:
    """Parse a text column as timestamps (naive UTC); NaT where a value is empty or unparseable."""
    text = col.str.strip().replace("", np.nan)
    nums = pd.to_numeric(text, errors="coerce")
    if text.notna().any() and nums[text.notna()].notna().all():
        # purely numeric: an epoch (unit from magnitude) or a plain step index
        return pd.to_datetime(nums, unit=_epoch_unit(nums), errors="coerce")
    try:
        out = pd.to_datetime(text, errors="coerce", utc=True)
        if out[text.notna()].isna().any():
            out = pd.to_datetime(text, errors="coerce", utc=True, format="mixed")
    except (ValueError, TypeError, OverflowError):
        out = pd.to_datetime(text, errors="coerce", utc=True, format="mixed")
    return out.dt.tz_convert("UTC").dt.tz_localize(None)


def _looks_like_time(col: pd.Series) -> bool:
    text = col.str.strip()
    text = text[text.ne("")].head(200)
    if text.empty or pd.to_numeric(text, errors="coerce").notna().all():
        return False
    with_digits = text.str.contains(r"\d")
    if not with_digits.all():
        return False
    try:
        parsed = pd.to_datetime(text, errors="coerce", utc=True, format="mixed")
    except (ValueError, TypeError, OverflowError):
        return False
    return parsed.notna().mean() >= 0.9


def _header(path: Path, encoding: str = "utf-8") -> list[str]:
    with path.open(newline="", encoding=encoding, errors="replace") as fh:
        row = next(csv.reader(fh, skipinitialspace=True), [])
    return [c.lstrip("\ufeff") for c in row]


def text_encoding(path: Path, encoding: str | None = None) -> tuple[str, str | None]:
    """The encoding to read ``path`` with, and a note when it had to be guessed.

    UTF-8 (with or without BOM) is the default; a file that is not valid UTF-8 is read as
    Windows-1252 (a superset of Latin-1 for text) and the note says so and how to override it.
    """
    if encoding:
        try:
            "".encode(encoding)
        except LookupError:
            raise HealthMonitorError(f"unknown encoding {encoding!r} (e.g. utf-8, latin-1, cp1252, utf-16)") from None
        return encoding, None
    with path.open("rb") as fh:
        data = fh.read()
    try:
        data.decode("utf-8")
        return "utf-8-sig", None
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        for candidate in _FALLBACK_ENCODINGS:
            try:
                data.decode(candidate)
            except UnicodeDecodeError:
                continue
            return candidate, (f"{path} is not UTF-8 (byte 0x{data[exc.start]:02x} on line {line}); read it as "
                               f"{candidate}: pass --encoding to choose another")
    raise HealthMonitorError(f"{path} is not UTF-8 text; pass --encoding")  # latin-1 decodes any bytes


def zone_note(text: pd.Series) -> str | None:
    """A note when timestamps without a zone were taken as UTC (and whether zones were mixed)."""
    text = text.str.strip()
    text = text[text.ne("") & text.str.contains(r"\d{1,2}:\d{2}", regex=True)]
    if text.empty:
        return None
    aware = text.str.contains(r"(?:Z|[+-]\d{2}:?\d{2}|UTC|GMT)$", case=False, regex=True)
    if aware.all():
        return None
    if aware.any():
        return (f"{int((~aware).sum())} timestamp(s) have no time zone and {int(aware.sum())} do: "
                "the ones without were taken as UTC")
    return "timestamps have no time zone: taken as UTC"


def range_problem(values: pd.Series, name: str) -> tuple[pd.Series, str | None]:
    """Values the models cannot handle (infinite, or beyond ``MAX_MODELLED_MAGNITUDE``) as NaN,
    with a note saying how many; ``values`` unchanged and None when all are in range."""
    out_of_range = values.notna() & ~(values.abs() <= MAX_MODELLED_MAGNITUDE)
    n = int(out_of_range.sum())
    if not n:
        return values, None
    first = values[out_of_range].iloc[0]
    return values.mask(out_of_range), (f"{n} value(s) in {name!r} are infinite or beyond "
                                       f"{MAX_MODELLED_MAGNITUDE:g} in magnitude (first: {first:g}); "
                                       "they are kept but not modelled (rescale the column to use them)")


def read_series(path: str | Path, timestamp_col: str | None = None,
                value_col: str | None = None, encoding: str | None = None,
                ) -> tuple[pd.DataFrame, str, str, pd.Series, pd.Series, list[str]]:
    """Read a CSV and pick its time and value columns.

    Returns the raw frame (all columns as text, exactly as read), the two column names, the parsed
    timestamps and values (same index as the frame), and notes for the user.
    """
    path = Path(path)
    if not path.exists():
        raise HealthMonitorError(f"input file {path} does not exist")
    if path.is_dir():
        raise HealthMonitorError(f"input {path} is a folder, not a CSV file")
    encoding, encoding_note = text_encoding(path, encoding)
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True, encoding=encoding)
    except pd.errors.EmptyDataError:
        raise HealthMonitorError(f"{path} is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise HealthMonitorError(f"{path} is not a readable CSV: {first}") from None
    # pandas renames repeated headers ("value", "value.1"); take the real header to spot them
    header = _header(path, encoding)
    columns = header if len(header) == raw.shape[1] else [str(c) for c in raw.columns]
    dup = sorted({c for c in columns if columns.count(c) > 1})
    raw.columns = pd.Index(columns)
    notes: list[str] = [encoding_note] if encoding_note else []
    if len(raw) < 2:
        raise HealthMonitorError(f"{path} has {len(raw)} data row(s); at least 2 are needed to score a series")

    def col(name: str) -> pd.Series:
        return raw.iloc[:, columns.index(name)]

    # --- the time column ---
    if timestamp_col is not None:
        ts_name = _resolve(columns, timestamp_col, "timestamp")
    else:
        named = [c for c in columns if c.strip().lower() in _TIME_NAMES and c not in dup]
        candidates = named + [c for c in columns if c not in named and c not in dup and _looks_like_time(col(c))]
        if not candidates:
            raise HealthMonitorError(f"no timestamp column found among {', '.join(columns)}; "
                                     "pass --timestamp-col NAME")
        ts_name = candidates[0]
        if ts_name in dup:
            raise HealthMonitorError(f"timestamp column {ts_name!r} is ambiguous: the CSV has it twice")
    times = _to_times(col(ts_name))
    text = col(ts_name).str.strip()
    bad = times.isna() & text.ne("")
    if bad.any():
        first = int(np.argmax(bad.to_numpy()))
        raise HealthMonitorError(
            f"column {ts_name!r} has {int(bad.sum())} value(s) that are not timestamps "
            f"(first: {text.iloc[first]!r} on line {first + 2}); pass --timestamp-col to pick another column")
    if times.isna().all():
        raise HealthMonitorError(f"timestamp column {ts_name!r} is empty")
    if times.isna().any():
        notes.append(f"{int(times.isna().sum())} row(s) without a timestamp are kept last and not scored")
    if note := zone_note(text):
        notes.append(note)

    # --- the value column ---
    if value_col is not None:
        val_name = _resolve(columns, value_col, "value")
        if val_name == ts_name:
            raise HealthMonitorError(f"column {val_name!r} cannot be both the timestamp and the value")
        values = _to_numeric(col(val_name))
        if values.notna().sum() == 0:
            raise HealthMonitorError(f"value column {val_name!r} holds no numeric values")
    else:
        val_name, values = "", pd.Series(dtype=float)
        # a column called "value" wins (benchmark files often lead with an id column);
        # otherwise the first column that is mostly numbers
        order = sorted(columns, key=lambda c: c.strip().lower() != "value")
        for c in order:
            if c == ts_name:
                continue
            v = _to_numeric(col(c))
            nonempty = col(c).str.strip().ne("")
            if v.notna().sum() > 0 and v.notna().sum() >= 0.5 * max(int(nonempty.sum()), 1):
                if c in dup:
                    raise HealthMonitorError(f"value column {c!r} is ambiguous: the CSV has it twice; "
                                             "rename one or pass --value-col")
                val_name, values = c, v
                break
        if not val_name:
            raise HealthMonitorError(f"no numeric value column found among {', '.join(columns)}; "
                                     "pass --value-col NAME")
        others = [c for c in columns if c not in (ts_name, val_name) and _to_numeric(col(c)).notna().any()]
        if others:
            notes.append(f"scoring column {val_name!r} (other numeric columns: {', '.join(others)}; "
                         "pass --value-col to choose)")
    n_bad = int((values.isna() & col(val_name).str.strip().ne("")).sum())
    if n_bad:
        notes.append(f"{n_bad} non-numeric value(s) in {val_name!r} are kept but not scored")
    return raw, ts_name, val_name, times, values, notes


def score_csv(path: str | Path, timestamp_col: str | None = None, value_col: str | None = None,
              threshold: float | None = None, encoding: str | None = None, rearm: int = REARM_ROWS,
              **detector_params: object) -> ScoredSeries:
    """Read ``path``, sort by time (stable: duplicates keep their order), score with a fresh
    :class:`UnivariateDetector` and return every row with ``anomaly_score``, ``is_anomaly`` (the
    row's score is at or above the threshold) and ``alarm`` (the first such row of an excursion:
    :func:`~health_monitor.detectors.base.episode_alarms` with ``rearm`` quiet rows)."""
    raw, ts_name, val_name, times, values, notes = read_series(path, timestamp_col, value_col, encoding)
    values, note = range_problem(values, val_name)
    if note:
        notes.append(note)
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise HealthMonitorError(f"--threshold must be between 0 and 1, got {threshold}")
    if rearm < 0:
        raise HealthMonitorError(f"--rearm must be a number of rows >= 0, got {rearm}")
    order = np.argsort(times.to_numpy(), kind="stable")  # NaT sorts last
    raw, times, values = raw.iloc[order], times.iloc[order], values.iloc[order]
    params = dict(detector_params)
    if threshold is not None:
        params["threshold"] = threshold
    det = UnivariateDetector(**params)
    scores = det.score_learn(pd.DataFrame({"timestamp": times.to_numpy(), "value": values.to_numpy()}))
    out = raw.reset_index(drop=True).copy()
    for name in (SCORE_COL, FLAG_COL, ALARM_COL):
        if name in out.columns:
            out = out.rename(columns={name: f"{name}_input"})
            notes.append(f"the input's own {name!r} column is kept as '{name}_input'")
    out[SCORE_COL] = np.round(scores.score, 6)
    out[FLAG_COL] = det.is_anomaly(scores)
    # one alarm per excursion: what an on-call user is told (rows re-arm after `rearm` quiet rows)
    out[ALARM_COL] = episode_alarms(scores.score, det.threshold, rearm)
    return ScoredSeries(frame=out, timestamp_col=ts_name, value_col=val_name,
                        times=times.reset_index(drop=True), values=values.reset_index(drop=True),
                        evidence=scores.evidence, notes=notes)


def write_scores(scored: ScoredSeries, output: str | Path) -> Path:
    """Write the scored rows as CSV (one-line error if the folder does not exist)."""
    output = Path(output)
    if not output.parent.exists():
        raise HealthMonitorError(f"output folder {output.parent} does not exist")
    if output.is_dir():
        raise HealthMonitorError(f"output {output} is a folder; give a file name")
    try:
        scored.frame.to_csv(output, index=False)
    except OSError as exc:
        raise HealthMonitorError(f"cannot write {output}: {exc.strerror or exc}") from None
    return output
