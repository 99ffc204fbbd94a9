"""Ingest, step 2: parse each value to its contract type and check each row (pure Python).

Timestamps are ISO-8601, taken as UTC when they carry no zone; an empty CSV cell is null, and so
are ``null``/``NULL``/``None``/``NaN`` in non-string columns. Values are also checked against what
the Gold build can hold (:data:`GOLD_LIMITS`), so a poison value is quarantined here, not at
every build.

Why one module over 400 lines: one parser per contract type plus the Gold limits, used together
on every value.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation
from typing import Any

from pyspark.sql import types as T

from health_monitor.errors import HealthMonitorError
from health_monitor.gold.builders.quarantine import PRICE_COST_CASTS, USAGE_COST_CASTS
from health_monitor.gold.ddl import TableSpec
from health_monitor.gold.schemas import GOLD_TABLES
from health_monitor.gold.system_schemas import SYSTEM_TABLES

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
