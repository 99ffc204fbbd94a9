"""Shared machinery of the Gold builders: conform to a contract, upsert only what changed,
incremental reads (streams with checkpoints, batch reads with a watermark).

Every Gold write goes through :class:`GoldSink`, so every table is written with exactly its
contract's columns and types, reruns never duplicate, and the row counts the builders report are
rows that were really inserted or changed.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from pyspark.sql import Column
from pyspark.sql import functions as F

from health_monitor.gold.builders.quarantine import contract_casts, set_aside
from health_monitor.gold.ddl import TableSpec
from health_monitor.gold.schemas import GOLD_TABLES
from health_monitor.runtime import start_query

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from health_monitor.runtime import Lakehouse

def far_future() -> Column:
    """A timestamp later than any real one, for open-ended validity intervals."""
    return F.lit("9999-12-31 00:00:00").cast("timestamp")

#: Gold tables whose streams need their updates, not only new rows: a job run is inserted while
#: it runs and updated when its final row (with result_state) lands, so the reliability stream
#: reads this table's change data feed (inserts and update post-images).
CHANGE_FEED_TABLES = frozenset({"fact_job_run_timeline"})

_HASH = "_row_hash"
_NEW = "_is_new_key"


def conform(df: DataFrame, spec: TableSpec) -> DataFrame:
    """Select exactly the contract's columns, in contract order, cast to the contract's types.

    A builder that forgets a column is a bug, so a missing column raises instead of becoming null.
    """
    missing = [c for c in spec.column_names if c not in df.columns]
    if missing:
        raise ValueError(f"{spec.name}: builder output lacks contract columns {missing}")
    return df.select(*[F.col(c.name).cast(c.data_type).alias(c.name) for c in spec.columns])


def row_hash(columns: list[str]) -> Column:
    """A content hash of ``columns``; JSON first because Spark cannot hash map columns."""
    return F.sha2(F.to_json(F.struct(*[F.col(c) for c in columns])), 256)


def tag(col: str, key: str) -> Column:
    """``col[key]`` that is null (not an ANSI error) when the map lacks the key."""
    return F.expr(f"try_element_at(`{col}`, '{key}')")


def first_of(array_col: Column) -> Column:
    """First element of an array, null when the array is empty or null (ANSI-safe)."""
    return F.get(array_col, 0)


@dataclass
class GoldSink:
    """Writes one Gold table: conformed, de-duplicated on the primary key, changed rows only."""

    lake: Lakehouse
    spec: TableSpec
    #: Compare and MERGE only in the partitions of the new rows. Only right when a key's partition
    #: value never changes (a billing record's date); a run's date can (an earlier row arrives late).
    prune_partitions: bool = True
    def version(self) -> int:
        """The table's latest Delta version (-1 while it does not exist)."""
        return self.lake.latest_version(self.spec.name, "gold") if self.exists else -1

    @property
    def _name(self) -> str:
        return self.lake.table_name(self.spec.name, "gold")

    def committed_rows(self, since: int) -> int:
        """Rows inserted or changed by the table's commits after version ``since``, from Delta's history.

        A streaming builder's upserts run inside its ``foreachBatch`` function, which Spark
        Connect executes in a server-side Python worker: a counter kept on this object there never
        comes back to the caller, the table's commit metrics do (both runtimes, same numbers).
        """
        if not self.exists:
            return 0
        history = (self.lake.spark.sql(f"DESCRIBE HISTORY {self._name}")
                   .filter(F.col("version") > since)
                   .select("operation", "operationMetrics").collect())
        total = 0
        for row in history:
            m = row["operationMetrics"] or {}
            if row["operation"] == "MERGE":
                total += int(m.get("numTargetRowsInserted", 0)) + int(m.get("numTargetRowsUpdated", 0))
            elif row["operation"] in ("WRITE", "STREAMING UPDATE"):
                total += int(m.get("numOutputRows", 0))
        return total

    @property
    def exists(self) -> bool:
        return self.lake.exists(self.spec.name, "gold")

    def read(self) -> DataFrame:
        return self.lake.read(self.spec.name, "gold")

    def upsert(self, df: DataFrame) -> int:
        """MERGE the rows of ``df`` that are new or differ from the table; return how many."""
        spec, keys = self.spec, self.spec.primary_key
        # A value the contract's types cannot hold is set aside, not allowed to fail the batch.
        df = set_aside(self.lake, df, spec.name, contract_casts(df, spec), f"build input of gold.{spec.name}")
        rows = conform(df, spec)
        prune = None
        exists = self.exists
        if exists:
            rows = rows.dropDuplicates(keys)
            current = self.read()
            if spec.partition_by and self.prune_partitions:
                # New rows usually touch a few recent partitions: compare and MERGE only those.
                where = self._partitions(rows)
                current = current.filter(where) if where else current.limit(0)
                prune = f"t.{where}" if where else None
            # Unchanged rows are dropped before MERGE: reruns rewrite nothing and report 0.
            current = current.select(
                *[F.col(k).alias(f"_t_{k}") for k in keys], row_hash(spec.column_names).alias("_t_hash")
            )
            rows = rows.withColumn(_HASH, row_hash(spec.column_names))
            on_key = [rows[k].eqNullSafe(current[f"_t_{k}"]) for k in keys]
            rows = (rows.join(current, on_key, "left")
                    .filter(current["_t_hash"].isNull() | (rows[_HASH] != current["_t_hash"]))
                    .select(*[rows[c] for c in spec.column_names], current["_t_hash"].isNull().alias(_NEW)))
        elif spec.partition_by:
            # First build of a partitioned table: one file per partition, not one per task. A key
            # lives in one partition, so de-duplicating on (partition, key) needs no second shuffle.
            rows = rows.repartition(*spec.partition_by).dropDuplicates([*spec.partition_by, *keys])
        else:
            rows = rows.dropDuplicates(keys)
        if not exists:
            # Written straight through: counting first would compute (or cache) the rows twice.
            self._create()
            self.lake.write(rows, spec.name, "gold", mode="append")
            return self.lake.last_commit_rows(spec.name, "gold")
        rows = rows.persist()
        try:
            n_new, n = (int(v or 0) for v in rows.agg(
                F.sum(F.col(_NEW).cast("int")), F.count(F.lit(1))).first())
            # New keys go in an insert-only commit and changed keys in a separate MERGE:
            # streams read Gold with skipChangeCommits, which skips a whole commit that
            # updates anything, so new rows must never share a commit with updates.
            if n_new:
                self.lake.write(rows.filter(F.col(_NEW)).drop(_NEW), spec.name, "gold", mode="append")
            if n > n_new:
                self.lake.merge(rows.filter(~F.col(_NEW)).drop(_NEW), spec.name, keys, "gold",
                                target_filter=prune)
        finally:
            rows.unpersist()
        return n


    def _create(self) -> None:
        """Create the empty table from the contract, so Delta enforces its NOT NULL columns.

        DDL rather than writing an empty DataFrame: a metadata-only commit, no Spark job.
        File statistics only on the contract's ``stats_columns`` (time and key), see there.
        """
        spec = self.spec
        cols = ", ".join(
            f"`{f.name}` {f.dataType.simpleString()}{'' if f.nullable else ' NOT NULL'}" for f in spec.schema.fields
        )
        parts = f" PARTITIONED BY ({', '.join(spec.partition_by)})" if spec.partition_by else ""
        props = dict(spec.stats_properties)
        if spec.name in CHANGE_FEED_TABLES:
            props["delta.enableChangeDataFeed"] = "true"
        props = " TBLPROPERTIES (" + ", ".join(f"'{k}' = '{v}'" for k, v in props.items()) + ")"
        with self.lake.writer_lock(spec.name, "gold"):
            self.lake.spark.sql(
                f"CREATE TABLE IF NOT EXISTS {self.lake.table_name(spec.name, 'gold')} ({cols}) USING DELTA{parts}{props}"
            )

    def _partitions(self, rows: DataFrame, alias: str = "") -> str | None:
        """``<part> IN (...)`` over the partition values of ``rows`` (None when there are none)."""
        (part,) = self.spec.partition_by  # Gold tables partition by one date column
        values = sorted(r[0] for r in rows.select(part).distinct().collect() if r[0] is not None)
        if not values:
            return None
        dates = ", ".join("DATE'" + v.isoformat() + "'" for v in values)
        return f"{alias}`{part}` IN ({dates})"


def gold_sink(lake: Lakehouse, name: str, prune_partitions: bool = True) -> GoldSink:
    """The sink of Gold table ``name``."""
    return GoldSink(lake, GOLD_TABLES[name], prune_partitions=prune_partitions)


# ---------------------------------------------------------------------------- incremental state
def state_dir(lake: Lakehouse, table: str) -> Path:
    """Checkpoint folder of one Gold table's build (stream checkpoint or batch watermark)."""
    return lake.settings.checkpoint_dir / "gold" / table


def reset_state(lake: Lakehouse, table: str) -> None:
    """Forget what was processed for ``table`` so the next build starts from the beginning."""
    shutil.rmtree(state_dir(lake, table), ignore_errors=True)


class SourceRewritten(Exception):
    """A system table was rewritten (not appended to) since the last build of a Gold table."""


#: Delta's errors for a streaming source commit that updates or deletes rows.
_REWRITE_ERRORS = ("DELTA_SOURCE_TABLE_IGNORE_CHANGES", "DELTA_SOURCE_IGNORE_DELETE")


def run_stream(lake: Lakehouse, source: str, table: str, handle: Callable[[DataFrame], None]) -> None:
    """Process the rows of system table ``source`` not yet seen by ``table``'s build.

    ``readStream`` + ``trigger(availableNow=True)`` + ``foreachBatch``: every new row once,
    including rows that arrive late with old event times, with the checkpoint as the only state.
    On Databricks ``skipChangeCommits``: system tables delete rows past retention, which is not
    news for Gold. Locally a rewritten system table (a new simulation, an overwrite) means its
    history changed: that raises :class:`SourceRewritten` so the caller rebuilds from scratch.
    """
    from pyspark.errors import StreamingQueryException

    checkpoint = state_dir(lake, table) / "stream"
    options = {"skipChangeCommits": "true"} if lake.settings.is_databricks else {}
    query = start_query(
        lake.read_stream(source, "system", **options)
        .writeStream.foreachBatch(lambda batch, _batch_id: handle(batch))
        .option("checkpointLocation", str(checkpoint))
        .trigger(availableNow=True)
        .queryName(f"gold_{table}")
    )
    try:
        query.awaitTermination()
    except StreamingQueryException as exc:
        if any(code in str(exc) for code in _REWRITE_ERRORS):
            raise SourceRewritten(f"system.{source} was rewritten since {table} was last built") from None
        raise


@dataclass
class Watermark:
    """High-water mark of a batch source's change time, kept beside the stream checkpoints.

    Non-streamable system tables (query.history, data-quality results, schema snapshots) are read
    from ``watermark - lookback`` on: rows updated or delivered late within the lookback are
    picked up again and the upsert keeps the newest version of each. The mark is stored as the
    session-time-zone (UTC) text Spark produced, so no Python time zone gets involved.
    """

    lake: Lakehouse
    table: str
    lookback: timedelta = field(default_factory=lambda: timedelta(days=2))

    @property
    def path(self) -> Path:
        return state_dir(self.lake, self.table) / "watermark.json"

    def value(self) -> str | None:
        if not self.path.exists():
            return None
        return json.loads(self.path.read_text()).get("watermark")

    def lower_bound(self) -> Column | None:
        """``watermark - lookback`` as a Spark timestamp, or None for a full read."""
        value = self.value()
        if not value:
            return None
        return F.expr(f"timestamp'{value}' - INTERVAL {int(self.lookback.total_seconds())} SECONDS")

    def advance(self, df: DataFrame, change_col: str = "_change_time") -> None:
        """Move the mark to the latest change time in ``df`` (never backwards)."""
        latest = df.select(F.date_format(F.max(change_col), "yyyy-MM-dd HH:mm:ss.SSSSSS")).first()[0]
        old = self.value()
        if latest is None or (old is not None and latest <= old):
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps({"watermark": latest}))


def read_since(lake: Lakehouse, source: str, table: str, change_time: Column,
               lookback: timedelta | None = None) -> tuple[DataFrame, Watermark]:
    """Rows of batch source ``source`` changed since ``table``'s watermark (minus the lookback).

    The rows carry their change time as ``_change_time``; call ``Watermark.advance`` on them
    after a successful write.
    """
    mark = Watermark(lake, table, lookback or timedelta(days=2))
    df = lake.read(source, "system").withColumn("_change_time", change_time)
    bound = mark.lower_bound()
    if bound is not None:
        df = df.filter(F.col("_change_time") >= bound)
    return df, mark


def versions(df: DataFrame, keys: list[str], change_time: str) -> DataFrame:
    """SCD2 versions from a change log: one version per change, closed by the next change."""
    from pyspark.sql import Window

    df = df.dropDuplicates([*keys, change_time])
    w = Window.partitionBy(*keys).orderBy(change_time)
    nxt = F.lead(change_time).over(w)
    return (
        df.withColumn("effective_from", F.col(change_time))
        .withColumn("effective_to", nxt)
        .withColumn("is_current", nxt.isNull())
    )
