"""Turn flat pandas frames into Spark DataFrames of an exact table contract.

Generators build flat columns (``usage_metadata.cluster_id``, ``custom_tags`` as JSON text,
decimals as rounded doubles) because numpy is fast at flat columns and Arrow converts them
without Python objects per row. Spark then assembles structs, parses maps and arrays of
structs from JSON and casts to the contract's types in one projection, so the written table
has exactly the contract's schema.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql import types as T

from health_monitor.gold.ddl import TableSpec

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def _flat_type(dt: T.DataType) -> T.DataType:
    """Type of the flat pandas column that feeds a leaf of the contract."""
    if isinstance(dt, T.DecimalType):
        return T.DoubleType()
    if isinstance(dt, T.DateType):
        return T.TimestampType()
    if isinstance(dt, T.MapType) or (isinstance(dt, T.ArrayType) and not isinstance(
            dt.elementType, (T.StringType, T.LongType, T.IntegerType, T.DoubleType))):
        return T.StringType()  # JSON text, parsed by Spark
    if isinstance(dt, T.ByteType):
        return T.IntegerType()
    return dt


def _leaf(name: str, flat: dict[str, T.DataType], dt: T.DataType) -> Column:
    key = name.replace(".", "__")
    if name not in flat:
        return F.lit(None).cast(dt)
    col = F.col(key)
    if isinstance(dt, T.MapType) or (isinstance(dt, T.ArrayType) and isinstance(flat[name], T.StringType)):
        return F.from_json(col, dt)
    if isinstance(dt, T.DecimalType):
        # Via string: the double's shortest repr, so 0.1 stays exactly 0.1 in the decimal.
        return col.cast("string").cast(dt)
    return col.cast(dt)


def _assemble(prefix: str, dt: T.DataType, flat: dict[str, T.DataType]) -> Column:
    if isinstance(dt, T.StructType) and prefix not in flat:
        children = [_assemble(f"{prefix}.{f.name}", f.dataType, flat).alias(f.name) for f in dt.fields]
        present = [f"{prefix}.{f.name}" for f in dt.fields]
        if not any(p in flat or any(k.startswith(p + ".") for k in flat) for p in present):
            return F.lit(None).cast(dt)
        return F.struct(*children)
    return _leaf(prefix, flat, dt)


def to_spark(spark: SparkSession, pdf: pd.DataFrame, spec: TableSpec) -> DataFrame:
    """A DataFrame with exactly ``spec.schema`` from a flat pandas frame.

    Columns of ``pdf`` are contract columns or ``struct.field`` paths; missing ones are null.
    Maps and arrays of structs come as JSON text (see :func:`json_col`), decimals as doubles,
    dates as timestamps.
    """
    leaf_types: dict[str, T.DataType] = {}

    def walk(prefix: str, dt: T.DataType) -> None:
        leaf_types[prefix] = dt
        if isinstance(dt, T.StructType):
            for f in dt.fields:
                walk(f"{prefix}.{f.name}", f.dataType)

    for f in spec.schema.fields:
        walk(f.name, f.dataType)
    unknown = [c for c in pdf.columns if c not in leaf_types]
    if unknown:
        raise ValueError(f"{spec.name}: generator produced unknown columns {unknown}")
    flat = {c: _flat_type(leaf_types[c]) for c in pdf.columns}
    flat_schema = T.StructType([T.StructField(c.replace(".", "__"), t, True) for c, t in flat.items()])
    renamed = pdf.rename(columns={c: c.replace(".", "__") for c in pdf.columns})
    for c, orig in zip(renamed.columns, pdf.columns, strict=True):
        # pandas turns None into NaN in group-bys and concats (an all-null id column even becomes
        # float64, which Arrow cannot turn into text): text and object columns get real nulls.
        if renamed[c].dtype == object or isinstance(flat[orig], T.StringType):
            renamed[c] = renamed[c].astype(object).where(renamed[c].notna(), None)
    df = spark.createDataFrame(renamed, schema=flat_schema)
    return df.select([_assemble(f.name, f.dataType, flat).alias(f.name) for f in spec.schema.fields])


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
