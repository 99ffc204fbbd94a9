"""Ingest: good files round-trip, bad rows are quarantined with exact reasons, bad files are one-line errors.

Spark work is the expensive part, so each test that writes does one or two ingests into the
per-test lakehouse; the file-level error cases fail before anything is written.
"""

from __future__ import annotations

import gzip
import shutil
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from health_monitor import cli, runtime
from health_monitor.errors import HealthMonitorError
from health_monitor.gold.ingest import enum_values, ingest, required_columns, resolve_table
from health_monitor.gold.schemas import GOLD_TABLES
from health_monitor.gold.system_schemas import SYSTEM_TABLES
from health_monitor.runtime import Lakehouse
from health_monitor.settings import load_settings

DATA = Path(__file__).parents[1] / "data" / "ingest"


def _quarantine(lake) -> dict[int, str]:  # noqa: ANN001
    return {r.row_number: r.reason for r in lake.read("quarantine", "monitor").collect()}


def lake_at(data_dir: Path, spark) -> Lakehouse:  # noqa: ANN001
    """The lakehouse a CLI call with ``--data-dir data_dir`` wrote to."""
    return Lakehouse(load_settings(data_dir), spark)


def _usage(lake) -> dict[str, dict]:  # noqa: ANN001
    df = lake.read("billing.usage", "system").selectExpr(
        "record_id", "workspace_id", "cast(usage_start_time as string) as start", "usage_quantity",
        "custom_tags", "usage_metadata.cluster_id as cluster_id", "product_features.is_photon as photon",
        "record_type")
    return {r.record_id: r.asDict() for r in df.collect()}


# --------------------------------------------------------------------------- contracts (no Spark)
def test_table_names_resolve_and_unknown_names_suggest_close_matches() -> None:
    assert resolve_table("system.billing.usage") is SYSTEM_TABLES["billing.usage"]
    assert resolve_table("billing.usage") is SYSTEM_TABLES["billing.usage"]
    assert resolve_table("fact_usage") is GOLD_TABLES["fact_usage"]
    assert resolve_table("gold.fact_usage") is GOLD_TABLES["fact_usage"]
    with pytest.raises(HealthMonitorError, match=r"unknown table 'billing.usge'.*system\.billing\.usage"):
        resolve_table("billing.usge")
    with pytest.raises(HealthMonitorError, match="fact_usage"):
        resolve_table("fact_usag")


def test_enums_are_only_the_closed_lists_and_documented_null_keys_stay_optional() -> None:
    usage = enum_values(SYSTEM_TABLES["billing.usage"])
    assert usage == {"record_type": {"ORIGINAL", "RETRACTION", "RESTATEMENT"}}
    runs = enum_values(SYSTEM_TABLES["lakeflow.job_run_timeline"])
    assert "result_state" not in runs and "trigger_type" not in runs  # open-ended
    assert runs["run_type"] == {"JOB_RUN", "SUBMIT_RUN", "WORKFLOW_RUN"}
    assert enum_values(SYSTEM_TABLES["access.workspaces_latest"]) == {}  # status values grow
    assert "workspace_id" not in required_columns(GOLD_TABLES["commit_configurations"])
    assert "usage_quantity" in required_columns(SYSTEM_TABLES["billing.usage"])


# --------------------------------------------------------------------------- good files
def test_good_csv_round_trips_with_types_zones_and_nested_json(lake) -> None:  # noqa: ANN001
    report = ingest(lake, DATA / "usage_good.csv", "system.billing.usage")
    assert (report.ingested, report.quarantined, report.duplicates_skipped) == (4, 0, 0)
    assert report.files[0].extra_columns == ["exported_by"]
    assert report.next_step and "health-monitor build" in report.next_step
    rows = _usage(lake)
    assert rows["r-001"]["custom_tags"] == {"team": "data"}
    assert rows["r-001"]["cluster_id"] == "c-1" and rows["r-001"]["photon"] is True
    assert rows["r-001"]["start"] == "2026-03-01 10:00:00"
    assert rows["r-002"]["start"] == "2026-03-01 11:00:00"  # no zone: taken as UTC
    assert rows["r-003"]["start"] == "2026-03-01 12:00:00"  # +01:00 converted to UTC
    assert rows["r-003"]["usage_quantity"] == Decimal("0.000000000000000001")
    assert rows["r-004"]["usage_quantity"] == Decimal("-0.5")  # a RETRACTION may be negative


def test_parquet_round_trips_native_types(lake, tmp_path: Path) -> None:  # noqa: ANN001
    ny = pa.timestamp("us", tz="America/New_York")
    tbl = pa.table({
        "account_id": ["acc-1", "acc-1"],
        "workspace_id": ["7", "7"],
        "record_id": ["p-1", "p-2"],
        "sku_name": ["JOBS", "JOBS"],
        "usage_start_time": pa.array([datetime(2026, 3, 5, 10, tzinfo=UTC), datetime(2026, 3, 5, 11, tzinfo=UTC)], ny),
        "usage_end_time": pa.array([datetime(2026, 3, 5, 11, tzinfo=UTC), datetime(2026, 3, 5, 10, tzinfo=UTC)], ny),
        "usage_date": [date(2026, 3, 5), date(2026, 3, 5)],
        "custom_tags": pa.array([[("team", "bi")], None], pa.map_(pa.string(), pa.string())),
        "usage_quantity": pa.array([Decimal("2.5"), Decimal("1")], pa.decimal128(38, 18)),
        "usage_metadata": [{"cluster_id": "c-9", "job_id": None}, None],
        "record_type": ["ORIGINAL", "ORIGINAL"],
    })
    pq.write_table(tbl, tmp_path / "usage.parquet")
    report = ingest(lake, tmp_path / "usage.parquet", "billing.usage")
    assert (report.ingested, report.quarantined) == (1, 1)
    rows = _usage(lake)
    assert rows["p-1"]["start"] == "2026-03-05 10:00:00"
    assert rows["p-1"]["custom_tags"] == {"team": "bi"} and rows["p-1"]["cluster_id"] == "c-9"
    assert _quarantine(lake)[2].startswith("usage_end_time: 2026-03-05T10:00:00 is before usage_start_time")


# --------------------------------------------------------------------------- bad rows
def test_bad_csv_rows_are_quarantined_with_line_numbers_and_good_rows_land(lake) -> None:  # noqa: ANN001
    report = ingest(lake, DATA / "usage_bad_rows.csv", "billing.usage")
    assert (report.ingested, report.quarantined, report.duplicates_skipped) == (3, 8, 1)
    assert set(_usage(lake)) == {"b-001", "b-004", "b-011"}  # b-004: negative RETRACTION is fine
    rows = lake.read("quarantine", "monitor").collect()
    q = {r.row_number: r.reason for r in rows}
    raw_text = {r.row_number: r.raw_text for r in rows}
    # Line numbers in the file: header is line 1, b-001 spans lines 2-3 (quoted newline).
    assert q[4] == "usage_quantity: 'abc' is not a decimal"
    assert q[5] == "usage_quantity: negative quantity -3.5 on an ORIGINAL record"
    assert q[7].startswith("usage_end_time: 2026-03-02T04:00:00 is before usage_start_time")
    assert "usage_start_time: 9999-12-31T00:00:00 is outside 2000-01-01..2100-01-01" in q[8]
    assert q[9] == "malformed CSV: row has 6 fields, the header has 11"
    assert q[10] == "record_id: missing value in a required column"
    assert q[11].startswith("record_type: unknown value 'BOGUS'")
    assert "'not-a-time' is not an ISO-8601 timestamp" in q[12] and "custom_tags: '{oops' is not valid JSON" in q[12]
    assert raw_text[9] == "acc-1,1001,b-007,JOBS,2026-03-02T06:00:00Z,2026-03-02T07:00:00Z"

    # The same bytes again: skipped by the ingest log, nothing added anywhere.
    again = ingest(lake, DATA / "usage_bad_rows.csv", "billing.usage")
    assert again.files[0].status == "already ingested"
    assert (again.ingested, again.quarantined) == (0, 0)
    assert lake.count("billing.usage", "system") == 3 and lake.count("quarantine", "monitor") == 8


def test_json_lines_quarantine_malformed_lines_and_keys_dedupe_across_files(lake, tmp_path: Path) -> None:  # noqa: ANN001
    report = ingest(lake, DATA / "usage_mixed.jsonl", "billing.usage")
    assert (report.ingested, report.quarantined) == (2, 3)
    assert report.files[0].extra_columns == ["surprise"]
    q = _quarantine(lake)
    assert q[2].startswith("malformed JSON: Expecting")
    assert q[4] == "usage_quantity: 'lots' is not a decimal"
    assert q[5] == "malformed JSON: a line must be one object, got list"
    rows = _usage(lake)
    assert rows["j-001"]["usage_quantity"] == Decimal("3.000000000000000001")  # no float rounding
    assert rows["j-001"]["workspace_id"] == "1003"  # JSON number into a string id
    assert rows["j-004"]["custom_tags"] == {"team": "ml"}

    # Different bytes, same keys (an overlapping re-export): every row is a duplicate.
    lines = (DATA / "usage_mixed.jsonl").read_text().splitlines()
    (tmp_path / "again.jsonl").write_text("\n".join([lines[0], lines[-1], lines[0]]) + "\n")
    again = ingest(lake, tmp_path / "again.jsonl", "billing.usage")
    assert (again.ingested, again.duplicates_skipped, again.quarantined) == (0, 3, 0)
    assert lake.count("billing.usage", "system") == 2


def test_gold_table_ingest_allows_documented_null_key_and_rejects_end_before_start(lake) -> None:  # noqa: ANN001
    report = ingest(lake, DATA / "commit_configurations.csv", "commit_configurations")
    assert (report.ingested, report.quarantined) == (2, 1)
    assert report.next_step is None  # Gold written directly: nothing to rebuild
    assert _quarantine(lake)[4].startswith("end_date: 2027-01-01 is before start_date 2027-12-31")
    ts = lake.read("commit_configurations").where("workspace_id IS NULL").selectExpr("cast(updated_at as string)")
    assert ts.first()[0] == "2026-01-05 08:00:00"


# --------------------------------------------------------------------------- bad files (nothing written)
def test_missing_required_column_is_a_one_line_error(lake) -> None:  # noqa: ANN001
    with pytest.raises(HealthMonitorError) as exc:
        ingest(lake, DATA / "usage_missing_quantity.csv", "system.billing.usage")
    assert str(exc.value) == ("usage_missing_quantity.csv is missing required column(s) usage_quantity "
                              "for billing.usage")
    assert not lake.exists("billing.usage", "system")


def test_file_level_problems_are_one_line_errors(lake, tmp_path: Path) -> None:  # noqa: ANN001
    with pytest.raises(HealthMonitorError, match="does not exist"):
        ingest(lake, tmp_path / "nope.csv", "billing.usage")
    png = tmp_path / "picture.csv"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    with pytest.raises(HealthMonitorError, match="picture.csv is not a CSV file: it looks like a PNG image"):
        ingest(lake, png, "billing.usage")
    good = tmp_path / "good.parquet"
    pq.write_table(pa.table({"record_id": ["x"] * 100}), good)
    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(good.read_bytes()[:-30])
    with pytest.raises(HealthMonitorError, match="corrupt.parquet is not a readable Parquet file"):
        ingest(lake, corrupt, "billing.usage")
    (tmp_path / "fake.parquet").write_text("a,b\n1,2\n")
    with pytest.raises(HealthMonitorError, match="fake.parquet is not a Parquet file"):
        ingest(lake, tmp_path / "fake.parquet", "billing.usage")
    (tmp_path / "notes.txt").write_text("hello\n")
    with pytest.raises(HealthMonitorError, match="pass --format"):
        ingest(lake, tmp_path / "notes.txt", "billing.usage")
    (tmp_path / "all_bad.jsonl").write_text("account_id,record_id\nacc,1\n")
    with pytest.raises(HealthMonitorError, match="all_bad.jsonl is not a JSON-lines file"):
        ingest(lake, tmp_path / "all_bad.jsonl", "billing.usage")
    with pytest.raises(HealthMonitorError, match="unknown table 'usage'.*billing.usage"):
        ingest(lake, DATA / "usage_good.csv", "usage")
    assert lake.list_tables() == []


def test_empty_files_ingest_nothing_with_a_message(lake, tmp_path: Path) -> None:  # noqa: ANN001
    (tmp_path / "empty.csv").write_text("")
    header = (DATA / "usage_good.csv").read_text().splitlines()[0]
    (tmp_path / "header_only.csv").write_text(header + "\n")
    (tmp_path / "blank.jsonl").write_text("\n\n")
    report = ingest(lake, tmp_path, "billing.usage")
    assert [f.status for f in report.files] == ["empty", "empty", "empty"]
    assert report.ingested == 0 and all(f.message == "no data rows" for f in report.files)
    assert lake.list_tables() == []


# --------------------------------------------------------------------------- CLI
@pytest.fixture
def keep_spark(monkeypatch: pytest.MonkeyPatch) -> None:
    """cli.main stops the process's SparkSession on exit; the suite shares that one session."""
    monkeypatch.setattr(runtime, "stop_spark", lambda: None)


@pytest.mark.usefixtures("keep_spark")
def test_cli_errors_are_one_line_without_traceback(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cases = [
        ([str(tmp_path / "missing.csv"), "--table", "billing.usage"], "does not exist"),
        ([str(DATA / "usage_missing_quantity.csv"), "--table", "billing.usage"], "missing required column(s) usage_quantity"),
        ([str(DATA / "usage_good.csv"), "--table", "billing.usags"], "unknown table"),
    ]
    for args, expected in cases:
        rc = cli.main(["--data-dir", str(tmp_path / "hm"), "ingest", *args])
        err = capsys.readouterr().err
        assert rc == 2
        error_lines = [line for line in err.splitlines() if line.startswith("error: ")]
        assert len(error_lines) == 1 and expected in error_lines[0]
        assert "Traceback" not in err


@pytest.mark.usefixtures("keep_spark")
def test_cli_ingests_a_folder_and_prints_counts(spark, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:  # noqa: ANN001
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "part-0.csv.gz").write_bytes(gzip.compress((DATA / "usage_good.csv").read_bytes()))
    shutil.copy(DATA / "usage_mixed.jsonl", folder / "part-1.jsonl")
    shutil.copy(DATA / "usage_spark_style.csv", folder / "part-2.csv")  # quotes escaped as \" by Spark
    (folder / "_SUCCESS").write_text("")
    rc = cli.main(["--data-dir", str(tmp_path / "hm"), "ingest", str(folder), "--table", "system.billing.usage"])
    out = capsys.readouterr().out
    assert rc == 0
    assert out.splitlines()[0].startswith(
        "system.billing.usage: 7 rows ingested, 3 quarantined, 0 duplicates skipped (3 file(s), 10 rows read)")
    assert "next: run 'health-monitor build'" in out
    tags = lake_at(tmp_path / "hm", spark).read("billing.usage", "system").where("record_id = 's-001'")
    assert tags.selectExpr("custom_tags['team']", "usage_metadata.cluster_id").first() == ("sales, ops", "1120-223212-1d6b66ca")
