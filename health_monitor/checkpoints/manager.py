"""Where each streaming query keeps its checkpoint, and what can be done with one.

A query's checkpoint holds Spark's offset and commit logs *and* its state store, and the state
store holds each key's online-model state (detector bytes plus rolling baselines). Keeping the
models inside the state store is what makes them consistent with the offsets: a restart resumes
from the last committed batch with exactly the model state that batch produced, never a newer or
older one.

Besides Spark's files, a checkpoint folder holds two small files of ours:

* ``hm_app_id``: the Delta ``txnAppId`` the query's idempotent sink writes use. A reset deletes
  the checkpoint and draws a new one, so restarted batch ids (which start again at 0) are never
  mistaken for batches the old query already wrote.
* ``hm_status.json``: the last micro-batch as the running process saw it, for ``stream status``.
* ``hm_catchup/``: a first start's catch-up (``stream start --catch-up``): ``plan.json`` records
  each source table's Delta version V and how far the batch scoring of the backlog got; the
  folder also holds the backlog's scored rows and the per-key state handed to the stream
  (:mod:`health_monitor.streaming.catchup`). A reset deletes it with the rest.
* ``hm_layout.json``: how the query's state store is keyed (``per-key``: a row per entity;
  ``bucketed``: a row per bucket of entities, with the bucket count), written before the query
  first runs and read on every start: a state store can only be read with the layout that wrote
  it. A checkpoint that ran before layouts were recorded is ``per-key``.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from health_monitor.errors import HealthMonitorError
from health_monitor.settings import Settings

APP_ID_FILE = "hm_app_id"
STATUS_FILE = "hm_status.json"
CATCHUP_DIR = "hm_catchup"
CATCHUP_PLAN = "plan.json"
BACKUP_DIR = "checkpoint-backups"
LAYOUT_FILE = "hm_layout.json"
#: State layouts of the scoring operator (:mod:`health_monitor.streaming.bucketed`).
LAYOUTS = ("per-key", "bucketed")


def checkpoint_root(settings: Settings) -> Path:
    """Folder holding every query's checkpoint.

    Locally ``<data dir>/checkpoints``; on Databricks a Unity Catalog Volume of the monitor schema
    (``/Volumes/<catalog>/<monitor schema>/checkpoints``), which survives cluster restarts.
    """
    if settings.is_databricks:
        return Path("/Volumes") / settings.catalog / settings.schemas["monitor"] / "checkpoints"
    return settings.checkpoint_dir


def checkpoint_location(settings: Settings, query_name: str) -> Path:
    """The checkpoint folder of one query (its state store lives inside, under ``state/``)."""
    if not query_name or "/" in query_name or query_name.startswith("."):
        raise HealthMonitorError(f"invalid stream query name {query_name!r}")
    return checkpoint_root(settings) / query_name


def app_id(settings: Settings, query_name: str) -> str:
    """The query's Delta ``txnAppId``, created on first use and kept until a reset."""
    loc = checkpoint_location(settings, query_name)
    path = loc / APP_ID_FILE
    if path.exists():
        return path.read_text().strip()
    loc.mkdir(parents=True, exist_ok=True)
    new = f"health-monitor-{query_name}-{uuid.uuid4().hex[:12]}"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(new)
    os.replace(tmp, path)  # atomic: two starters never see half an id
    return new


def _batch_ids(folder: Path) -> list[int]:
    if not folder.is_dir():
        return []
    return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit())


def last_offset_batch(location: Path) -> int | None:
    """Highest batch id Spark planned (wrote to ``offsets/``), or None."""
    ids = _batch_ids(location / "offsets")
    return ids[-1] if ids else None


def last_committed_batch(location: Path) -> int | None:
    """Highest batch id Spark finished (wrote to ``commits/``), or None."""
    ids = _batch_ids(location / "commits")
    return ids[-1] if ids else None


def batch_watermark_ms(location: Path, batch_id: int) -> int:
    """The event-time watermark (epoch ms) Spark recorded in the offset log for ``batch_id``.

    0 before any watermark exists. The offset file's second line is JSON metadata with
    ``batchWatermarkMs``; it is written before the batch runs, so a replayed batch reads the same.
    """
    if batch_id < 0:
        return 0
    path = location / "offsets" / str(batch_id)
    if not path.exists():
        return 0
    lines = path.read_text().splitlines()
    if len(lines) < 2:
        return 0
    try:
        return int(json.loads(lines[1]).get("batchWatermarkMs", 0))
    except (ValueError, AttributeError):
        return 0


def late_event_watermark_ms(location: Path, batch_id: int) -> int:
    """The watermark below which Spark drops input rows of ``batch_id`` as late.

    Since Spark 3.4 (multiple stateful operators) the first stateful operator filters late rows
    against the *previous* batch's watermark and evicts state with the current one, so rows with
    event time <= this value were dropped from the batch (and counted in numRowsDroppedByWatermark).
    """
    return batch_watermark_ms(location, batch_id - 1)


@dataclass(frozen=True)
class CheckpointInfo:
    """What ``stream status`` and ``list_checkpoints`` report for one query."""

    query_name: str
    location: Path
    app_id: str | None
    last_batch: int | None
    last_committed: int | None
    watermark: datetime | None
    size_bytes: int
    status: dict
    layout: dict | None = None

    @property
    def in_flight(self) -> bool:
        """A planned batch that has not committed (running now, or killed mid-batch)."""
        return self.last_batch is not None and self.last_batch != self.last_committed


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def read_status(location: Path) -> dict:
    """The last status the running stream wrote for this query ({} if none)."""
    path = location / STATUS_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _replace_json(path: Path, data: dict) -> None:
    """Replace a small JSON file atomically (readers never see half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, default=str, indent=1))
    os.replace(tmp, path)


def write_status(location: Path, status: dict) -> None:
    """Replace the query's status file atomically (readers never see half a file)."""
    _replace_json(location / STATUS_FILE, status)


def read_layout(location: Path) -> dict | None:
    """The state layout recorded in a checkpoint (``{"layout": ..., "buckets": ...}``), or None:
    none recorded yet, or (``layout`` ``per-key`` implied) a checkpoint from before layouts were."""
    path = location / LAYOUT_FILE
    if not path.exists():
        return {"layout": "per-key", "recorded": False} if last_offset_batch(location) is not None else None
    try:
        rec = json.loads(path.read_text())
    except ValueError as exc:
        raise HealthMonitorError(f"unreadable state layout {path}: {exc}; 'stream reset' the domain") from exc
    if rec.get("layout") not in LAYOUTS or (rec["layout"] == "bucketed" and int(rec.get("buckets", 0)) < 1):
        raise HealthMonitorError(f"unknown state layout {rec!r} in {path}; expected one of {', '.join(LAYOUTS)}")
    return rec


def state_layout(location: Path, new: dict) -> dict:
    """The query's state layout: the one recorded in its checkpoint, ``per-key`` for a checkpoint
    that ran before layouts were recorded, else ``new``; recorded before the query runs."""
    rec = read_layout(location)
    if rec is not None and rec.get("recorded", True):
        return rec
    rec = {"layout": "per-key"} if rec is not None else dict(new)
    if rec.get("layout") not in LAYOUTS:
        raise HealthMonitorError(f"unknown state layout {rec.get('layout')!r}; expected one of {', '.join(LAYOUTS)}")
    _replace_json(location / LAYOUT_FILE, rec)
    return rec


def catchup_dir(location: Path) -> Path:
    """The folder of a query's first-start catch-up (plan, backlog scores, handed-over state)."""
    return location / CATCHUP_DIR


def read_catchup_plan(location: Path) -> dict | None:
    """The query's catch-up plan (see :mod:`health_monitor.streaming.catchup`), or None if none."""
    path = catchup_dir(location) / CATCHUP_PLAN
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise HealthMonitorError(f"unreadable catch-up plan {path}: {exc}; 'stream reset' the domain") from exc


def write_catchup_plan(location: Path, plan: dict) -> None:
    """Record the query's catch-up plan atomically (each step of the catch-up rewrites it)."""
    _replace_json(catchup_dir(location) / CATCHUP_PLAN, plan)


def checkpoint_info(settings: Settings, query_name: str) -> CheckpointInfo:
    """Describe one query's checkpoint (it need not exist yet)."""
    loc = checkpoint_location(settings, query_name)
    app = (loc / APP_ID_FILE).read_text().strip() if (loc / APP_ID_FILE).exists() else None
    last = last_offset_batch(loc)
    wm_ms = batch_watermark_ms(loc, last) if last is not None else 0
    wm = datetime.fromtimestamp(wm_ms / 1000, UTC) if wm_ms else None
    return CheckpointInfo(query_name, loc, app, last, last_committed_batch(loc), wm,
                          _size(loc) if loc.exists() else 0, read_status(loc), read_layout(loc))


def list_checkpoints(settings: Settings) -> list[CheckpointInfo]:
    """Every query checkpoint under the checkpoint root, by name."""
    root = checkpoint_root(settings)
    if not root.is_dir():
        return []
    return [checkpoint_info(settings, p.name) for p in sorted(root.iterdir())
            if p.is_dir() and not p.name.startswith(".")]


def backup_checkpoint(settings: Settings, query_name: str) -> Path:
    """Copy a query's checkpoint (offsets, commits, state store, app id) next to the root.

    Take it while the stream is stopped: a copy of a running checkpoint may hold a half batch.
    """
    loc = checkpoint_location(settings, query_name)
    if not loc.is_dir():
        raise HealthMonitorError(f"no checkpoint for stream query {query_name!r} at {loc}")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    dest = checkpoint_root(settings).parent / BACKUP_DIR / f"{query_name}-{stamp}"
    shutil.copytree(loc, dest)
    return dest


def restore_checkpoint(settings: Settings, query_name: str, backup: Path) -> Path:
    """Put a backup back in place of the query's checkpoint (the stream must be stopped)."""
    backup = Path(backup)
    if not (backup / "offsets").is_dir() and not (backup / APP_ID_FILE).exists():
        raise HealthMonitorError(f"{backup} is not a stream checkpoint backup")
    loc = checkpoint_location(settings, query_name)
    shutil.rmtree(loc, ignore_errors=True)
    shutil.copytree(backup, loc)
    return loc


def reset_checkpoint(settings: Settings, query_name: str) -> str:
    """Forget a query's progress and learned state; returns the new txnAppId.

    The next start reprocesses its sources from the beginning with fresh online models. A new
    app id is required: the old one has batch ids recorded in the sink tables' Delta logs, and
    reusing it would make the restarted query's batch 0, 1, ... look already written.
    """
    loc = checkpoint_location(settings, query_name)
    shutil.rmtree(loc, ignore_errors=True)
    return app_id(settings, query_name)
