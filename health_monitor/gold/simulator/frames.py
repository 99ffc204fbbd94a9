"""Turn flat pandas frames into Spark DataFrames of an exact table contract.

Generators build flat columns (``usage_metadata.cluster_id``, ``custom_tags`` as JSON text,
decimals as rounded doubles) because numpy is fast at flat columns. :func:`to_arrow` then
assembles structs, parses maps and arrays of structs from JSON and casts to the contract's
types in Arrow, so the written table has exactly the contract's schema whether the rows go
through Spark (:func:`to_spark`) or straight to Delta files (``Lakehouse.write_arrow``).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import types as T
from pyspark.sql.pandas.types import to_arrow_type

from health_monitor.gold.ddl import TableSpec

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def to_spark(spark: SparkSession, pdf: pd.DataFrame, spec: TableSpec) -> DataFrame:
    """A DataFrame with exactly ``spec.schema`` (all fields nullable) from a flat pandas frame.

    Columns of ``pdf`` are contract columns or ``struct.field`` paths; missing ones are null.
    Maps and arrays of structs come as JSON text (see :func:`json_col`), decimals as doubles,
    dates as timestamps. Converted by :func:`to_arrow`, so Spark receives typed Arrow columns.
    """
    return spark.createDataFrame(to_arrow(pdf, spec))


def to_arrow(pdf: pd.DataFrame, spec: TableSpec) -> pa.Table:
    """An Arrow table with exactly ``spec.schema`` (all fields nullable) from a flat pandas frame.

    The same inputs as :func:`to_spark`, converted in Python (numpy and Arrow) instead of Spark
    expressions, so a bulk load can write Parquet without a JVM round trip: structs assembled
    from ``struct.field`` columns, maps and arrays of structs parsed from JSON text (each distinct
    text once), decimals via the double's shortest text, dates from timestamps.
    """
    flat = set(pdf.columns)
    known: set[str] = set()

    def walk(prefix: str, dt: T.DataType) -> None:
        known.add(prefix)
        if isinstance(dt, T.StructType):
            for f in dt.fields:
                walk(f"{prefix}.{f.name}", f.dataType)

    for f in spec.schema.fields:
        walk(f.name, f.dataType)
    unknown = [c for c in pdf.columns if c not in known]
    if unknown:
        raise ValueError(f"{spec.name}: generator produced unknown columns {unknown}")
    n = len(pdf)

    def build(prefix: str, dt: T.DataType) -> pa.Array:
        atype = to_arrow_type(dt)
        if isinstance(dt, T.StructType) and prefix not in flat:
            if not any(k == prefix or k.startswith(prefix + ".") for k in flat):
                return pa.nulls(n, atype)
            children = [build(f"{prefix}.{f.name}", f.dataType) for f in dt.fields]
            return pa.StructArray.from_arrays(children, fields=list(atype))
        if prefix not in flat:
            return pa.nulls(n, atype)
        return _arrow_leaf(pdf[prefix], dt, atype)

    arrays = [build(f.name, f.dataType) for f in spec.schema.fields]
    schema = pa.schema([pa.field(f.name, a.type) for f, a in zip(spec.schema.fields, arrays, strict=True)])
    return pa.Table.from_arrays(arrays, schema=schema)


def _arrow_leaf(values: pd.Series, dt: T.DataType, atype: pa.DataType) -> pa.Array:
    """One flat pandas column as an Arrow array of the contract's type (nulls for NaN/None)."""
    if isinstance(dt, (T.MapType, T.ArrayType)) and values.dtype == object and values.map(
            lambda v: isinstance(v, str)).any():
        cache: dict[str, object] = {}

        def parse(text: object) -> object:
            if not isinstance(text, str):
                return None
            if text not in cache:
                obj = json.loads(text)
                cache[text] = list(obj.items()) if isinstance(obj, dict) else obj
            return cache[text]

        return pa.array([parse(v) for v in values], type=atype)
    if isinstance(dt, (T.MapType, T.ArrayType)):
        return pa.array([None if v is None or (isinstance(v, float) and np.isnan(v)) else v for v in values],
                        type=atype)
    if isinstance(dt, T.StringType):
        return pa.array(values.astype(object).where(values.notna(), None), type=pa.string())
    arr = pa.array(values, from_pandas=True)
    if isinstance(dt, T.DecimalType):
        # Via text: the double's shortest repr, so 0.1 stays exactly 0.1 in the decimal.
        return pc.cast(pc.cast(arr, pa.string()), atype)
    if isinstance(dt, T.DateType) and pa.types.is_timestamp(arr.type):
        return pc.cast(pc.cast(arr, pa.timestamp("us"), safe=False), pa.date32())
    if isinstance(dt, T.TimestampType) and pa.types.is_timestamp(arr.type) and arr.type.tz is None:
        # Naive pandas times are UTC wall clock (the session time zone): same epoch values.
        # Nanoseconds are truncated to Spark's microseconds (unsafe cast), nothing else is.
        return pc.cast(arr, pa.timestamp("us"), safe=False).cast(atype)
    return pc.cast(arr, atype) if arr.type != atype else arr


def json_col(values: list | pd.Series | np.ndarray) -> list[str | None]:
    """JSON text for map / array-of-struct columns (None stays null).

    Many rows share one dict (a cluster's tags on every billing hour): encode each object once.
    """
    cache: dict[int, str] = {}
    out: list[str | None] = []
    for v in values:
        if v is None:
            out.append(None)
            continue
        key = id(v)
        text = cache.get(key)
        if text is None:
            text = cache[key] = json.dumps(v, separators=(",", ":"))
        out.append(text)
    return out
