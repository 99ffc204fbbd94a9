"""The window state every streaming domain shares: :class:`KeyState` (pickled into the state store)
and the small conversions the domains' window code uses."""

from __future__ import annotations

import math
import pickle
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
    recent: list = field(default_factory=list)  # last scored windows, for rules with ``for: N``

    def dumps(self) -> bytes:
        return pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)

    @staticmethod
    def loads(blob: bytes) -> KeyState:
        return pickle.loads(blob)  # noqa: S301 - our own state store


def _ms(series: pd.Series) -> np.ndarray:
    """Naive UTC timestamps -> epoch milliseconds."""
    return pd.to_datetime(series).to_numpy(dtype="datetime64[ms]").astype("int64")


def _ts(ms: int) -> pd.Timestamp:
    return pd.Timestamp(ms, unit="ms")


def _calendar(start_ms: int) -> dict[str, float]:
    """Hour/weekday features of a window start, with Spark's 1 = Sunday weekday numbering."""
    t = _ts(start_ms)
    dow = (t.dayofweek + 1) % 7 + 1  # pandas Monday=0 -> Spark Sunday=1
    hour = t.hour
    return {
        "hour_of_day": float(hour), "day_of_week": float(dow), "is_weekend": float(dow in (1, 7)),
        "hour_sin": math.sin(2 * math.pi * hour / 24), "hour_cos": math.cos(2 * math.pi * hour / 24),
        "dow_sin": math.sin(2 * math.pi * dow / 7), "dow_cos": math.cos(2 * math.pi * dow / 7),
    }


def _flag(s: pd.Series) -> pd.Series:
    """A nullable boolean column as plain bools (null = False)."""
    return s.astype("boolean").fillna(False).astype(bool)


def _str(x: Any) -> str | None:
    return x if isinstance(x, str) and x else None


def _nan(x: float | None) -> float:
    return float("nan") if x is None else float(x)


# Checkpoints written before the package split pickled KeyState under the package name: keep it.
KeyState.__module__ = "health_monitor.streaming.windows"
