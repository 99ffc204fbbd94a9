"""The window state every streaming domain shares: :class:`KeyState` (pickled into the state store)
and the small conversions the domains' window code uses."""

from __future__ import annotations

import math
import pickle
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from health_monitor.vocabulary import SENSITIVE_TABLE_REGEX, is_sensitive_table  # noqa: F401 - re-export

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS

#: One definition for stream and batch (re-exported here for the window code and its callers).
SENSITIVE_REGEX = SENSITIVE_TABLE_REGEX


@dataclass
class KeyState:
    """Everything one entity's stream remembers between micro-batches (pickled into the state store)."""

    entity_type: str
    entity_id: str
    workspace_id: str | None = None
    open: dict[int, dict] = field(default_factory=dict)  # window start (epoch ms) -> accumulator
    closed_until_ms: int = -1  # end of the newest closed window
    history: dict[str, Any] = field(default_factory=dict)
    detector: bytes | None = None
    # last scored windows, for rules with ``for: N`` (scoring.prior_row tuples; dicts in older state)
    recent: list = field(default_factory=list)

    def dumps(self) -> bytes:
        """The state store's blob: the pickle, zlib-compressed (level 1: ~0.3 ms for a multivariate
        key's 56 KB, which shrinks to ~19 KB; the detector's trees are most of it). The state
        store holds every key's blob in the JVM for the last batches and writes each changed one
        to the checkpoint every batch: at 10k keys that is 0.2 instead of 0.56 GB per version."""
        return zlib.compress(pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL), 1)

    @staticmethod
    def loads(blob: bytes) -> KeyState:
        """A blob of :meth:`dumps`, or a plain pickle (checkpoints written before compression)."""
        raw = bytes(blob)
        if raw[:1] != b"\x80":  # a pickle (protocol >= 2) starts with PROTO; zlib with 0x78
            raw = zlib.decompress(raw)
        return pickle.loads(raw)  # noqa: S301 - our own state store


def _ms(series: pd.Series) -> np.ndarray:
    """Naive UTC timestamps -> epoch milliseconds."""
    return pd.to_datetime(series).to_numpy(dtype="datetime64[ms]").astype("int64")


def _ts(ms: int) -> pd.Timestamp:
    return pd.Timestamp(ms, unit="ms")


def _calendar(start_ms: int) -> dict[str, float]:
    """Hour/weekday features of a window start, with Spark's 1 = Sunday weekday numbering."""
    # from the epoch (a Thursday) in integers: what pandas' Timestamp gives, ~10x cheaper
    days, rest = divmod(start_ms, DAY_MS)
    dow = ((days + 3) % 7 + 1) % 7 + 1  # Monday=0 (pandas' dayofweek) -> Spark's Sunday=1
    hour = rest // HOUR_MS
    return {
        "hour_of_day": float(hour), "day_of_week": float(dow), "is_weekend": float(dow in (1, 7)),
        "hour_sin": math.sin(2 * math.pi * hour / 24), "hour_cos": math.cos(2 * math.pi * hour / 24),
        "dow_sin": math.sin(2 * math.pi * dow / 7), "dow_cos": math.cos(2 * math.pi * dow / 7),
    }


def _flag(s: pd.Series) -> pd.Series:
    """A nullable boolean column as plain bools (null = False)."""
    return s.astype("boolean").fillna(False).astype(bool)


def _flags(s: pd.Series) -> np.ndarray:
    """:func:`_flag` as a NumPy array, without pandas' nullable-boolean round trip (a millisecond
    per column) where the column is plain bool, or bools and nulls (Arrow's nullable boolean)."""
    v = s.to_numpy()
    if v.dtype == bool:
        return v
    if v.dtype == object:
        na = s.isna().to_numpy()
        vals = v[~na]
        if all(type(x) is bool or isinstance(x, np.bool_) for x in vals.tolist()):
            out = np.zeros(len(v), dtype=bool)
            out[~na] = vals.astype(bool)
            return out
    return _flag(s).to_numpy()


@dataclass
class Segments:
    """The rows of one call to a domain's accumulator, grouped by window: rows in a stable order by
    window start (``order``), the bounds of each window's run of rows in that order (``lo``/``hi``)
    and each window's accumulator (``accs``, created oldest first, as the per-window form did)."""

    order: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    accs: list[dict]

    @staticmethod
    def of(open_: dict[int, dict], starts: np.ndarray) -> Segments:
        order = np.argsort(starts, kind="stable")  # stable: each window keeps its rows' order
        s = starts[order]
        cut = np.flatnonzero(s[1:] != s[:-1]) + 1
        lo = np.concatenate(([0], cut))
        hi = np.concatenate((cut, [len(s)]))
        return Segments(order, lo, hi, [open_.setdefault(int(s[i]), {}) for i in lo])

    def window_of_rows(self) -> list[int]:
        """The window (index into ``accs``) of each row, rows in ``order``."""
        return np.repeat(np.arange(len(self.accs)), self.hi - self.lo).tolist()

    def sub_sums(self, field: str, keys: list, present: list, values: np.ndarray, as_key: Any = None) -> None:
        """Add ``values`` per window and sub-key into each window's ``acc[field]`` dict (``keys``,
        ``present`` and ``values`` in ``order``; rows not ``present`` skipped), sub-keys in sorted
        order, as pandas' ``groupby(key).sum()`` per window did (``as_key``: the dict's key)."""
        sums = GroupSums()
        win = self.window_of_rows()
        vals = values.tolist()
        for i, ok in enumerate(present):
            if ok:
                sums.add((win[i], keys[i]), vals[i])
        for (w, k), v in sums.items():
            d = self.accs[w][field]
            k = as_key(k) if as_key else k
            d[k] = d.get(k, 0.0) + float(v)

    def take(self, s: pd.Series | np.ndarray) -> np.ndarray:
        """A column's values in ``order`` (object columns keep their Python values)."""
        return (s.to_numpy() if isinstance(s, pd.Series) else s)[self.order]

    def floats(self, s: pd.Series) -> np.ndarray:
        """A numeric column in ``order`` as float64 (nulls NaN)."""
        return s.to_numpy(dtype=float, na_value=np.nan)[self.order]

    def counts(self, mask: np.ndarray) -> list[int]:
        """Rows per window where ``mask`` (in ``order``) holds."""
        return np.add.reduceat(mask.astype(np.int64), self.lo).tolist()


class GroupSums:
    """Sums per group key, exactly as pandas' ``groupby(...).sum()`` computes them (Kahan
    compensated, NaN skipped, a group of NaNs sums to 0): the per-window accumulators summed
    sub-keys (SKU, job, run) that way, and state written by them must keep adding up the same."""

    def __init__(self) -> None:
        self.sums: dict[Any, list[float]] = {}

    def add(self, key: Any, val: float) -> None:
        s = self.sums.get(key)
        if s is None:
            s = self.sums[key] = [0.0, 0.0]
        if val != val:
            return
        y = val - s[1]
        t = s[0] + y
        c = t - s[0] - y
        s[1] = 0.0 if c != c else c  # an infinite value: keep the infinity, not NaN (pandas GH#53606)
        s[0] = t

    def items(self) -> list[tuple[Any, float]]:
        """(key, sum) in sorted key order (pandas sorts group keys)."""
        return [(k, self.sums[k][0]) for k in sorted(self.sums)]


def _str(x: Any) -> str | None:
    return x if isinstance(x, str) and x else None


def _nan(x: float | None) -> float:
    return float("nan") if x is None else float(x)


# Checkpoints written before the package split pickled KeyState under the package name: keep it.
KeyState.__module__ = "health_monitor.streaming.windows"
