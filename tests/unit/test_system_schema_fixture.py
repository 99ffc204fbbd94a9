"""The system-table contracts against a fixture shaped like a real ``information_schema.columns``.

tests/data/system_schemas/information_schema_columns.csv lists, from the docs and
shared/spec/system-tables.md, the columns of the system tables as a workspace shows them; ``added``
marks columns only newer accounts have. Every column the monitor requires must be in the older
set; a newer one must be optional in the contract (read as null where absent).
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import pytest

from health_monitor.gold.ddl import parse_type
from health_monitor.gold.system_schemas import SYSTEM_TABLES

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "system_schemas" / "information_schema_columns.csv"


def fixture_tables() -> dict[str, dict[str, tuple[str, str]]]:
    """``schema.table`` -> column -> (full_data_type, added) from the fixture."""
    out: dict[str, dict[str, tuple[str, str]]] = defaultdict(dict)
    with FIXTURE.open() as f:
        for row in csv.DictReader(f):
            out[f"{row['table_schema']}.{row['table_name']}"][row["column_name"]] = (row["full_data_type"], row["added"])
    return out


@pytest.mark.parametrize("table", sorted(fixture_tables()))
def test_contract_reads_old_and_new_column_sets(table):
    spec = SYSTEM_TABLES[table]
    real = fixture_tables()[table]
    older = {c for c, (_t, added) in real.items() if not added}
    for col in spec.columns:
        if col.name not in real:
            assert col.optional, f"{table}.{col.name} is not in the real table and not optional"
            continue
        assert parse_type(real[col.name][0]).simpleString() == col.data_type.simpleString(), (
            f"{table}.{col.name}: contract {col.type}, real {real[col.name][0]}")
        if col.name not in older:
            assert col.optional, f"{table}.{col.name} is newer than some accounts: mark it optional"
