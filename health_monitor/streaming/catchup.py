"""Catch-up mode: a first start over months of history scores the backlog with the batch path,
then hands over to the stream at a recorded offset (``stream start --catch-up``).

A plain first start feeds the whole history through the streaming query: every micro-batch pays
the stateful operator's state-store round trips, and each key's windows close only as the
watermark moves. The catch-up instead, per domain:

1. **plan**: records each source table's Delta version V and the backlog's newest event time M
   (its watermark W = M - the domain's delay) in ``<checkpoint>/hm_catchup/plan.json``, before
   anything is scored;
2. **score**: reads the tables *as of V* through the stream's own input builder and runs the
   stream's state function (:func:`~health_monitor.streaming.scoring.make_state_function`, as a
   black box) once per key with ``groupBy(key).applyInPandas`` and a stand-in GroupState whose
   watermark is W (:class:`BacklogState`). Windows ending by W close and are scored, in order, as
   the stream would close them; open ones stay in the key's state. The scored rows and each key's
   final state (:class:`~health_monitor.streaming.windows.KeyState` bytes) go to Parquet files in
   the catch-up folder (overwritten if this step reruns: it is deterministic);
3. **write**: hands the scored rows to the domain's own sink (:class:`BatchSink`) in chunks of
   whole keys, under txnAppId ``<app id>-catchup`` and txnVersion = chunk number: scores are
   appended once, alerts are upserted by their deterministic ids, so a rerun adds nothing;
4. **stream**: starts the query with Delta ``startingVersion = V + 1``, its input unioned with a
   file stream of the handed-over states (one row per key, event time M, the state bytes in
   column :data:`HANDOVER`). The state function loads a key's handed-over state on its first
   call (:func:`take_handover`); those rows reach the workers as input rows, through the
   query's offsets, so a restart replays them like any other input (Spark-Connect-safe: nothing
   is captured by a function).

The seam: windows ending by W were scored once, by the batch path; later ones close in the
stream, with everything the key learned in the backlog. The handover rows carry event time M, so
the stream's watermark starts where a plain stream's would be after the backlog: keys with no
rows after V still get their event-time timeout and their open windows close. Rows after V at or
behind W are late, as for a plain stream whose batch after the backlog has moved its watermark
to W: kept in ``monitor.late_rows`` (the sink's late floor), not scored.

Crash safety: each step records its end in the plan; ``stream start --catch-up`` resumes an
interrupted catch-up at its step (all writes idempotent), and a start without ``--catch-up``
refuses to run over an unfinished one. Once done, every later start (with or without the flag)
streams from V + 1 with the same sources, as the checkpoint requires.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from health_monitor import checkpoints, progress
from health_monitor.streaming import windows

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from health_monitor.runtime import Lakehouse

#: Column of the stream's input that carries a handed-over key state (null on data rows).
HANDOVER = "_hm_handover"
#: Scored rows per sink call while writing the backlog (whole keys per chunk).
CHUNK_ROWS = 200_000
_STATE_SCHEMA = "entity_type string, entity_id string, state binary"


class BacklogState:
    """The GroupState the batch path hands the stream's state function (and a test's stand-in).

    It starts empty, reports a fixed event-time watermark and keeps what the function stores;
    tests move ``watermark_ms`` between calls to play micro-batches.
    """

    def __init__(self, watermark_ms: int) -> None:
        self.watermark_ms = int(watermark_ms)
        self.blob: bytes | None = None
        self.timeout_ms: int | None = None

    @property
    def exists(self) -> bool:
        return self.blob is not None

    @property
    def get(self) -> tuple:
        if self.blob is None:
            raise ValueError("state is not set")
        return (self.blob,)

    @property
    def hasTimedOut(self) -> bool:  # noqa: N802 - GroupState's name
        return False

    def update(self, value: tuple) -> None:
        self.blob = value[0]

    def remove(self) -> None:
        self.blob = None

    def getCurrentWatermarkMs(self) -> int:  # noqa: N802 - GroupState's name
        return self.watermark_ms

    def setTimeoutTimestamp(self, ms: int) -> None:  # noqa: N802 - GroupState's name
        self.timeout_ms = int(ms)


def take_handover(pdfs: Iterator[pd.DataFrame]) -> tuple[windows.KeyState | None, Iterator[pd.DataFrame]]:
    """Split a key's input into the state a catch-up handed over (None if none) and its data rows.

    A stream without a catch-up has no :data:`HANDOVER` column and its chunks pass through
    unread. With one, the key's chunks are gathered first: the handed-over state must be loaded
    before any row is folded into the key's windows, whichever chunk it came in.
    """
    it = iter(pdfs)
    first = next(it, None)
    if first is None:
        return None, iter(())
    if HANDOVER not in first.columns:
        return None, chain([first], it)
    handed, data = None, []
    for pdf in chain([first], it):
        mark = pdf[HANDOVER].notna()
        if handed is None and mark.any():
            handed = windows.KeyState.loads(pdf.loc[mark, HANDOVER].iloc[0])
        data.append(pdf.loc[~mark].drop(columns=HANDOVER))
    return handed, iter(data)


def score_backlog_key(fn: Callable, key: tuple, rows: pd.DataFrame, watermark_ms: int) -> pd.DataFrame:
    """One key's backlog through the stream's state function, in one call at watermark W.

    Returns the function's rows (``score``/``prior``) plus one ``state`` row whose ``state``
    column holds the key's final state, in :data:`OUTPUT_COLUMNS` order plus ``state``.
    """
    from health_monitor.streaming.scoring import OUTPUT_COLUMNS

    st = BacklogState(watermark_ms)
    parts = [p for p in fn(key, iter([rows]), st) if p is not None and not p.empty]
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=OUTPUT_COLUMNS)
    out = out.reindex(columns=OUTPUT_COLUMNS)
    out["state"] = None
    if st.blob is None:
        return out
    row = pd.DataFrame([dict.fromkeys(OUTPUT_COLUMNS) | {
        "kind": "state", "entity_type": str(key[0]), "entity_id": str(key[1]), "state": st.blob}])
    return pd.concat([out, row], ignore_index=True) if not out.empty else row


def chunk_count(rows: int, per_chunk: int = CHUNK_ROWS) -> int:
    """How many sink calls write ``rows`` scored rows (at least one)."""
    return max(1, math.ceil(rows / per_chunk))


@dataclass
class CatchupPlan:
    """A domain's catch-up as recorded in its checkpoint folder (``hm_catchup/plan.json``)."""

    domain: str
    #: Delta version V of each source table that existed when the catch-up started.
    versions: dict[str, int]
    #: Newest event time of the backlog (epoch ms), None for an empty backlog.
    max_event_ms: int | None
    #: The backlog's watermark W: windows ending by it are the batch path's.
    watermark_ms: int
    #: planned -> scored -> done
    step: str = "planned"
    chunks: int = 0
    chunks_written: int = 0

    @property
    def late_floor_ms(self) -> int:
        """Rows after V at or behind this are late (a plain stream's watermark after the backlog)."""
        return self.watermark_ms if self.max_event_ms is not None else 0

    def stream_lake(self, lake: Lakehouse) -> Lakehouse:
        """``lake`` whose ``read_stream`` of a source table starts at V + 1."""
        return _VersionedGold(lake, self.versions, backlog=False)  # type: ignore[return-value]

    def with_handover(self, lake: Lakehouse, keyed: DataFrame) -> DataFrame:
        """The stream's keyed rows after V (late ones filtered as the plain stream's watermark
        would) unioned with one row per handed-over key state (event time M)."""
        from pyspark.sql import functions as F

        if self.max_event_ms is None:
            return keyed.withColumn(HANDOVER, F.lit(None).cast("binary"))
        folder = handover_dir(lake, self.domain)
        folder.mkdir(parents=True, exist_ok=True)
        data = (keyed.filter(F.col("event_time") > F.timestamp_millis(F.lit(self.watermark_ms)))
                .withColumn(HANDOVER, F.lit(None).cast("binary")))
        states = lake.spark.readStream.schema(_STATE_SCHEMA).parquet(str(folder))
        cols = []
        for f in keyed.schema.fields:
            if f.name in ("entity_type", "entity_id"):
                cols.append(F.col(f.name))
            elif f.name == "event_time":
                cols.append(F.timestamp_millis(F.lit(self.max_event_ms)).cast(f.dataType).alias(f.name))
            else:
                cols.append(F.lit(None).cast(f.dataType).alias(f.name))
        return data.unionByName(states.select(*cols, F.col("state").alias(HANDOVER)))


class _VersionedGold:
    """A lakehouse whose ``read_stream`` of a Gold source is cut at the plan's versions: a batch
    read as of V for the backlog, or a stream from V + 1. The input builders only read, so the
    backlog and the stream share one projection (as :mod:`health_monitor.features.windows`)."""

    def __init__(self, lake: Lakehouse, versions: dict[str, int], backlog: bool) -> None:
        self._lake = lake
        self._versions = versions
        self._backlog = backlog

    def __getattr__(self, name: str) -> Any:
        return getattr(self._lake, name)

    def read_stream(self, table: str, layer: str = "gold", **options: str) -> DataFrame:
        from pyspark.sql import functions as F

        lake, v = self._lake, self._versions.get(table) if layer == "gold" else None
        if not self._backlog:
            if v is not None:
                options = {**options, "startingVersion": str(v + 1)}
            return lake.read_stream(table, layer, **options)
        if v is None:  # created after the plan: none of its rows is in the backlog
            return lake.read(table, layer).limit(0)
        reader = lake.spark.read.format("delta").option("versionAsOf", str(v))
        df = (reader.table(lake.table_name(table, layer)) if lake.settings.is_databricks
              else reader.load(str(lake.location(table, layer))))
        if options.get("readChangeFeed") == "true":
            # The table as of V holds each row's version at V: every row reads as one insert.
            df = df.select("*", F.lit("insert").alias("_change_type"),
                           F.lit(None).cast("long").alias("_commit_version"),
                           F.lit(None).cast("timestamp").alias("_commit_timestamp"))
        return df


def _location(lake: Lakehouse, domain: str) -> Path:
    from health_monitor.streaming.query import query_name

    return checkpoints.checkpoint_location(lake.settings, query_name(domain))


def backlog_dir(lake: Lakehouse, domain: str) -> Path:
    """Parquet output of the batch path, partitioned by ``kind`` (score, prior, state)."""
    return checkpoints.catchup_dir(_location(lake, domain)) / "backlog"


def handover_dir(lake: Lakehouse, domain: str) -> Path:
    """The per-key states the stream reads as its handover source."""
    return backlog_dir(lake, domain) / "kind=state"


def load_plan(lake: Lakehouse, domain: str) -> CatchupPlan | None:
    """The domain's finished catch-up (None if it never had one); an unfinished one is an error."""
    raw = checkpoints.read_catchup_plan(_location(lake, domain))
    if raw is None:
        return None
    plan = CatchupPlan(**raw)
    if plan.step != "done":
        from health_monitor.errors import HealthMonitorError

        raise HealthMonitorError(
            f"the catch-up of the {domain} stream stopped at step '{plan.step}': run "
            f"'health-monitor stream start --catch-up' to finish it (or 'stream reset --domains {domain}')")
    return plan


def prepare(lake: Lakehouse, domain: str, rules: Any) -> CatchupPlan | None:
    """Run (or resume) a domain's catch-up up to the handover; None when the stream has already
    run without one (it simply resumes from its checkpoint)."""
    loc = _location(lake, domain)
    raw = checkpoints.read_catchup_plan(loc)
    if raw is None:
        last = checkpoints.last_offset_batch(loc)
        if last is not None:
            progress.info(f"{domain}: the stream has run before (batch {last}): no catch-up, it resumes")
            return None
        plan = _plan(lake, domain)
        checkpoints.write_catchup_plan(loc, asdict(plan))
    else:
        plan = CatchupPlan(**raw)
    if plan.step == "planned":
        _score(lake, plan)
        plan.step = "scored"
        checkpoints.write_catchup_plan(loc, asdict(plan))
    if plan.step == "scored":
        _write(lake, plan, rules)
        _mark_next_versions(lake, plan)
        plan.step = "done"
        checkpoints.write_catchup_plan(loc, asdict(plan))
        # The scored rows are in the monitor tables now; only the handed-over states stay.
        for part in backlog_dir(lake, domain).glob("kind=*"):
            if part.name != "kind=state":
                shutil.rmtree(part, ignore_errors=True)
    return plan


def _plan(lake: Lakehouse, domain: str) -> CatchupPlan:
    """Record V per source table, then the backlog's newest event time (read as of V)."""
    from pyspark.sql import functions as F

    from health_monitor.domains import spec
    from health_monitor.features.windows import watermark_ms

    dom = spec(domain)
    versions = {t: lake.latest_version(t) for t in dom.sources if lake.exists(t)}
    keyed = dom.open_input(_VersionedGold(lake, versions, backlog=True)).keyed  # type: ignore[arg-type]
    newest = keyed.agg(F.max(F.unix_millis(F.col("event_time").cast("timestamp")))).first()[0]
    wm = watermark_ms(domain, pd.Timestamp(int(newest), unit="ms")) if newest is not None else 0
    progress.info(f"{domain}: catch-up over {', '.join(f'{t} up to version {v}' for t, v in versions.items())}"
                  + (f", newest event {pd.Timestamp(int(newest), unit='ms')}" if newest is not None else ", empty"))
    return CatchupPlan(domain, versions, int(newest) if newest is not None else None, wm)


def _score(lake: Lakehouse, plan: CatchupPlan) -> None:
    """The batch path: every key's backlog through the stream's state function, to Parquet."""
    from health_monitor.domains import spec
    from health_monitor.streaming.scoring import OUTPUT_SCHEMA, make_state_function

    out = backlog_dir(lake, plan.domain)
    shutil.rmtree(out, ignore_errors=True)
    if plan.max_event_ms is None:
        return
    dom = spec(plan.domain)
    keyed = dom.open_input(_VersionedGold(lake, plan.versions, backlog=True)).keyed  # type: ignore[arg-type]
    fn, wm = make_state_function(plan.domain, dom.static_context(lake)), plan.watermark_ms

    def per_key(key: tuple, rows: pd.DataFrame) -> pd.DataFrame:
        return score_backlog_key(fn, key, rows, wm)

    scored = keyed.groupBy("entity_type", "entity_id").applyInPandas(per_key, OUTPUT_SCHEMA + ", state binary")
    scored.write.mode("overwrite").partitionBy("kind").parquet(str(out))


def _mark_next_versions(lake: Lakehouse, plan: CatchupPlan) -> None:
    """Make sure version V + 1 of every source table exists: a table property records the
    catch-up where no commit followed V.

    Delta refuses ``startingVersion`` beyond the latest version, ``"latest"`` would be resolved
    only when the query first runs (a commit landing in between would be skipped), and it skips
    an empty append. A property change adds no rows and keeps the schema, so streams reading the
    table go on.
    """
    for table, v in plan.versions.items():
        if lake.latest_version(table) <= v:
            with lake.writer_lock(table, "gold"):
                lake.spark.sql(f"ALTER TABLE {lake.table_name(table)} SET TBLPROPERTIES "
                               f"('health_monitor.catchup.{plan.domain}' = '{v}')")
            if lake.latest_version(table) <= v:
                from health_monitor.errors import HealthMonitorError

                raise HealthMonitorError(f"could not commit version {v + 1} of gold.{table} for the catch-up's handover")


def _write(lake: Lakehouse, plan: CatchupPlan, rules: Any) -> None:
    """The backlog's scores and alerts through the domain's sink, a chunk of whole keys at a time."""
    from pyspark.sql import functions as F

    from health_monitor.streaming.sink import BatchSink

    out = backlog_dir(lake, plan.domain)
    if plan.max_event_ms is None or not out.is_dir() or not any(out.glob("kind=*")):
        return
    rows = lake.spark.read.parquet(str(out)).filter(F.col("kind") != "state").drop("state")
    loc = _location(lake, plan.domain)
    if not plan.chunks:
        plan.chunks = chunk_count(rows.count())
        checkpoints.write_catchup_plan(loc, asdict(plan))
    sink = BatchSink(lake, plan.domain, rules)
    # Its own txnAppId: the stream's batch ids start again at 0 and must not look written.
    sink.app_id = f"{sink.app_id}-catchup"
    for i in range(plan.chunks_written, plan.chunks):
        part = rows.filter(F.pmod(F.hash("entity_type", "entity_id"), F.lit(plan.chunks)) == i)
        sink(part, i)
        plan.chunks_written = i + 1
        checkpoints.write_catchup_plan(loc, asdict(plan))
    t = sink.last.totals
    progress.info(f"{plan.domain}: catch-up wrote {t['windows']:,} windows' scores and {t['alerts']:,} alert rows "
                  f"in {plan.chunks} chunk(s); the stream starts after version(s) "
                  f"{', '.join(f'{k} {v}' for k, v in plan.versions.items())}")
