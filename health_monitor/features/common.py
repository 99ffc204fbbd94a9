"""Point-in-time helpers shared by the feature modules.

A feature row at time t may use only what was known before t. The helpers here make that the
default: rolling windows are ``RANGE`` frames over day (or second) numbers that end at
``-1`` (the day before), and dimension attributes come from the SCD2 version in force at t.
"""

from __future__ import annotations

import math

from pyspark.sql import Column, DataFrame, Window, WindowSpec
from pyspark.sql import functions as F

DAY = 86400


def day_num(col: str | Column) -> Column:
    """Days since 1970-01-01 of a date/timestamp column (for RANGE windows over days)."""
    c = F.col(col) if isinstance(col, str) else col
    return F.unix_date(F.to_date(c))


def days_window(partition: list[str], order: str, lo: int, hi: int) -> WindowSpec:
    """RANGE window over the integer day column ``order`` from ``lo`` to ``hi`` days (inclusive)."""
    return Window.partitionBy(*partition).orderBy(F.col(order)).rangeBetween(lo, hi)


def rows_window(partition: list[str], order: str, lo: int | None, hi: int) -> WindowSpec:
    """ROWS window; ``lo=None`` means unbounded preceding."""
    start = Window.unboundedPreceding if lo is None else lo
    return Window.partitionBy(*partition).orderBy(F.col(order)).rowsBetween(start, hi)


def ratio(num: Column, den: Column) -> Column:
    """num / den, NULL when den is 0 or NULL (ANSI mode raises on division by zero)."""
    return F.try_divide(num.cast("double"), F.nullif(den.cast("double"), F.lit(0.0)))


def as_double(col: str) -> Column:
    return F.col(col).cast("double")


def hours_between(later: Column, earlier: Column) -> Column:
    return (F.unix_seconds(later) - F.unix_seconds(earlier)) / 3600.0


def cyclical(col: Column, period: int, name: str) -> list[Column]:
    """sin/cos encoding of a cyclic integer (day of week, hour)."""
    angle = 2 * math.pi * col.cast("double") / period
    return [F.sin(angle).alias(f"{name}_sin"), F.cos(angle).alias(f"{name}_cos")]


def as_of_join(left: DataFrame, right: DataFrame, on: list[str], left_time: str, left_keys: list[str],
               columns: list[str], right_from: str = "effective_from", tolerance_s: int = 0) -> DataFrame:
    """Attach ``columns`` of the ``right`` (SCD2) version in force at ``left_time``.

    The version is the latest one whose ``right_from`` is at or before ``left_time`` (plus
    ``tolerance_s``, for things created by the event itself, such as a run's job cluster).
    Left rows without a version keep nulls. ``left_keys`` must identify left rows.
    """
    r = right.select(*[F.col(k).alias(f"_r_{k}") for k in on], F.col(right_from).alias("_r_from"),
                     *[F.col(c).alias(f"_r_{c}") for c in columns])
    cond = [F.col(k) == F.col(f"_r_{k}") for k in on]
    limit = F.col(left_time).cast("timestamp") + F.make_dt_interval(F.lit(0), F.lit(0), F.lit(0),
                                                                     F.lit(tolerance_s))
    cond.append(F.col("_r_from") <= limit)
    joined = left.join(F.broadcast(r), on=cond, how="left")
    w = Window.partitionBy(*left_keys).orderBy(F.col("_r_from").desc_nulls_last())
    picked = joined.withColumn("_r_rank", F.row_number().over(w)).filter("_r_rank = 1")
    out = picked.drop("_r_rank", "_r_from", *[f"_r_{k}" for k in on])
    for c in columns:
        out = out.withColumnRenamed(f"_r_{c}", c)
    return out


def first_seen_flags(frame: DataFrame, who: str, what: str, when: str) -> DataFrame:
    """(who, when, new_count): how many distinct ``what`` the ``who`` touched for the first time
    on day ``when``. First-seen dates depend only on the past, so this is point-in-time correct."""
    first = frame.where(F.col(what).isNotNull()).groupBy(who, what).agg(F.min(when).alias(when))
    return first.groupBy(who, when).agg(F.count("*").alias("new_count"))


def calendar_columns(date_col: str) -> list[Column]:
    """Day-level calendar features computed from the date itself."""
    d = F.col(date_col)
    return [
        *cyclical(F.dayofweek(d), 7, "dow"),
        F.dayofweek(d).alias("day_of_week"),
        F.dayofweek(d).isin(1, 7).cast("int").alias("is_weekend"),
        (F.dayofmonth(d) >= 25).cast("int").alias("is_month_end"),
    ]


def label_columns(frame: DataFrame) -> list[str]:
    """Columns that hold outcomes (``label_*``): allowed to look ahead, never model inputs."""
    return [c for c in frame.columns if c.startswith("label_")]
