"""Recordings: ordered Gold fact rows with event times, stored as files, to replay through the streams.

A recording is a folder::

    manifest.json            name, incident type, description, time range, tables -> file
    fact_usage.jsonl         one JSON object per Gold row (columns of the Gold contract)
    ...
    expected_alerts.json     (optional) alerts the replay must produce: alert_type, entity, window

Rows are parsed with the Gold contract's schema (``health_monitor.gold.schemas``), so a
recording is checked against the same contract the builders write. Loading appends the rows to a
lakehouse in event-time order, split into ``chunks`` commits, so a stream sees them arrive the
way a live estate would deliver them.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from health_monitor.errors import HealthMonitorError
from health_monitor.gold.schemas import GOLD_TABLES, gold_table
from health_monitor.runtime import Lakehouse

MANIFEST = "manifest.json"
EXPECTED = "expected_alerts.json"


@dataclass
class Recording:
    """A recording folder's manifest."""

    path: Path
    name: str
    incident_type: str | None
    description: str
    tables: dict[str, str]  # Gold table -> file name in the folder
    start: str | None = None
    end: str | None = None
    meta: dict = field(default_factory=dict)

    @property
    def expected_path(self) -> Path:
        return self.path / EXPECTED


def load_recording(path: str | Path) -> Recording:
    """Read and check a recording's manifest (one-line errors for what is wrong)."""
    path = Path(path)
    mpath = path / MANIFEST
    if not mpath.is_file():
        raise HealthMonitorError(f"{path} is not a recording: no {MANIFEST} in it")
    try:
        m = json.loads(mpath.read_text())
    except ValueError as exc:
        raise HealthMonitorError(f"{mpath}: invalid JSON ({exc})") from None
    tables = m.get("tables")
    if not isinstance(tables, dict) or not tables:
        raise HealthMonitorError(f"{mpath}: 'tables' must map Gold table names to files")
    for table, fname in tables.items():
        if table not in GOLD_TABLES:
            raise HealthMonitorError(f"{mpath}: unknown Gold table {table!r}")
        if not (path / fname).is_file():
            raise HealthMonitorError(f"{mpath}: file {fname} for {table} is missing")
    return Recording(path, m.get("name", path.name), m.get("incident_type"), m.get("description", ""),
                     tables, m.get("start"), m.get("end"),
                     {k: v for k, v in m.items() if k not in ("name", "incident_type", "description",
                                                             "tables", "start", "end")})


def read_rows(lake: Lakehouse, table: str, file: str | Path) -> DataFrame:
    """A JSON-lines file of Gold rows as a DataFrame with the table's contract schema.

    Malformed lines fail the read with the file named (FAILFAST) instead of becoming null rows.
    """
    spec = gold_table(table)
    return (lake.spark.read.schema(spec.schema).option("mode", "FAILFAST")
            .option("timestampFormat", "yyyy-MM-dd'T'HH:mm:ss[.SSSSSS][.SSS][XXX]")
            .json(str(file)))


def append_in_order(lake: Lakehouse, table: str, df: DataFrame, chunks: int = 1) -> int:
    """Append rows to a Gold table in event-time order as ``chunks`` commits of one file each."""
    spec = gold_table(table)
    ts = spec.event_time
    if chunks <= 1 or not ts:
        lake.write(df.coalesce(1), table, "gold", mode="append")
        return 1
    bounds = df.agg(F.min(ts).alias("lo"), F.max(ts).alias("hi")).collect()[0]
    if bounds.lo is None:
        return 0
    lo, hi = bounds.lo.timestamp(), bounds.hi.timestamp()
    step = (hi - lo) / chunks or 1.0
    written = 0
    for i in range(chunks):
        a = lo + i * step
        b = hi + 1 if i == chunks - 1 else lo + (i + 1) * step
        part = df.filter((F.unix_micros(F.col(ts)) >= int(a * 1e6)) & (F.unix_micros(F.col(ts)) < int(b * 1e6)))
        lake.write(part.coalesce(1), table, "gold", mode="append")
        written += 1
    return written


def load_into(lake: Lakehouse, recording: Recording, chunks: int = 1) -> dict[str, int]:
    """Append every table of a recording to ``lake``'s Gold layer; returns rows per table."""
    counts = {}
    for table, fname in recording.tables.items():
        df = read_rows(lake, table, recording.path / fname)
        counts[table] = df.count()
        append_in_order(lake, table, df, chunks)
    return counts


def cut_recording(lake: Lakehouse, out_dir: str | Path, name: str, start: datetime, end: datetime,
                  tables: dict[str, str | None], incident_type: str | None = None,
                  description: str = "", extra: dict | None = None) -> Recording:
    """Write the Gold rows of ``tables`` with event time in [start, end) to a new recording.

    ``tables`` maps a Gold table to an optional SQL filter (e.g. ``"workspace_id = '1001'"``) that
    keeps the recording small: one workspace or a few users around an incident.
    """
    out = Path(out_dir)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    files = {}
    for table, where in tables.items():
        spec = gold_table(table)
        df = lake.read(table)
        if spec.event_time:  # configuration tables (SLAs, commits) have no event time: keep all
            df = df.filter((F.col(spec.event_time) >= F.lit(start)) & (F.col(spec.event_time) < F.lit(end)))
        if where:
            df = df.filter(where)
        order = [spec.event_time] if spec.event_time else spec.primary_key
        # Nulls are left out of the JSON (the schema fills them back in): recordings stay small.
        rows = [json.dumps({k: v for k, v in r.items() if v is not None and v != {} and v != []},
                           default=_json_default, separators=(",", ":"))
                for r in (row.asDict(recursive=True) for row in df.orderBy(*order).collect())]
        fname = f"{table}.jsonl"
        (out / fname).write_text("\n".join(rows) + ("\n" if rows else ""))
        files[table] = fname
    manifest = {"name": name, "incident_type": incident_type, "description": description,
                "start": start.isoformat(), "end": end.isoformat(), "tables": files, **(extra or {})}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return load_recording(out)


def _json_default(v: object) -> object:
    if isinstance(v, datetime):
        return v.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return float(v)  # Decimal
