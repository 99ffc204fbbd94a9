"""A whole export in one call: each file's table comes from its name (no Spark needed here)."""

from __future__ import annotations

from pathlib import Path

from health_monitor.cli.ingest import summary_table
from health_monitor.gold.ingest import FileReport, IngestReport, table_from_name


def _name(path: Path, root: Path | None = None) -> str | None:
    spec = table_from_name(path, root)
    return None if spec is None else f"{spec.layer}.{spec.name}"


def test_table_from_file_or_folder_name(tmp_path: Path) -> None:
    assert _name(tmp_path / "system.billing.usage.jsonl", tmp_path) == "system.billing.usage"
    assert _name(tmp_path / "billing.list_prices.csv.gz", tmp_path) == "system.billing.list_prices"
    assert _name(tmp_path / "fact_usage.parquet", tmp_path) == "gold.fact_usage"
    assert _name(tmp_path / "system.access.audit" / "part-0000.parquet", tmp_path) == "system.access.audit"
    assert _name(tmp_path / "usage.csv", tmp_path) is None  # ambiguous: pass --table
    assert _name(tmp_path / "x" / "part-0.csv", tmp_path / "x") is None
    # A lone file: its own folder may name the table; folders above it do not.
    assert _name(tmp_path / "billing.usage" / "part-0.csv") == "system.billing.usage"
    assert _name(tmp_path / "billing.usage" / "y" / "part-0.csv") is None


def test_summary_table_has_one_line_per_table_and_totals() -> None:
    usage = IngestReport("billing.usage", "system", [FileReport("a", "csv", rows_read=10, ingested=7, quarantined=2,
                                                                 duplicates_skipped=1)])
    audit = IngestReport("access.audit", "system", [FileReport("b", "json", rows_read=1200, ingested=1200),
                                                    FileReport("c", "json", status="already ingested")])
    lines = summary_table([usage, audit]).splitlines()
    assert lines[0].split() == ["table", "files", "read", "kept", "quarantined", "duplicates"]
    assert lines[1].split() == ["system.billing.usage", "1", "10", "7", "2", "1"]
    assert lines[2].split() == ["system.access.audit", "2", "1,200", "1,200", "0", "0"]
    assert lines[3].split() == ["total", "3", "1,210", "1,207", "2", "1"]
