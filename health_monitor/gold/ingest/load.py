"""Ingest, step 3: write the good rows (insert-only on the key), the quarantine and the ingest log;
and the entry points :func:`ingest` (one table) and :func:`ingest_paths` (a whole export)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pyspark.sql import types as T

from health_monitor import progress
from health_monitor.errors import HealthMonitorError
from health_monitor.gold.ddl import TableSpec, table
from health_monitor.gold.ingest.read import (
    FORMATS,
    FileReport,
    _content_hash,
    _FileParser,
    _list_files,
    _Parsed,
)
from health_monitor.gold.ingest.validate import _RowValidator, resolve_table
from health_monitor.gold.schemas import QUARANTINE

if TYPE_CHECKING:
    from health_monitor.runtime import Lakehouse


#: Remembers every file ingested, so re-ingesting the same bytes into the same table adds nothing.
INGEST_LOG = table(
    "ingest_log", "monitor",
    """
    content_hash string NOT NULL -- sha256 of the file's bytes
    table_name string NOT NULL -- layer-qualified target, e.g. system.billing.usage
    source_file string NOT NULL
    file_format string NOT NULL -- csv, json or parquet
    rows_read bigint
    rows_ingested bigint
    rows_quarantined bigint
    duplicates_skipped bigint
    ingested_at timestamp NOT NULL
    """,
    ["content_hash", "table_name"], "Files loaded by 'health-monitor ingest', keyed by content hash and table.",
)


@dataclass
class IngestReport:
    """Counts of one ``ingest`` call, in total and per file."""

    table: str
    layer: str
    files: list[FileReport]

    @property
    def ingested(self) -> int:
        return sum(f.ingested for f in self.files)

    @property
    def quarantined(self) -> int:
        return sum(f.quarantined for f in self.files)

    @property
    def duplicates_skipped(self) -> int:
        return sum(f.duplicates_skipped for f in self.files)

    @property
    def rows_read(self) -> int:
        return sum(f.rows_read for f in self.files)

    @property
    def qualified_table(self) -> str:
        return f"{self.layer}.{self.table}"

    @property
    def next_step(self) -> str | None:
        """What the user should run next, if anything."""
        if self.layer == "system" and self.ingested:
            return "run 'health-monitor build' to refresh the Gold layer from the new system-table rows"
        return None


# --------------------------------------------------------------------------- ingest
def ingest(lake: Lakehouse, path: str | Path | list[str | Path], table: str,
           file_format: str | None = None, encoding: str | None = None) -> IngestReport:
    """Load a CSV, JSON-lines or Parquet export (a file or a folder of files) into a table.

    Args:
        lake: the lakehouse to write to.
        path: a file, or a folder whose data files are all loaded (hidden and ``_``-prefixed
            skipped), or a list of such paths.
        table: a system table (``system.billing.usage`` or ``billing.usage``) or a Gold table
            (``fact_usage``); see :func:`resolve_table`.
        file_format: ``csv``, ``json`` or ``parquet``; default from each file's extension.
        encoding: text encoding of CSV and JSON files (default UTF-8), e.g. ``cp1252``.

    Returns:
        An :class:`IngestReport` with the counts per file and in total.

    Raises:
        HealthMonitorError: the path does not exist, a file is not in its claimed format, a file
            lacks a required column, or the table name is unknown. Nothing is written then.

    Rows that fail parsing or plausibility checks go to ``monitor.quarantine``
    (``row_number`` is the line number in the file, the CSV header being line 1; for Parquet and
    JSON arrays the 1-based row index). Files already ingested into this table (same bytes) are
    skipped, and rows whose primary key exists are counted as ``duplicates_skipped``.
    """
    if file_format is not None and file_format not in FORMATS:
        raise HealthMonitorError(f"unknown format {file_format!r}: use csv, json or parquet")
    spec = resolve_table(table)
    if encoding is not None:
        try:
            "".encode(encoding)
        except LookupError:
            raise HealthMonitorError(f"unknown encoding {encoding!r} (e.g. utf-8, cp1252, latin-1)") from None
    layer = spec.layer
    qualified = f"{layer}.{spec.name}"
    paths = path if isinstance(path, list) else [path]
    files = list(dict.fromkeys(f for p in paths for f in _list_files(Path(p).expanduser(), file_format)))

    hashes = {}
    with progress.step(f"hashing {len(files)} file(s)"):
        for p, _ in files:
            hashes[p] = _content_hash(p)
    done = _already_ingested(lake, qualified, set(hashes.values()))

    from pyspark.sql.pandas.types import to_arrow_schema

    validator = _RowValidator(spec)
    arrow_schema = to_arrow_schema(T.StructType([*spec.schema.fields, T.StructField("_file", T.IntegerType())]))
    seen: set[tuple] = set()
    parsed: list[_Parsed] = []
    reports: list[FileReport] = []
    hashes_this_call: set[str] = set()
    for p, fmt in files:
        digest = hashes[p]
        if digest in done or digest in hashes_this_call:
            when = done.get(digest)
            rep = FileReport(path=str(p), format=fmt, status="already ingested", content_hash=digest,
                             message=f"same content already ingested into {qualified}"
                                     + (f" on {when} UTC" if when else " earlier in this call"))
            reports.append(rep)
            progress.info(f"{p.name}: {rep.message}, skipped")
            continue
        hashes_this_call.add(digest)
        with progress.step(f"reading {p.name}"):
            result = _FileParser(spec, validator, arrow_schema, seen, len(parsed), p, fmt, encoding).parse()
        result.report.content_hash = digest
        parsed.append(result)
        reports.append(result.report)
        r = result.report
        progress.info(f"{p.name}: {r.rows_read:,} rows, {result.good:,} valid, {r.quarantined:,} quarantined")

    _write(lake, spec, parsed)
    return IngestReport(table=spec.name, layer=layer, files=reports)


def _already_ingested(lake: Lakehouse, qualified: str, hashes: set[str]) -> dict[str, str]:
    """Content hashes already loaded into ``qualified``, with when (UTC, as text)."""
    if not hashes or not lake.exists(INGEST_LOG.name, INGEST_LOG.layer):
        return {}
    from pyspark.sql import functions as F

    rows = (lake.read(INGEST_LOG.name, INGEST_LOG.layer)
            .where((F.col("table_name") == qualified) & F.col("content_hash").isin(sorted(hashes)))
            # Formatted by Spark in the session's UTC: collected timestamps would be process-local.
            .select("content_hash", F.date_format("ingested_at", "yyyy-MM-dd HH:mm").alias("at")).collect())
    return {r.content_hash: r.at for r in rows}


def _write(lake: Lakehouse, spec: TableSpec, parsed: list[_Parsed]) -> None:
    """Insert the good rows (insert-only on the key), then quarantine rows, then the ingest log."""
    import pyarrow as pa

    layer, qualified = spec.layer, f"{spec.layer}.{spec.name}"
    batches = [b for p in parsed for b in p.batches]
    total = sum(p.good for p in parsed)
    now = datetime.now(UTC)  # zone-aware: PySpark reads naive datetimes as process-local time
    if total:
        with progress.step(f"writing {total:,} rows to {qualified}"), lake.writer_lock(spec.name, layer):
            src = lake.spark.createDataFrame(pa.Table.from_batches(batches))
            existing: dict[int, int] = {}
            if not lake.exists(spec.name, layer):
                # First load: the source keys are unique, so creating the table from it is the
                # insert-only MERGE, without a separate empty commit and a join.
                lake.write(src.drop("_file"), spec.name, layer, mode="append",
                           partition_by=spec.partition_by or None)
            else:
                # Rows whose key is already in the table are not inserted: count them per file.
                target = lake.read(spec.name, layer).select(*spec.primary_key)
                cond = [src[k].eqNullSafe(target[k]) for k in spec.primary_key]
                existing = {r["_file"]: r["count"] for r in
                            src.join(target, cond, "left_semi").groupBy("_file").count().collect()}
                if sum(existing.values()) == total:
                    pass  # every key is already there: the insert-only MERGE would add nothing
                elif existing or lake.settings.is_databricks:
                    lake.merge(src.drop("_file"), spec.name, spec.primary_key, layer, update=False)
                else:
                    # No key exists and we hold the table's only writer lock: an append inserts
                    # exactly what the insert-only MERGE would, without its second join.
                    lake.write(src.drop("_file"), spec.name, layer, mode="append")
        for i, p in enumerate(parsed):
            dup = existing.get(i, 0)
            p.report.duplicates_skipped += dup
            p.report.ingested = p.good - dup

    # Tables keep the absolute path: the relative one a user typed means nothing a week later.
    quarantine = [
        (_quarantine_id(qualified, p.report.content_hash, n, reason), qualified, _absolute(p.report.path),
         n, raw, reason, now)
        for p in parsed for n, raw, reason in p.quarantine
    ]
    if quarantine:
        with progress.step(f"writing {len(quarantine):,} quarantined rows to monitor.quarantine"):
            df = lake.spark.createDataFrame(quarantine, QUARANTINE.schema)
            lake.merge(df, QUARANTINE.name, QUARANTINE.primary_key, QUARANTINE.layer, update=False)

    log = [(p.report.content_hash, qualified, _absolute(p.report.path), p.report.format, p.report.rows_read,
            p.report.ingested, p.report.quarantined, p.report.duplicates_skipped, now)
           for p in parsed if p.report.status != "empty"]
    if log:
        df = lake.spark.createDataFrame(log, INGEST_LOG.schema)
        lake.merge(df, INGEST_LOG.name, INGEST_LOG.primary_key, INGEST_LOG.layer, update=False)


def _absolute(path: str) -> str:
    return str(Path(path).resolve())


def _quarantine_id(qualified: str, content_hash: str, row_number: int, reason: str) -> str:
    """Deterministic, so a rerun after a crash between writes does not quarantine a row twice."""
    return hashlib.sha256(f"{qualified}|{content_hash}|{row_number}|{reason}".encode()).hexdigest()[:32]


# --------------------------------------------------------------------------- a whole export
def table_from_name(path: Path, root: Path | None = None) -> TableSpec | None:
    """The table a file's name announces (``system.billing.usage.jsonl``, ``billing.usage.csv.gz``,
    ``fact_usage.parquet``), else the name of a folder between it and ``root``
    (``system.billing.usage/part-0000.parquet``, as Spark writes exports); None when none does."""
    candidates = [path.name]
    parent = path.parent
    while True:  # the folders up to and including root (a lone file: its own folder)
        candidates.append(parent.name)
        if root is None or parent == root or root not in parent.parents:
            break
        parent = parent.parent
    for name in candidates:
        stem = name.lower().removesuffix(".gz")
        for exts in FORMATS.values():
            for ext in exts:
                stem = stem.removesuffix(ext)
        try:
            return resolve_table(stem)
        except HealthMonitorError:
            continue
    return None


def ingest_paths(lake: Lakehouse, paths: list[str | Path], table: str | None = None,
                 file_format: str | None = None, encoding: str | None = None) -> list[IngestReport]:
    """Ingest several files and folders in one call (one Spark session), each into its table.

    With ``table`` every file goes there. Without it each file's table comes from its name (see
    :func:`table_from_name`); a file whose name names no table is a one-line error that lists it,
    and nothing is written. Returns one :class:`IngestReport` per table, in order of first file.
    """
    if table is not None:
        return [ingest(lake, [Path(p) for p in paths], table, file_format, encoding)]
    groups: dict[str, list[Path]] = {}
    unnamed: list[str] = []
    for raw in paths:
        root = Path(raw).expanduser()
        for f, _fmt in _list_files(root, file_format):
            spec = table_from_name(f, root if root.is_dir() else None)
            if spec is None:
                unnamed.append(str(f))
            else:
                groups.setdefault(f"{spec.layer}.{spec.name}", []).append(f)
    if unnamed:
        shown = ", ".join(unnamed[:3]) + (f" and {len(unnamed) - 3} more" if len(unnamed) > 3 else "")
        raise HealthMonitorError(f"cannot tell the table of {shown} from the name: name files after their table "
                                 "(system.billing.usage.jsonl) or pass --table")
    return [ingest(lake, files, name, file_format, encoding) for name, files in groups.items()]
