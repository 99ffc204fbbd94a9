"""Gold builds from system tables shaped like a real workspace's, older and newer column sets.

The column sets come from tests/data/system_schemas/information_schema_columns.csv (see
tests/unit/test_system_schema_fixture.py): the older set lacks the columns added in 2025, the
newer set has them plus columns the monitor does not read. Both must build, with a missing column
read as null.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest
from pyspark.sql import types as T

from health_monitor.gold.builders import build_gold
from health_monitor.gold.ddl import parse_type

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "system_schemas" / "information_schema_columns.csv"
GOLD = {"lakeflow.job_run_timeline": "fact_job_run_timeline", "query.history": "fact_query_history",
        "access.table_lineage": "fact_table_lineage", "billing.list_prices": "dim_sku",
        "information_schema.columns": "fact_table_schema_history"}
AT = dt.datetime(2026, 3, 2, 10, 0)


def _value(name: str, dtype: T.DataType):
    """One plausible value per column type; nested types stay null except the price."""
    if name == "pricing":
        return (Decimal("0.55"), (Decimal("0.55"),), (Decimal("0.50"),))
    if name == "price_end_time":
        return None
    simple = {T.StringType: f"{name}-1", T.TimestampType: AT, T.DateType: AT.date(), T.LongType: 60,
              T.IntegerType: 1, T.ByteType: 1, T.BooleanType: False, T.DecimalType: Decimal("1")}
    return next((v for t, v in simple.items() if isinstance(dtype, t)), None)


def _write_system_tables(lake, newer: bool) -> None:  # noqa: ANN001
    cols: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    with FIXTURE.open() as f:
        for r in csv.DictReader(f):
            cols[f"{r['table_schema']}.{r['table_name']}"].append((r["column_name"], r["full_data_type"], r["added"]))
    for table, columns in cols.items():
        kept = [(c, t) for c, t, added in columns if newer or not added]
        schema = T.StructType([T.StructField(c, parse_type(t)) for c, t in kept])
        row = tuple(_value(c, parse_type(t)) for c, t in kept)
        lake.write(lake.spark.createDataFrame([row], schema), table, "system", mode="overwrite")


@pytest.mark.parametrize("newer", [False, True], ids=["older-columns", "newer-columns"])
def test_gold_builds_from_older_and_newer_system_schemas(lake, newer):
    _write_system_tables(lake, newer)
    counts = build_gold(lake, list(GOLD.values()))
    assert all(counts.get(t, 0) >= 1 for t in GOLD.values()), counts
    run = lake.read("fact_job_run_timeline").first()
    assert (run["termination_type"] is None) is (not newer)
    assert (run["run_duration_seconds"] == 60) is newer
    lineage = lake.read("fact_table_lineage").first()
    assert (lineage["direct_access"] is None) is (not newer)
    # information_schema.columns has no snapshot time: the build stamps the snapshot it took.
    assert lake.read("fact_table_schema_history").first()["snapshot_time"] is not None
    assert lake.read("dim_sku").first()["effective_list_price"] == Decimal("0.5")
