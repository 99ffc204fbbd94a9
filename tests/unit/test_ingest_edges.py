"""Edges the ingest fuzz found (no row lost to a runaway quote, an array first line or a stray NUL),
and files in another encoding."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyspark.sql import types as T
from pyspark.sql.pandas.types import to_arrow_schema

from health_monitor.errors import HealthMonitorError
from health_monitor.gold.ingest import _FileParser, _Parsed, _RowValidator
from health_monitor.gold.system_schemas import SYSTEM_TABLES

SPEC = SYSTEM_TABLES["compute.node_types"]  # account_id, node_type, core_count, memory_mb, ...


def _parse(path: Path, fmt: str) -> _Parsed:
    schema = to_arrow_schema(T.StructType([*SPEC.schema.fields, T.StructField("_file", T.IntegerType())]))
    return _FileParser(SPEC, _RowValidator(SPEC), schema, set(), 0, path, fmt).parse()


def _kept(parsed: _Parsed) -> list[str]:
    return [v for b in parsed.batches for v in b.column(SPEC.column_names.index("node_type")).to_pylist()]


def test_a_runaway_quote_does_not_swallow_the_rows_after_it(tmp_path: Path) -> None:
    path = tmp_path / "n.csv"
    path.write_text("node_type,core_count,memory_mb\n"
                    'a,4,1024\n'
                    'b,"4,2048\n'  # the quote never closes on its line
                    'c,8,4096\n'
                    'd,16,8192\n')
    parsed = _parse(path, "csv")
    assert _kept(parsed) == ["a", "c", "d"]
    assert [(n, reason.split(" (")[0]) for n, _raw, reason in parsed.quarantine] == [
        (3, "malformed CSV: unbalanced quote")]
    assert parsed.quarantine[0][1] == 'b,"4,2048'


def test_json_lines_whose_first_line_is_an_array_are_still_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "n.jsonl"
    path.write_text('[1, 2]\n{"node_type": "a", "core_count": 4}\n{"node_type": "b", "core_count": 8}\n')
    parsed = _parse(path, "json")
    assert _kept(parsed) == ["a", "b"]
    assert [n for n, _raw, _reason in parsed.quarantine] == [1]


def test_one_stray_nul_quarantines_its_row_not_the_file(tmp_path: Path) -> None:
    path = tmp_path / "n.jsonl"
    path.write_text('{"node_type": "a", "core_count": 4}\n{"node_type": "b\x00", "core_count": "x\x00"}\n')
    parsed = _parse(path, "json")
    assert _kept(parsed) == ["a"] and len(parsed.quarantine) == 1


def test_a_latin1_file_names_the_encoding_to_pass_and_reads_with_it(tmp_path: Path) -> None:
    path = tmp_path / "n.csv"
    path.write_bytes("node_type,core_count\ncafé,4\nb,8\n".encode("latin-1"))
    with pytest.raises(HealthMonitorError, match=r"n.csv is not a UTF-8 CSV file \(byte 0xe9 cannot be decoded\): "
                                                 r"pass --encoding cp1252"):
        _parse(path, "csv")
    schema = to_arrow_schema(T.StructType([*SPEC.schema.fields, T.StructField("_file", T.IntegerType())]))
    parsed = _FileParser(SPEC, _RowValidator(SPEC), schema, set(), 0, path, "csv", "latin-1").parse()
    assert _kept(parsed) == ["café", "b"]
