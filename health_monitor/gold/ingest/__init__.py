"""Validated ingest of system-table and Gold exports (CSV, JSON lines, Parquet) with a quarantine.

Files are parsed in Python (``csv``, ``json``, ``pyarrow``) rather than by Spark's readers so that
every rejected row keeps its exact line number and raw text: Spark's permissive modes lose both
for multi-line records and silently null out values of the wrong type. Each value is parsed to
its contract type (:mod:`health_monitor.gold.ddl`), then plausibility checks run per row. Rows
that fail go to ``monitor.quarantine`` with the reason; the good rows of the same file land.

Idempotency has two layers: ``monitor.ingest_log`` remembers (content hash, table) of every file
ingested, so the same bytes are skipped outright, and rows are written insert-only on the primary
key, so an overlapping export adds only the rows that are new (the others count as duplicates).

Conventions: timestamps are ISO-8601, taken as UTC when they carry no zone; an empty CSV cell is
null, and so are ``null``/``NULL``/``None``/``NaN`` in non-string columns; map, array and struct
cells of a CSV hold JSON text (quotes doubled as in RFC 4180, or backslash-escaped as Spark writes
them). ``row_number`` is the line where the row starts (the CSV header is line 1); for Parquet and
JSON arrays it is the 1-based row index. An empty file (no bytes, or only a header) is not an
error: it is reported as ``empty`` and ingests nothing.

A file-level problem (missing path, unreadable or mis-named file, missing required columns) is a
one-line :class:`~health_monitor.errors.HealthMonitorError`. All files are parsed before anything
is written, so such an error never leaves half an ingest behind.

The package follows the steps: :mod:`.read` (files to rows), :mod:`.validate` (values and rows
against the contract and the Gold types) and :mod:`.load` (the writes and the entry points).
"""

from health_monitor.gold.ingest.load import INGEST_LOG, IngestReport, ingest, ingest_paths, table_from_name
from health_monitor.gold.ingest.read import FORMATS, FileReport, _FileParser, _Parsed
from health_monitor.gold.ingest.validate import (
    GOLD_LIMITS,
    TIME_MAX,
    TIME_MIN,
    _RowValidator,
    enum_values,
    required_columns,
    resolve_table,
)

__all__ = [
    "FORMATS", "GOLD_LIMITS", "INGEST_LOG", "TIME_MAX", "TIME_MIN", "FileReport", "IngestReport", "_FileParser",
    "_Parsed", "_RowValidator", "enum_values", "ingest", "ingest_paths", "required_columns", "resolve_table",
    "table_from_name",
]
