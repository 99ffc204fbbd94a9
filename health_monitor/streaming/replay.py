"""Replay a recording through the real streaming queries in a fresh, temporary lakehouse.

The recording's Gold rows are appended in event-time order (a few commits per table), then the
domain queries run with an available-now trigger, exactly as ``stream start --available-now``
would, and the resulting alerts are returned. Nothing is registered in the temporary lakehouse's
model registry, so a replay always exercises the cold-start path (online models and rules) and
gives the same alerts on every machine.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from health_monitor.domains import SPECS
from health_monitor.runtime import Lakehouse, get_spark
from health_monitor.settings import load_settings
from health_monitor.streaming import engine
from health_monitor.streaming.recording import Recording, load_into, load_recording

#: Columns that identify an alert in a recording's expected_alerts.json.
ALERT_IDENTITY = ["alert_type", "entity_type", "entity_id", "window_start", "window_end"]


@dataclass
class ReplayResult:
    """Alerts (and last batch stats per domain) of one replay."""

    recording: Recording
    alerts: pd.DataFrame
    stats: dict
    data_dir: Path | None


def replay(path: str | Path, chunks: int = 1, keep_dir: str | Path | None = None) -> ReplayResult:
    """Feed a recording through the streaming queries (available-now) and collect the alerts.

    Args:
        path: recording folder.
        chunks: commits per Gold table (the stream sees at least this many data batches).
        keep_dir: lakehouse folder to keep for inspection; by default a temporary one is removed.
    """
    rec = load_recording(path)
    data_dir = Path(keep_dir) if keep_dir else Path(tempfile.mkdtemp(prefix="hm-replay-"))
    if keep_dir and data_dir.exists():
        shutil.rmtree(data_dir)
    settings = load_settings(data_dir)
    lake = Lakehouse(settings, get_spark(settings))
    try:
        load_into(lake, rec, chunks)
        domains = [d.name for d in SPECS if d.streams and any(t in rec.tables for t in d.sources)]
        beats = data_dir / "heartbeat"
        beats.mkdir(parents=True, exist_ok=True)
        stats = engine.run_available_now(lake, domains, max_files_per_trigger=1, shuffle_partitions=1,
                                         heartbeat_dir=beats)
        # End of the recording: one heartbeat a day past its last event moves the watermark on,
        # and a second available-now run closes (and scores) the windows still open.
        end = (_last_event(lake, rec) + pd.Timedelta(days=1)).floor("s")
        (beats / "end.json").write_text(json.dumps({"event_time": end.isoformat() + "Z"}) + "\n")
        stats = engine.run_available_now(lake, domains, max_files_per_trigger=1, heartbeat_dir=beats)
        alerts = lake.read("alerts", "monitor").toPandas() if lake.exists("alerts", "monitor") \
            else pd.DataFrame(columns=["alert_id", *ALERT_IDENTITY])
    finally:
        if not keep_dir:
            shutil.rmtree(data_dir, ignore_errors=True)
    alerts = alerts.sort_values(["window_start", "alert_type", "entity_id"]).reset_index(drop=True)
    return ReplayResult(rec, alerts, stats, data_dir if keep_dir else None)


def _last_event(lake: Lakehouse, rec: Recording) -> pd.Timestamp:
    from pyspark.sql import functions as F

    from health_monitor.gold.schemas import gold_table

    last = []
    for table in rec.tables:
        ts = gold_table(table).event_time
        if ts:
            v = lake.read(table).agg(F.max(ts)).collect()[0][0]
            if v is not None:
                last.append(pd.Timestamp(v))
    return max(last) if last else pd.Timestamp.now()


def alert_identities(alerts: pd.DataFrame) -> set[tuple]:
    """Alerts as comparable tuples (alert_type, entity_type, entity_id, window_start, window_end)."""
    return {(r.alert_type, r.entity_type, str(r.entity_id), pd.Timestamp(r.window_start).isoformat(),
             pd.Timestamp(r.window_end).isoformat()) for r in alerts.itertuples(index=False)}


def expected_alerts(rec: Recording) -> set[tuple] | None:
    """The recording's expected alerts, or None if it has no expected_alerts.json."""
    if not rec.expected_path.exists():
        return None
    rows = json.loads(rec.expected_path.read_text())
    return {(r["alert_type"], r["entity_type"], str(r["entity_id"]), pd.Timestamp(r["window_start"]).isoformat(),
             pd.Timestamp(r["window_end"]).isoformat()) for r in rows}


def write_expected(rec: Recording, alerts: pd.DataFrame) -> Path:
    """Record a replay's alerts as the recording's expected alerts (after reviewing them)."""
    rows = [dict(zip(["alert_type", "entity_type", "entity_id", "window_start", "window_end"], t, strict=True))
            for t in sorted(alert_identities(alerts))]
    rec.expected_path.write_text(json.dumps(rows, indent=1) + "\n")
    return rec.expected_path


def format_alerts(alerts: pd.DataFrame) -> str:
    """A readable table of alerts (severity, type, entity, window, score, summary)."""
    if alerts.empty:
        return "no alerts"
    lines = [f"{'severity':<9} {'alert_type':<22} {'entity':<34} {'window (UTC)':<33} {'score':>5}  summary"]
    for r in alerts.itertuples(index=False):
        window = f"{pd.Timestamp(r.window_start):%Y-%m-%d %H:%M} - {pd.Timestamp(r.window_end):%m-%d %H:%M}"
        entity = f"{r.entity_type}:{r.entity_id}"[:34]
        lines.append(f"{r.severity:<9} {r.alert_type:<22} {entity:<34} {window:<33} {r.score:5.2f}  {r.summary}")
    return "\n".join(lines)
