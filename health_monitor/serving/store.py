"""The online feature store: the latest feature row of every entity, in memory.

A caller that knows only a job id, a user or a warehouse asks by key; the server answers from the
latest row of that entity in the endpoint's feature table. Locally the tables are read with
delta-rs (no JVM in the server process, a few hundred milliseconds per table); on Databricks
through the session. The store is rebuilt off the request path and swapped in one assignment, so
a refresh never blocks or tears a request.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from health_monitor.catalog import ModelSpec
from health_monitor.runtime import Lakehouse

log = logging.getLogger(__name__)


@dataclass
class EntityTable:
    """Latest rows of one feature table, indexed by an endpoint's lookup keys."""

    keys: list[str]
    rows: dict[tuple, dict]
    #: The same rows keyed without ``workspace_id``: callers usually know a job id, not its workspace.
    by_entity: dict[tuple, dict]
    #: Per numeric feature: population mean and standard deviation (for the "top reasons").
    stats: dict[str, tuple[float, float]]
    example_key: dict | None
    example_row: dict | None


def read_feature_table(lake: Lakehouse, table: str) -> pd.DataFrame | None:
    """A whole feature table as pandas, or None when it has not been built."""
    if lake.settings.is_databricks:
        if not lake.exists(table, "features"):
            return None
        frame = lake.read(table, "features").toPandas()
    else:
        path = lake.location(table, "features")
        if not (path / "_delta_log").is_dir():
            return None
        from deltalake import DeltaTable

        # Dates as datetime64, as the model signatures hold them (trainer.load_feature_frame).
        frame = DeltaTable(str(path)).to_pyarrow_table().to_pandas(date_as_object=False)
    return frame


def index_latest(frame: pd.DataFrame, spec: ModelSpec, keys: list[str], features: list[str]) -> EntityTable:
    """The latest row (by the spec's time key) of every entity, keyed by ``keys``."""
    order = [c for c in (spec.time_key,) if c in frame.columns]
    latest = frame.sort_values(order, kind="stable") if order else frame
    latest = latest.drop_duplicates(subset=keys, keep="last")
    cols = [c for c in dict.fromkeys([*keys, *features]) if c in latest.columns]
    records = latest[cols].to_dict("records")
    rows = {tuple(_key_part(r[k]) for k in keys): r for r in records}
    stats: dict[str, tuple[float, float]] = {}
    for f in features:
        if f in frame.columns and pd.api.types.is_numeric_dtype(frame[f]):
            v = pd.to_numeric(frame[f], errors="coerce").to_numpy(dtype=float)
            v = v[np.isfinite(v)]
            if len(v):
                stats[f] = (float(v.mean()), float(v.std()))
    short = [k for k in keys if k != "workspace_id"]
    by_entity = {tuple(_key_part(r[k]) for k in short): r for r in records} if short != keys else rows
    example = records[-1] if records else None
    return EntityTable(keys, rows, by_entity, stats,
                       {k: _key_part(example[k]) for k in keys} if example else None, example)


def _key_part(v: object) -> str:
    """Keys compare as text: a caller's job id 42 and the table's "42" are the same job."""
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return str(v)


class OnlineStore:
    """Latest features per endpoint, refreshed as a whole."""

    def __init__(self) -> None:
        self._tables: dict[str, EntityTable] = {}

    def replace(self, tables: dict[str, EntityTable]) -> None:
        """Swap in freshly built tables (one assignment: readers see old or new, never half)."""
        self._tables = dict(tables)

    def table(self, endpoint: str) -> EntityTable | None:
        return self._tables.get(endpoint)

    def lookup(self, endpoint: str, key: dict) -> dict | None:
        """The latest feature row of the entity ``key`` names, or None when it is unknown."""
        t = self._tables.get(endpoint)
        if t is None:
            return None
        if "workspace_id" in t.keys and key.get("workspace_id") is None:
            return t.by_entity.get(tuple(_key_part(key.get(k)) for k in t.keys if k != "workspace_id"))
        return t.rows.get(tuple(_key_part(key.get(k)) for k in t.keys))
