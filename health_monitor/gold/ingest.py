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
"""

from __future__ import annotations

import csv
import difflib
import gzip
import hashlib
import io
import json
import math
import re
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyspark.sql import types as T

from health_monitor import progress
from health_monitor.errors import HealthMonitorError
from health_monitor.gold.builders.quarantine import PRICE_COST_CASTS, USAGE_COST_CASTS
from health_monitor.gold.ddl import TableSpec, table
from health_monitor.gold.schemas import GOLD_TABLES, QUARANTINE
from health_monitor.gold.system_schemas import SYSTEM_TABLES

if TYPE_CHECKING:
    import pyarrow as pa

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

#: Extensions per format; ``.gz`` on top of a text format is read through gzip.
FORMATS: dict[str, tuple[str, ...]] = {
    "csv": (".csv", ".tsv"),
    "json": (".jsonl", ".json", ".ndjson"),
    "parquet": (".parquet", ".pq"),
}

#: Plausible event times: anything outside is a sentinel (9999-12-31) or a unit mix-up.
TIME_MIN = datetime(2000, 1, 1)
TIME_MAX = datetime(2100, 1, 1)

#: (start, end) column pairs where an end before its start is impossible.
_TIME_PAIRS = [
    ("usage_start_time", "usage_end_time"),
    ("period_start_time", "period_end_time"),
    ("start_time", "end_time"),
    ("price_start_time", "price_end_time"),
    ("effective_from", "effective_to"),
    ("start_date", "end_date"),
]

#: System columns the Gold build converts to narrower types than the system contract: a value
#: that does not fit is quarantined here, at ingest, instead of being set aside at every build.
GOLD_LIMITS: dict[str, dict[str, str]] = {"billing.usage": USAGE_COST_CASTS, "billing.list_prices": PRICE_COST_CASTS}

_BATCH_ROWS = 50_000  # good rows per Arrow batch: bounds the Python objects alive at once
_RAW_TEXT_MAX = 10_000  # a runaway quoted field can swallow a whole file; keep quarantine rows small
_SNIFF_BYTES = 8192
_MAGIC = [
    (b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
    (b"%PDF", "a PDF document"), (b"PK\x03\x04", "a ZIP archive (an .xlsx workbook?)"),
    (b"PAR1", "a Parquet file"), (b"\x1f\x8b", "a gzip archive"),
]
_ENUM_RE = re.compile(r"^[A-Za-z0-9_]+(\s*\|\s*[A-Za-z0-9_]+)+$")
#: Columns whose ``A | B | C`` comment is a list Databricks documents as fixed. Other listed
#: values vary by cloud (availability: SPOT_AZURE, PREEMPTIBLE_GCP) or grow (workspace status,
#: lineage entity_type), so enforcing them would quarantine real rows.
_CLOSED_ENUMS = {"record_type", "run_type", "audit_level", "warehouse_type", "event_type", "is_nullable",
                 "sla_type", "job_id_source"}
_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}
_NULL_WORDS = {"null", "NULL", "None", "NaN", "nan"}

#: One decoder for every cell and line: json.loads would build a new one per call. Floats become
#: Decimal so decimal(38,18) quantities keep every digit.
_JSON = json.JSONDecoder(parse_float=Decimal)

csv.field_size_limit(64 * 1024 * 1024)  # statement_text and request_params cells can be large


# --------------------------------------------------------------------------- reports
@dataclass
class FileReport:
    """What happened to one file.

    Attributes:
        path: the file.
        format: ``csv``, ``json`` or ``parquet``.
        status: ``ingested``, ``already ingested`` (same bytes seen before for this table) or ``empty``.
        rows_read: data rows (or JSON lines) read, blank lines excluded.
        ingested: rows added to the table.
        quarantined: rows written to ``monitor.quarantine``.
        duplicates_skipped: rows whose primary key already existed or repeated an earlier row.
        extra_columns: columns in the file that the contract does not have (ignored).
        missing_optional_columns: nullable contract columns absent from the file (left null).
        samples: up to five ``(row_number, reason)`` of quarantined rows, for the summary.
        message: a note for the user (why a file was skipped).
        content_hash: sha256 of the file's bytes.
    """

    path: str
    format: str
    status: str = "ingested"
    rows_read: int = 0
    ingested: int = 0
    quarantined: int = 0
    duplicates_skipped: int = 0
    extra_columns: list[str] = field(default_factory=list)
    missing_optional_columns: list[str] = field(default_factory=list)
    samples: list[tuple[int, str]] = field(default_factory=list)
    message: str = ""
    content_hash: str = ""


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


# --------------------------------------------------------------------------- table names
def resolve_table(name: str) -> TableSpec:
    """The contract for ``--table``: ``system.billing.usage``, ``billing.usage``, ``fact_usage``, ``gold.fact_usage``.

    An unknown name is a one-line error that lists the closest known names.
    """
    raw = name.strip()
    key = raw.lower().strip("`")
    if key.startswith("system.") and key[len("system."):] in SYSTEM_TABLES:
        return SYSTEM_TABLES[key[len("system."):]]
    if key in SYSTEM_TABLES:
        return SYSTEM_TABLES[key]
    if key.startswith("gold."):
        key = key[len("gold."):]
    if key in GOLD_TABLES:
        return GOLD_TABLES[key]
    known = [f"system.{n}" for n in SYSTEM_TABLES] + list(GOLD_TABLES)
    close = difflib.get_close_matches(key, known, n=5, cutoff=0.5)
    close += [k for k in known if key and key in k and k not in close]
    hint = f"did you mean {', '.join(close[:5])}?" if close else f"known tables: {', '.join(known)}"
    raise HealthMonitorError(f"unknown table {raw!r}: {hint}")


def required_columns(spec: TableSpec) -> list[str]:
    """Columns a file must have and rows must fill: NOT NULL columns and the primary key.

    A primary-key column whose contract comment documents a null meaning (commit_configurations'
    ``workspace_id`` is null for the account-wide commit) stays optional.
    """
    return [c.name for c in spec.columns
            if not c.nullable or (c.name in spec.primary_key and "null" not in c.comment.lower())]


def enum_values(spec: TableSpec) -> dict[str, set[str]]:
    """Enforced value lists: the contract comment's ``A | B | C`` for the columns Databricks fixes.

    The values come from the contract, so they change in one place. Lists ending in ``...``
    (trigger_type, sku_category), columns without a list (result_state, termination_code) and lists
    that grow or vary by cloud are not enforced: rejecting a new value would drop real rows.
    """
    out: dict[str, set[str]] = {}
    for c in spec.columns:
        text = c.comment.strip()
        if c.name in _CLOSED_ENUMS and c.type == "string" and _ENUM_RE.match(text):
            out[c.name] = {v.strip() for v in text.split("|") if v.strip().lower() != "null"}
    return out


# --------------------------------------------------------------------------- value parsing
class _Bad(Exception):
    """A value that does not parse to its column type (message: the problem, no column name)."""


def _show(v: Any) -> str:
    text = repr(v) if isinstance(v, str) else str(v)
    return text if len(text) <= 60 else text[:57] + "..."


def _from_json_text(v: Any, what: str) -> Any:
    """CSV cells hold nested values as JSON text; JSON and Parquet hold them natively."""
    if not isinstance(v, str):
        return v
    try:
        return _decode_json(v)
    except ValueError:
        raise _Bad(f"{_show(v)} is not valid JSON for {what}") from None


def _decode_json(text: str) -> Any:
    """``json.loads`` without its per-call decoder and whitespace regex (hot: every nested cell)."""
    try:
        obj, end = _JSON.raw_decode(text)
    except ValueError:
        return _JSON.decode(text)  # leading whitespace, or a real error with the usual message
    if end != len(text) and text[end:].strip():
        return _JSON.decode(text)  # raises 'Extra data' with its position
    return obj


def _converter(dt: T.DataType) -> Callable[[Any], Any]:
    """A function that parses one value to the Python value Arrow expects for ``dt``, or raises _Bad."""
    if isinstance(dt, T.StringType):
        def conv_str(v: Any) -> Any:
            if isinstance(v, str):
                return v
            if isinstance(v, bool):
                return "true" if v else "false"
            if isinstance(v, int | Decimal | float):
                return str(v)  # numeric ids (workspace_id) arrive as JSON numbers
            if isinstance(v, dict | list):
                return json.dumps(v, default=str, separators=(",", ":"))
            if isinstance(v, datetime | date):
                return v.isoformat()
            if isinstance(v, bytes):
                return v.decode("utf-8", errors="replace")
            raise _Bad(f"{_show(v)} is not a string")
        return conv_str
    if isinstance(dt, T.LongType | T.IntegerType | T.ShortType | T.ByteType):
        bits = {T.LongType: 64, T.IntegerType: 32, T.ShortType: 16, T.ByteType: 8}[type(dt)]
        lo, hi, name = -(1 << (bits - 1)), (1 << (bits - 1)) - 1, dt.simpleString()

        def conv_int(v: Any) -> Any:
            if isinstance(v, bool):
                raise _Bad(f"{_show(v)} is not a {name}")
            if isinstance(v, int):
                n = v
            else:
                try:
                    d = Decimal(v.strip()) if isinstance(v, str) else Decimal(v)
                except (InvalidOperation, TypeError, ValueError):
                    raise _Bad(f"{_show(v)} is not a {name}") from None
                if not d.is_finite() or d != d.to_integral_value():
                    raise _Bad(f"{_show(v)} is not a {name}")
                n = int(d)  # '12.0' from pandas exports of columns with nulls
            if not lo <= n <= hi:
                raise _Bad(f"{n} is out of range for {name}")
            return n
        return conv_int
    if isinstance(dt, T.DoubleType | T.FloatType):
        def conv_float(v: Any) -> Any:
            if isinstance(v, bool):
                raise _Bad(f"{_show(v)} is not a number")
            try:
                f = float(v.strip() if isinstance(v, str) else v)
            except (TypeError, ValueError):
                raise _Bad(f"{_show(v)} is not a number") from None
            if not math.isfinite(f):
                raise _Bad(f"{_show(v)} is not a finite number")
            return f
        return conv_float
    if isinstance(dt, T.DecimalType):
        prec, scale = dt.precision, dt.scale
        quantum, limit = Decimal(1).scaleb(-scale), Decimal(10) ** (prec - scale)
        ctx = Context(prec=prec + 10)  # the default 28 digits cannot hold decimal(38,18)

        def conv_dec(v: Any) -> Any:
            if isinstance(v, bool):
                raise _Bad(f"{_show(v)} is not a decimal")
            try:
                d = Decimal(v.strip()) if isinstance(v, str) else Decimal(repr(v)) if isinstance(v, float) else Decimal(v)
            except (InvalidOperation, TypeError, ValueError):
                raise _Bad(f"{_show(v)} is not a decimal") from None
            if not d.is_finite():
                raise _Bad(f"{_show(v)} is not a finite decimal")
            if abs(d) >= limit:
                raise _Bad(f"{_show(v)} does not fit {dt.simpleString()}")
            q = d.quantize(quantum, rounding=ROUND_HALF_UP, context=ctx)
            if not q and d:
                # Rounding is normal (a 20-decimal CSV cell); rounding a real value to 0 is data loss.
                raise _Bad(f"{_show(v)} is below the precision of {dt.simpleString()} (it would be stored as 0)")
            return q
        return conv_dec
    if isinstance(dt, T.BooleanType):
        def conv_bool(v: Any) -> Any:
            if isinstance(v, bool):
                return v
            if isinstance(v, int) and v in (0, 1):
                return bool(v)
            if isinstance(v, str):
                s = v.strip().lower()
                if s in _TRUE:
                    return True
                if s in _FALSE:
                    return False
            raise _Bad(f"{_show(v)} is not a boolean")
        return conv_bool
    if isinstance(dt, T.TimestampType):
        return _to_timestamp
    if isinstance(dt, T.DateType):
        def conv_date(v: Any) -> Any:
            if isinstance(v, datetime):
                return _to_timestamp(v).date()
            if isinstance(v, date):
                return v
            if isinstance(v, str):
                s = v.strip()
                try:
                    return date.fromisoformat(s) if len(s) == 10 else _to_timestamp(s).date()
                except (ValueError, _Bad):
                    pass
            raise _Bad(f"{_show(v)} is not an ISO-8601 date")
        return conv_date
    if isinstance(dt, T.ArrayType):
        elem = _nullable(_converter(dt.elementType))

        def conv_array(v: Any) -> Any:
            v = _from_json_text(v, dt.simpleString())
            if not isinstance(v, list | tuple):
                raise _Bad(f"{_show(v)} is not an array")
            return [elem(x) for x in v]
        return conv_array
    if isinstance(dt, T.MapType):
        key, val = _converter(dt.keyType), _nullable(_converter(dt.valueType))
        key_is_str, val_is_str = isinstance(dt.keyType, T.StringType), isinstance(dt.valueType, T.StringType)

        def conv_map(v: Any) -> Any:
            v = _from_json_text(v, dt.simpleString())
            if isinstance(v, dict):
                items = v.items()
            elif isinstance(v, list | tuple) and all(isinstance(p, list | tuple) and len(p) == 2 for p in v):
                items = v  # Parquet maps come back from pyarrow as (key, value) pairs
            else:
                raise _Bad(f"{_show(v)} is not a map")
            out = []
            for k, x in items:
                if k is None:
                    raise _Bad("map has a null key")
                # Fast path for the common map<string,string> (custom_tags, request_params).
                out.append((k if type(k) is str and key_is_str else key(k),
                            x if type(x) is str and x and val_is_str else val(x)))
            return out
        return conv_map
    if isinstance(dt, T.StructType):
        fields = {f.name: (_nullable(_converter(f.dataType)), isinstance(f.dataType, T.StringType))
                  for f in dt.fields}

        def conv_struct(v: Any) -> Any:
            v = _from_json_text(v, "a struct")
            if not isinstance(v, dict):
                raise _Bad(f"{_show(v)} is not a struct (JSON object)")
            # Only the keys present: Arrow fills absent struct fields with null; unknown keys are dropped.
            out = {}
            for name, x in v.items():
                f = fields.get(name)
                if f is not None and x is not None:
                    out[name] = x if f[1] and type(x) is str and x else f[0](x)
            return out
        return conv_struct
    raise ValueError(f"ingest does not support type {dt.simpleString()}")


def _nullable(conv: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Nested values: null and empty text stay null (a CSV-embedded JSON may use either)."""
    def wrapped(v: Any) -> Any:
        if v is None or (isinstance(v, str) and v == ""):
            return None
        return conv(v)
    return wrapped


def _to_timestamp(v: Any) -> datetime:
    """ISO-8601 text or a datetime, as a naive UTC datetime (text without a zone is taken as UTC)."""
    if isinstance(v, str):
        try:
            ts = datetime.fromisoformat(v.strip())
        except ValueError:
            raise _Bad(f"{_show(v)} is not an ISO-8601 timestamp") from None
    elif isinstance(v, datetime):
        ts = v
    elif isinstance(v, date):
        ts = datetime(v.year, v.month, v.day)
    else:
        raise _Bad(f"{_show(v)} is not an ISO-8601 timestamp")
    if ts.tzinfo is not None:
        try:
            ts = ts.astimezone(UTC).replace(tzinfo=None)
        except OverflowError:
            raise _Bad(f"{_show(v)} is out of range") from None
    return ts


# --------------------------------------------------------------------------- row validation
class _RowValidator:
    """Parses and checks rows of one table; keeps nothing per file."""

    def __init__(self, spec: TableSpec) -> None:
        self.spec = spec
        self.names = spec.column_names
        self.index = {n: i for i, n in enumerate(self.names)}
        self.convs = [_converter(c.data_type) for c in spec.columns]
        self.is_string = [isinstance(c.data_type, T.StringType) for c in spec.columns]
        self.required = required_columns(spec)
        self.required_idx = [self.index[n] for n in self.required]
        self.enums = [(self.index[n], n, vals) for n, vals in enum_values(spec).items()]
        self.times = [(i, c.name) for i, c in enumerate(spec.columns)
                      if isinstance(c.data_type, T.TimestampType | T.DateType)]
        self.pairs = [(self.index[s], s, self.index[e], e) for s, e in _TIME_PAIRS
                      if s in self.index and e in self.index]
        self.usage = ((self.index["usage_quantity"], self.index["record_type"])
                      if {"usage_quantity", "record_type"} <= set(self.index) else None)
        self.key_idx = [self.index[k] for k in spec.primary_key]
        self.gold_limits = [(self.index[path.split(".")[0]], path.split(".")[1:], path, sql,
                             Decimal(10) ** _integer_digits(sql))
                            for path, sql in GOLD_LIMITS.get(spec.name if spec.layer == "system" else "", {}).items()
                            if path.split(".")[0] in self.index]

    def check(self, cells: list[Any]) -> tuple[list[Any] | None, str | None]:
        """Parse ``cells`` (contract order, None where absent) into values, or say why the row fails."""
        problems: list[str] = []
        vals: list[Any] = [None] * len(cells)
        is_string, convs = self.is_string, self.convs
        for i, v in enumerate(cells):
            if v is None:
                continue
            if type(v) is str:
                if is_string[i]:
                    vals[i] = v
                    continue
                if v == "" or v in _NULL_WORDS:
                    continue
            try:
                vals[i] = convs[i](v)
            except _Bad as exc:
                problems.append(f"{self.names[i]}: {exc}")
        for i in self.required_idx:
            if vals[i] is None and not _reported(problems, self.names[i]):
                problems.append(f"{self.names[i]}: missing value in a required column")
        for i, name, allowed in self.enums:
            if vals[i] is not None and vals[i] not in allowed:
                problems.append(f"{name}: unknown value {_show(vals[i])} (expected {' | '.join(sorted(allowed))})")
        for i, name in self.times:
            v = vals[i]
            if v is None:
                continue
            low, high = (TIME_MIN, TIME_MAX) if isinstance(v, datetime) else (TIME_MIN.date(), TIME_MAX.date())
            if not low <= v < high:
                problems.append(f"{name}: {v.isoformat()} is outside 2000-01-01..2100-01-01")
        for si, sname, ei, ename in self.pairs:
            if vals[si] is not None and vals[ei] is not None and vals[ei] < vals[si]:
                problems.append(f"{ename}: {vals[ei].isoformat()} is before {sname} {vals[si].isoformat()}")
        for i, fields, path, sql, limit in self.gold_limits:
            v = vals[i]
            for f in fields:
                v = v.get(f) if isinstance(v, dict) else None
            if isinstance(v, Decimal) and abs(v) >= limit:
                problems.append(f"{path}: {v.normalize():f} does not fit {sql}, the type the Gold build converts it to")
        if self.usage:
            qi, ri = self.usage
            if vals[ri] == "ORIGINAL" and vals[qi] is not None and vals[qi] < 0:
                problems.append(f"usage_quantity: negative quantity {vals[qi].normalize():f} on an ORIGINAL record")
        if problems:
            return None, "; ".join(problems)
        return vals, None

    def key(self, vals: list[Any]) -> tuple:
        return tuple(vals[i] for i in self.key_idx)


def _integer_digits(sql: str) -> int:
    """Digits before the point of ``decimal(p,s)``."""
    p, s = (int(x) for x in sql[sql.index("(") + 1:-1].split(","))
    return p - s


def _reported(problems: list[str], column: str) -> bool:
    """True when a parse problem was already reported for ``column`` (no second 'missing' reason)."""
    prefix = f"{column}: "
    return any(p.startswith(prefix) for p in problems)


# --------------------------------------------------------------------------- files
@dataclass
class _Parsed:
    """Result of parsing one file: good rows as Arrow batches, quarantine rows, counts."""

    report: FileReport
    batches: list[pa.RecordBatch] = field(default_factory=list)
    quarantine: list[tuple[int, str, str]] = field(default_factory=list)  # (row_number, raw, reason)
    good: int = 0


def _list_files(path: Path, fmt: str | None) -> list[tuple[Path, str]]:
    """The files to ingest with their formats: the file itself, or a folder's data files."""
    if not path.exists():
        raise HealthMonitorError(f"{path} does not exist")
    if path.is_file():
        detected = _format_of(path)
        if fmt is None and detected is None:
            raise HealthMonitorError(
                f"cannot tell the format of {path.name} from its extension: pass --format csv, json or parquet")
        return [(path, fmt or detected)]  # type: ignore[list-item]
    files: list[tuple[Path, str]] = []
    for p in sorted(path.rglob("*")):
        rel = p.relative_to(path)
        # Spark and Hadoop leave _SUCCESS, _delta_log and .crc files beside the data.
        if not p.is_file() or any(part.startswith((".", "_")) for part in rel.parts):
            continue
        detected = _format_of(p)
        if fmt is None and detected is not None:
            files.append((p, detected))
        elif fmt is not None and detected in (fmt, None):
            files.append((p, fmt))
    if not files:
        wanted = fmt or "csv, json or parquet"
        raise HealthMonitorError(f"{path} has no {wanted} files to ingest")
    return files


def _format_of(path: Path) -> str | None:
    name = path.name.lower().removesuffix(".gz")
    for fmt, exts in FORMATS.items():
        if name.endswith(exts):
            return fmt
    return None


def _content_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _open_bytes(path: Path) -> io.BufferedIOBase:
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb")


def _sniff_text(path: Path, fmt: str) -> bytes:
    """Reject a binary file posing as text (a PNG named .csv) before parsing it line by line."""
    label = "CSV" if fmt == "csv" else "JSON-lines"
    try:
        with _open_bytes(path) as fh:
            head = fh.read(_SNIFF_BYTES)
    except (OSError, EOFError) as exc:
        raise HealthMonitorError(f"{path.name} cannot be read as {label}: {exc}") from None
    for magic, what in _MAGIC:
        if head.startswith(magic):
            raise HealthMonitorError(f"{path.name} is not a {label} file: it looks like {what}")
    # A stray NUL in one row is that row's problem (it is quarantined); many of them mean binary
    # data, or UTF-16 text, and the file is refused whole.
    if head.count(b"\x00") > max(1, len(head) // 100):
        hint = " (UTF-16 text? re-export it as UTF-8)" if head[:2] in (b"\xff\xfe", b"\xfe\xff") or head[1:2] == b"\x00" else ""
        raise HealthMonitorError(f"{path.name} is not a {label} file: it contains binary data{hint}")
    return head


def _text_lines(path: Path, fmt: str) -> Iterator[str]:
    """Lines of a UTF-8 text file (a BOM is dropped); undecodable bytes are a one-line error."""
    label = "CSV" if fmt == "csv" else "JSON-lines"
    with _open_bytes(path) as raw, io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as fh:
        try:
            yield from fh
        except UnicodeDecodeError as exc:
            raise HealthMonitorError(
                f"{path.name} is not a UTF-8 {label} file (undecodable byte at offset {exc.start}): "
                "re-export it as UTF-8") from None
        except (OSError, EOFError) as exc:
            raise HealthMonitorError(f"{path.name} cannot be read: {exc}") from None


class _FileParser:
    """Turns one file into good rows (Arrow batches) and quarantine rows for one table."""

    def __init__(self, spec: TableSpec, validator: _RowValidator, arrow_schema: pa.Schema,
                 seen: set[tuple], file_index: int, path: Path, fmt: str) -> None:
        self.spec, self.v, self.arrow_schema = spec, validator, arrow_schema
        self.seen, self.file_index, self.path = seen, file_index, path
        self.out = _Parsed(FileReport(path=str(path), format=fmt))
        self.rows: list[list[Any]] = []

    # ---- shared bookkeeping
    def _columns(self, header: list[str]) -> list[int | None]:
        """Map file columns to contract positions; report extra and missing ones."""
        norm = [h.strip().strip('"').lower() for h in header]
        dupes = sorted({h for h in norm if norm.count(h) > 1 and h})
        if dupes:
            raise HealthMonitorError(f"{self.path.name} has duplicate column(s) {', '.join(dupes)}")
        lookup = {n.lower(): i for i, n in enumerate(self.v.names)}
        mapping = [lookup.get(h) for h in norm]
        present = {self.v.names[i] for i in mapping if i is not None}
        self._check_required(present)
        rep = self.out.report
        rep.extra_columns = [h for h, i in zip(header, mapping, strict=True) if i is None and h.strip()]
        rep.missing_optional_columns = [n for n in self.v.names if n not in present]
        return mapping

    def _check_required(self, present: set[str]) -> None:
        missing = [n for n in self.v.required if n not in present]
        if missing:
            raise HealthMonitorError(
                f"{self.path.name} is missing required column(s) {', '.join(missing)} for {self.spec.name}")

    def _row(self, row_number: int, raw: Callable[[], str], cells: list[Any]) -> None:
        self.out.report.rows_read += 1
        vals, reason = self.v.check(cells)
        if reason is not None:
            self._quarantine(row_number, raw(), reason)
            return
        key = self.v.key(vals)  # type: ignore[arg-type]
        if key in self.seen:
            self.out.report.duplicates_skipped += 1
            return
        self.seen.add(key)
        vals.append(self.file_index)  # type: ignore[union-attr]
        self.rows.append(vals)  # type: ignore[arg-type]
        if len(self.rows) >= _BATCH_ROWS:
            self._flush()

    def _quarantine(self, row_number: int, raw: str, reason: str) -> None:
        if len(raw) > _RAW_TEXT_MAX:
            raw = raw[:_RAW_TEXT_MAX] + f"... [{len(raw) - _RAW_TEXT_MAX} more characters]"
        self.out.quarantine.append((row_number, raw, reason))
        if len(self.out.report.samples) < 5:
            self.out.report.samples.append((row_number, reason))

    def _flush(self) -> None:
        import pyarrow as pa

        if not self.rows:
            return
        columns = list(zip(*self.rows, strict=True))
        arrays = [pa.array(col, type=f.type) for col, f in zip(columns, self.arrow_schema, strict=True)]
        self.out.batches.append(pa.RecordBatch.from_arrays(arrays, schema=self.arrow_schema))
        self.out.good += len(self.rows)
        self.rows = []

    def finish(self) -> _Parsed:
        self._flush()
        rep = self.out.report
        rep.quarantined = len(self.out.quarantine)
        if rep.rows_read == 0:
            rep.status, rep.message = "empty", "no data rows"
        return self.out

    # ---- formats
    def parse(self) -> _Parsed:
        fmt = self.out.report.format
        if fmt == "csv":
            self._parse_csv()
        elif fmt == "json":
            self._parse_json()
        else:
            self._parse_parquet()
        return self.finish()

    def _parse_csv(self) -> None:
        head = _sniff_text(self.path, "csv")
        first_line = head.split(b"\n", 1)[0].decode("utf-8", errors="replace")
        delimiter = "\t" if self.path.name.lower().removesuffix(".gz").endswith(".tsv") else max(
            ",;\t|", key=first_line.count)
        consumed: list[tuple[int, str]] = []
        # Lines handed back after a runaway quote: read again, on their own, before the file's next.
        pushback: deque[tuple[int, str]] = deque()
        line_no = 0

        source = enumerate(_text_lines(self.path, "csv"), start=1)

        def lines() -> Iterator[str]:
            nonlocal line_no
            while True:
                if pushback:
                    line_no, line = pushback.popleft()
                else:
                    try:
                        line_no, line = next(source)
                    except StopIteration:
                        return
                consumed.append((line_no, line))
                yield line

        # Spark's CSV writer (df.write.csv, the usual export on Databricks) escapes quotes as \" where
        # RFC 4180 tools double them; accept the backslash form only when the file uses it, so
        # backslashes in other files (Windows paths, regexes) stay literal.
        escape = "\\" if b'\\"' in head else None
        reader = csv.reader(lines(), delimiter=delimiter, escapechar=escape)
        mapping: list[int | None] | None = None
        width = len(self.v.names)
        start = 1
        while True:
            try:
                record = next(reader)
                error = None
            except StopIteration:
                break
            except csv.Error as exc:
                record, error = None, str(exc)
            taken = list(consumed)
            raw = "".join(line for _, line in taken).rstrip("\r\n")
            consumed.clear()
            row_number = taken[0][0] if taken else start
            start = line_no + 1
            runaway = mapping is not None and len(taken) > 1 and (
                error is not None or (record is not None and len(record) != len(mapping)))
            if runaway:
                # A quote opened in one line and never closed there swallowed the lines after it:
                # quarantine that line alone and read the others again, so their rows are not lost.
                self.out.report.rows_read += 1
                self._quarantine(row_number, taken[0][1].rstrip("\r\n"),
                                 "malformed CSV: unbalanced quote (the lines after it are read on their own)")
                pushback.extendleft(reversed(taken[1:]))
                reader = csv.reader(lines(), delimiter=delimiter, escapechar=escape)
                continue
            if error is not None:
                if mapping is None:
                    raise HealthMonitorError(f"{self.path.name}: malformed CSV header: {error}")
                self.out.report.rows_read += 1
                self._quarantine(row_number, raw, f"malformed CSV: {error}")
                continue
            if not record or (len(record) == 1 and not record[0].strip()):
                continue  # blank line
            if mapping is None:
                mapping = self._columns(record)
                continue
            if len(record) != len(mapping):
                self.out.report.rows_read += 1
                self._quarantine(row_number, raw,
                                 f"malformed CSV: row has {len(record)} fields, the header has {len(mapping)}")
                continue
            cells: list[Any] = [None] * width
            for value, i in zip(record, mapping, strict=True):
                if i is not None and value != "":
                    cells[i] = value
            self._row(row_number, lambda raw=raw: raw, cells)

    def _parse_json(self) -> None:
        head = _sniff_text(self.path, "json")
        if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"["):
            self._parse_json_array()
            return
        lookup = {n.lower(): i for i, n in enumerate(self.v.names)}
        width = len(self.v.names)
        present: set[str] = set()
        extra: dict[str, None] = {}
        parsed_any, first_error = False, ""
        for line_no, line in enumerate(_text_lines(self.path, "json"), start=1):
            text = line.strip()
            if not text:
                continue
            raw = line.rstrip("\r\n")
            try:
                obj = _decode_json(text)
            except ValueError as exc:
                msg = getattr(exc, "msg", str(exc))
                first_error = first_error or f"line {line_no}: {msg}"
                self.out.report.rows_read += 1
                self._quarantine(line_no, raw, f"malformed JSON: {msg} at column {getattr(exc, 'colno', '?')}")
                continue
            parsed_any = True
            if not isinstance(obj, dict):
                self.out.report.rows_read += 1
                self._quarantine(line_no, raw, f"malformed JSON: a line must be one object, got {type(obj).__name__}")
                continue
            cells = self._cells_from_object(obj, lookup, width, present, extra)
            self._row(line_no, lambda raw=raw: raw, cells)
        if not parsed_any and first_error:
            raise HealthMonitorError(f"{self.path.name} is not a JSON-lines file ({first_error})")
        self._finish_keyed(present, extra)

    def _parse_json_array(self) -> None:
        """A file holding one JSON array of objects (what many tools call 'JSON export')."""
        try:
            data = _JSON.decode("".join(_text_lines(self.path, "json")))
        except ValueError as exc:
            raise HealthMonitorError(f"{self.path.name} is not valid JSON: {getattr(exc, 'msg', exc)} "
                                     f"at line {getattr(exc, 'lineno', '?')}") from None
        lookup = {n.lower(): i for i, n in enumerate(self.v.names)}
        present: set[str] = set()
        extra: dict[str, None] = {}
        for n, obj in enumerate(data, start=1):
            if not isinstance(obj, dict):
                self.out.report.rows_read += 1
                self._quarantine(n, _dump(obj), f"malformed JSON: element must be an object, got {type(obj).__name__}")
                continue
            cells = self._cells_from_object(obj, lookup, len(self.v.names), present, extra)
            self._row(n, lambda obj=obj: _dump(obj), cells)
        self._finish_keyed(present, extra)

    def _cells_from_object(self, obj: dict, lookup: dict[str, int], width: int,
                           present: set[str], extra: dict[str, None]) -> list[Any]:
        cells: list[Any] = [None] * width
        for k, v in obj.items():
            i = lookup.get(k) if k in lookup else lookup.get(str(k).strip().lower())
            if i is None:
                extra[k] = None
                continue
            present.add(self.v.names[i])
            cells[i] = v
        return cells

    def _finish_keyed(self, present: set[str], extra: dict[str, None]) -> None:
        """JSON has no header: a required column absent from every object is a file-level error."""
        if self.out.report.rows_read and present:
            self._check_required(present)
        rep = self.out.report
        rep.extra_columns = list(extra)
        rep.missing_optional_columns = [n for n in self.v.names if n not in present]

    def _parse_parquet(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        with self.path.open("rb") as fh:
            head = fh.read(8)
        if not head.startswith(b"PAR1"):
            what = next((w for m, w in _MAGIC if head.startswith(m)), "")
            raise HealthMonitorError(f"{self.path.name} is not a Parquet file"
                                     + (f": it looks like {what}" if what else " (no PAR1 header)"))
        try:
            pf = pq.ParquetFile(self.path)
            header = pf.schema_arrow.names
        except (pa.ArrowException, OSError) as exc:
            raise HealthMonitorError(f"{self.path.name} is not a readable Parquet file: "
                                     f"{str(exc).splitlines()[0]}") from None
        mapping = self._columns(header)
        position = {h: i for h, i in zip(header, mapping, strict=True) if i is not None}
        width = len(self.v.names)
        row_number = 0
        try:
            for batch in pf.iter_batches(batch_size=_BATCH_ROWS, columns=list(position)):
                names = batch.schema.names
                positions = [position[n] for n in names]
                for obj in batch.to_pylist():
                    row_number += 1
                    cells: list[Any] = [None] * width
                    for n, i in zip(names, positions, strict=True):
                        cells[i] = obj[n]
                    self._row(row_number, lambda obj=obj: _dump(obj), cells)
        except (pa.ArrowException, OSError) as exc:
            raise HealthMonitorError(f"{self.path.name} is a corrupt Parquet file (after row {row_number}): "
                                     f"{str(exc).splitlines()[0]}") from None


def _dump(obj: Any) -> str:
    return json.dumps(obj, default=str, ensure_ascii=False)


# --------------------------------------------------------------------------- ingest
def ingest(lake: Lakehouse, path: str | Path | list[str | Path], table: str,
           file_format: str | None = None) -> IngestReport:
    """Load a CSV, JSON-lines or Parquet export (a file or a folder of files) into a table.

    Args:
        lake: the lakehouse to write to.
        path: a file, or a folder whose data files are all loaded (hidden and ``_``-prefixed
            skipped), or a list of such paths.
        table: a system table (``system.billing.usage`` or ``billing.usage``) or a Gold table
            (``fact_usage``); see :func:`resolve_table`.
        file_format: ``csv``, ``json`` or ``parquet``; default from each file's extension.

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
            result = _FileParser(spec, validator, arrow_schema, seen, len(parsed), p, fmt).parse()
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
                 file_format: str | None = None) -> list[IngestReport]:
    """Ingest several files and folders in one call (one Spark session), each into its table.

    With ``table`` every file goes there. Without it each file's table comes from its name (see
    :func:`table_from_name`); a file whose name names no table is a one-line error that lists it,
    and nothing is written. Returns one :class:`IngestReport` per table, in order of first file.
    """
    if table is not None:
        return [ingest(lake, [Path(p) for p in paths], table, file_format)]
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
    return [ingest(lake, files, name, file_format) for name, files in groups.items()]
