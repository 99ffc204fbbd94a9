"""Table contracts written as compact DDL, parsed into Spark schemas without a SparkSession.

Spark's own DDL parser needs a running JVM; schemas are needed earlier (docs, ingest
validation, tests without Spark), so this small parser covers the types the Gold layer uses:
string, bigint, int, tinyint, double, boolean, date, timestamp, decimal(p,s),
array<T>, map<K,V> and struct<name:T,...>.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pyspark.sql import types as T

_SIMPLE: dict[str, T.DataType] = {
    "string": T.StringType(),
    "bigint": T.LongType(),
    "long": T.LongType(),
    "int": T.IntegerType(),
    "integer": T.IntegerType(),
    "tinyint": T.ByteType(),
    "smallint": T.ShortType(),
    "double": T.DoubleType(),
    "float": T.FloatType(),
    "boolean": T.BooleanType(),
    "date": T.DateType(),
    "timestamp": T.TimestampType(),
}


def _split_top(text: str, sep: str = ",") -> list[str]:
    """Split on ``sep`` outside of <> and () brackets."""
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch in "<(":
            depth += 1
        elif ch in ">)":
            depth -= 1
        if ch == sep and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    if "".join(cur).strip():
        parts.append("".join(cur).strip())
    return parts


def parse_type(text: str) -> T.DataType:
    """Parse one type expression, e.g. ``map<string,string>`` or ``decimal(38,18)``."""
    t = text.strip()
    low = t.lower()
    if low in _SIMPLE:
        return _SIMPLE[low]
    if low.startswith("decimal(") and low.endswith(")"):
        p, s = (int(x) for x in low[8:-1].split(","))
        return T.DecimalType(p, s)
    if low.startswith("array<") and low.endswith(">"):
        return T.ArrayType(parse_type(t[6:-1]))
    if low.startswith("map<") and low.endswith(">"):
        k, v = _split_top(t[4:-1])
        return T.MapType(parse_type(k), parse_type(v))
    if low.startswith("struct<") and low.endswith(">"):
        fields = []
        for part in _split_top(t[7:-1]):
            name, _, typ = part.partition(":")
            fields.append(T.StructField(name.strip(), parse_type(typ)))
        return T.StructType(fields)
    raise ValueError(f"unsupported type in table contract: {text!r}")


@dataclass(frozen=True)
class Column:
    """One column of a table contract."""

    name: str
    type: str
    nullable: bool = True
    comment: str = ""

    @property
    def optional(self) -> bool:
        """A column real accounts may not have yet (comment starts with ``optional``): read as null."""
        return self.comment.lower().startswith("optional")

    @property
    def data_type(self) -> T.DataType:
        return parse_type(self.type)


def parse_columns(ddl: str) -> list[Column]:
    """Parse lines of ``name type [NOT NULL] [-- comment]`` into columns."""
    cols: list[Column] = []
    for raw in ddl.strip().splitlines():
        line, _, comment = raw.partition("--")
        line = line.strip().rstrip(",")
        if not line:
            continue
        name, _, rest = line.partition(" ")
        rest = rest.strip()
        nullable = True
        if rest.upper().endswith("NOT NULL"):
            nullable = False
            rest = rest[: -len("NOT NULL")].strip()
        cols.append(Column(name, rest, nullable, comment.strip()))
    return cols


@dataclass(frozen=True)
class TableSpec:
    """The contract of one table: columns, keys and how it is used.

    Attributes:
        name: table name (``fact_usage``; system tables use ``billing.usage``).
        layer: lakehouse layer (see :mod:`health_monitor.settings`).
        columns: ordered columns.
        primary_key: columns that identify a row (MERGE keys; dedup keys for ingest).
        description: one paragraph for the generated docs.
        event_time: the event-time column streams and incremental builds use, if any.
        scd2: a slowly changing dimension with effective_from/effective_to/is_current.
        partition_by: Delta partition columns.
    """

    name: str
    layer: str
    columns: list[Column]
    primary_key: list[str]
    description: str = ""
    event_time: str | None = None
    scd2: bool = False
    partition_by: list[str] = field(default_factory=list)

    @property
    def schema(self) -> T.StructType:
        return T.StructType([T.StructField(c.name, c.data_type, c.nullable) for c in self.columns])

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def stats_columns(self) -> list[str]:
        """Columns Delta keeps file statistics on: the event time and the primary key.

        Statistics on every column cost about as much CPU as writing the Parquet itself, and
        readers skip files only by time (streams, incremental builds) or by key (MERGE);
        partition columns need no statistics (their values are in the file paths).
        """
        wanted = [self.event_time, *self.primary_key] if self.event_time else list(self.primary_key)
        top = {c.name: c.data_type for c in self.columns}
        return [c for c in dict.fromkeys(wanted)
                if c in top and c not in self.partition_by
                and not isinstance(top[c], (T.StructType, T.MapType, T.ArrayType))]

    @property
    def stats_properties(self) -> dict[str, str]:
        """The Delta table property that limits file statistics to :attr:`stats_columns`."""
        cols = self.stats_columns
        return {"delta.dataSkippingStatsColumns": ",".join(f"`{c}`" for c in cols)} if cols else {}

    @property
    def required(self) -> list[str]:
        """Columns that may not be null (primary key included)."""
        return [c.name for c in self.columns if not c.nullable or c.name in self.primary_key]

    @property
    def optional(self) -> list[str]:
        """Columns a source may lack (newer system-table columns); readers fill them with null."""
        return [c.name for c in self.columns if c.optional]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name} has no column {name}")


def table(name: str, layer: str, ddl: str, primary_key: list[str], description: str = "",
          event_time: str | None = None, scd2: bool = False,
          partition_by: list[str] | None = None) -> TableSpec:
    """Build a :class:`TableSpec` from DDL lines."""
    cols = parse_columns(ddl)
    if scd2:
        cols += parse_columns(
            """
            effective_from timestamp NOT NULL -- start of this version of the row
            effective_to timestamp -- end of this version; null while current
            is_current boolean NOT NULL -- true for the latest version
            """
        )
    names = {c.name for c in cols}
    missing = [k for k in primary_key + ([event_time] if event_time else []) if k not in names]
    if missing:
        raise ValueError(f"{name}: key columns {missing} are not columns")
    return TableSpec(name, layer, cols, primary_key, description, event_time, scd2, partition_by or [])
