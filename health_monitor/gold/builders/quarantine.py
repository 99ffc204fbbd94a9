"""Set aside the rows a Gold build cannot convert, so one poison value never stops the build.

Under ANSI SQL a cast that overflows (``12345678901234567890`` to ``decimal(24,12)``) fails the
whole micro-batch, and the stream then fails on the same batch at every later build: Gold stops
for good at that row. :func:`set_aside` checks the conversions a builder is about to make with
``try_cast``; rows where one would fail go to ``monitor.quarantine`` with the reason (the same
table ``ingest`` uses), the rest of the batch proceeds, and one progress line says how many rows
were set aside and where.

Idempotent: a quarantine row's id is a hash of the table, the row and the reason, written
insert-only, so a batch replayed after a crash (or a static source read at every build) never
quarantines a row twice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyspark.sql import functions as F
from pyspark.sql import types as T

from health_monitor import progress
from health_monitor.gold.ddl import TableSpec
from health_monitor.gold.schemas import QUARANTINE

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from health_monitor.runtime import Lakehouse

#: The narrowing casts of fact_usage's cost (usage.price_usage: decimal(38,18) inputs are narrowed
#: so that their product keeps 17 decimals). Ingest checks system rows against the same types.
USAGE_COST_CASTS = {"usage_quantity": "decimal(24,12)"}
PRICE_COST_CASTS = {"pricing.default": "decimal(20,12)"}

_REASON = "_set_aside_reason"


def contract_casts(df: DataFrame, spec: TableSpec) -> dict[str, str]:
    """The casts :func:`~health_monitor.gold.builders.core.conform` makes that can fail at run time.

    Same type, a cast to string and an all-null column cannot fail; everything else (narrower
    decimals, text to numbers or timestamps, long to int) is checked.
    """
    have = {f.name: f.dataType for f in df.schema.fields}
    return {c.name: c.data_type.simpleString() for c in spec.columns
            if c.name in have and cast_can_fail(have[c.name], c.data_type)}


#: Digits before the point that each integral type can hold.
_INT_DIGITS = {T.ByteType: 3, T.ShortType: 5, T.IntegerType: 10, T.LongType: 19}


def cast_can_fail(src: T.DataType, dst: T.DataType) -> bool:
    """Whether an ANSI cast from ``src`` to ``dst`` can fail on some value (a conservative answer:
    True unless the cast is an identity, a widening, or to text)."""
    if src == dst or isinstance(src, T.NullType) or isinstance(dst, T.StringType):
        return False
    if isinstance(dst, T.DoubleType) and isinstance(src, T.NumericType):
        return False
    if isinstance(src, T.DateType | T.TimestampType | T.TimestampNTZType) and isinstance(
            dst, T.DateType | T.TimestampType | T.TimestampNTZType):
        return False
    if type(src) in _INT_DIGITS and type(dst) in _INT_DIGITS:
        return _INT_DIGITS[type(src)] > _INT_DIGITS[type(dst)]
    if isinstance(dst, T.DecimalType):
        if isinstance(src, T.DecimalType):
            return src.precision - src.scale > dst.precision - dst.scale
        if type(src) in _INT_DIGITS:
            return _INT_DIGITS[type(src)] > dst.precision - dst.scale
    return True


def set_aside(lake: Lakehouse, df: DataFrame, table: str, casts: dict[str, str], source: str) -> DataFrame:
    """``df`` without the rows whose ``casts`` (column -> SQL type) would fail; those go to
    ``monitor.quarantine`` with the reason, and one line reports how many.

    Args:
        lake: the lakehouse the quarantine table lives in.
        df: the rows about to be converted (a micro-batch, or a static source).
        table: the Gold table being built (``gold.<table>`` in the quarantine's table_name).
        casts: column (``struct.field`` allowed) -> the SQL type the build converts it to.
        source: where the rows came from (the quarantine's source_file), e.g. ``system.billing.usage``.

    Returns:
        The rows that convert. With no casts to check, ``df`` itself (no extra Spark job).
    """
    if not casts:
        return df
    reasons = [
        F.when(F.col(c).isNotNull() & F.col(c).try_cast(t).isNull(),
               F.concat(F.lit(f"{c}: "), F.col(c).cast("string"), F.lit(f" cannot be converted to {t}")))
        for c, t in casts.items()
    ]
    marked = df.withColumn(_REASON, F.concat_ws("; ", *reasons))
    raw = F.to_json(F.struct(*[F.col(f"`{c}`") for c in df.columns]))
    qualified = f"gold.{table}"
    bad = marked.where(F.col(_REASON) != "").select(
        F.substring(F.sha2(F.concat_ws("|", F.lit(qualified), raw, F.col(_REASON)), 256), 1, 32).alias("quarantine_id"),
        F.lit(qualified).alias("table_name"),
        F.lit(source).alias("source_file"),
        F.lit(None).cast("bigint").alias("row_number"),
        raw.alias("raw_text"),
        F.col(_REASON).alias("reason"),
        F.current_timestamp().alias("ingested_at"),
    ).persist()
    try:
        n = bad.count()
        if n:
            lake.merge(bad, QUARANTINE.name, QUARANTINE.primary_key, QUARANTINE.layer, update=False)
            first = bad.select("reason").first()["reason"]
            progress.info(f"{qualified}: {n:,} row(s) of {source} set aside in monitor.quarantine "
                          f"(first: {first}); the rest of the batch was built")
    finally:
        bad.unpersist()
    return marked.where(F.col(_REASON) == "").drop(_REASON)
