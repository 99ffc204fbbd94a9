"""``health-monitor ingest`` of a whole export: several files and folders, tables from their names,
one Spark session, one summary table; values Gold cannot hold are quarantined at ingest."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from health_monitor import cli, runtime
from health_monitor.runtime import Lakehouse
from health_monitor.settings import load_settings

DATA = Path(__file__).parent.parent / "data" / "ingest"


def _usage(record_id: str, qty: str) -> str:
    return json.dumps({"account_id": "acc-1", "workspace_id": "1001", "record_id": record_id, "sku_name": "JOBS",
                       "cloud": "AWS", "usage_start_time": "2026-03-03T00:00:00Z",
                       "usage_end_time": "2026-03-03T01:00:00Z", "usage_date": "2026-03-03", "usage_unit": "DBU",
                       "usage_quantity": qty, "record_type": "ORIGINAL"})


def test_a_whole_export_in_one_call(spark, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,  # noqa: ANN001
                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(runtime, "stop_spark", lambda: None)  # the suite shares one session
    export = tmp_path / "export"
    (export / "system.billing.usage").mkdir(parents=True)
    shutil.copy(DATA / "usage_good.csv", export / "system.billing.usage" / "part-0.csv")
    (export / "billing.list_prices.csv").write_text(
        "account_id,price_start_time,sku_name,cloud,currency_code,usage_unit,pricing\n"
        'acc-1,2026-01-01T00:00:00Z,JOBS,AWS,USD,DBU,"{""default"": 0.15}"\n'
        'acc-1,2026-01-01T00:00:00Z,BAD,AWS,USD,DBU,"{""default"": 123456789}"\n')
    more = tmp_path / "billing.usage.jsonl"
    more.write_text("\n".join([_usage("ok-1", "2.5"), _usage("poison", "12345678901234567890"),
                               _usage("tiny", "1e-30")]) + "\n")

    rc = cli.main(["--data-dir", str(tmp_path / "hm"), "ingest", str(export), str(more)])
    out = capsys.readouterr().out
    assert rc == 0
    table = {line.split()[0]: line.split()[1:] for line in out[out.index("table  "):].splitlines()[1:]}
    assert table["system.billing.usage"] == ["2", "7", "5", "2", "0"]
    assert table["system.billing.list_prices"] == ["1", "2", "1", "1", "0"]
    assert table["total"] == ["3", "9", "6", "3", "0"]
    assert out.count("next: run 'health-monitor build'") == 1

    lake = Lakehouse(load_settings(tmp_path / "hm"), spark)
    reasons = {r.reason for r in lake.read("quarantine", "monitor").collect()}
    assert "usage_quantity: 12345678901234567890 does not fit decimal(24,12), the type the Gold build converts it to" in reasons
    assert any(r.startswith("usage_quantity: '1e-30' is below the precision") for r in reasons)
    assert any(r.startswith("pricing.default: 123456789 does not fit decimal(20,12)") for r in reasons)

    # A file whose name names no table is one line, and nothing is written.
    (tmp_path / "usage.csv").write_text("x\n1\n")
    rc = cli.main(["--data-dir", str(tmp_path / "hm"), "ingest", str(tmp_path / "usage.csv")])
    assert rc == 2
    assert capsys.readouterr().err.strip().endswith("from the name: name files after their table "
                                                    "(system.billing.usage.jsonl) or pass --table")
