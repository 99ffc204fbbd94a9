"""A poison row never stops the Gold build: it is set aside in monitor.quarantine with the reason,
the rest of the batch lands, later builds keep growing Gold, and one line says what was set aside."""

from __future__ import annotations

from datetime import datetime as dt
from decimal import Decimal

import pytest

from health_monitor import progress
from health_monitor.gold.builders import build_gold
from health_monitor.gold.system_schemas import SYSTEM_TABLES
from health_monitor.runtime import Lakehouse

SKU = "PREMIUM_JOBS_COMPUTE"
POISON = Decimal("12345678901234567890")  # fits system decimal(38,18), not the cost's decimal(24,12)


def _put(lake: Lakehouse, name: str, rows: list[dict]) -> None:
    spec = SYSTEM_TABLES[name]
    data = [tuple(r.get(c, {"account_id": "acc", "workspace_id": "ws1"}.get(c)) for c in spec.column_names)
            for r in rows]
    lake.write(lake.spark.createDataFrame(data, spec.schema), name, "system", mode="append")


def _usage(record_id: str, hour: int, qty: Decimal, sku: str = SKU) -> dict:
    start = dt(2026, 3, 1, hour)
    return {"record_id": record_id, "sku_name": sku, "cloud": "AWS", "usage_start_time": start,
            "usage_end_time": start.replace(minute=59), "usage_date": start.date(), "usage_unit": "DBU",
            "usage_quantity": qty, "record_type": "ORIGINAL", "custom_tags": {}, "billing_origin_product": "JOBS",
            "usage_metadata": {"job_id": "j1"}, "identity_metadata": {}, "product_features": {}}


def _price(sku: str, price: Decimal) -> dict:
    return {"sku_name": sku, "cloud": "AWS", "currency_code": "USD", "usage_unit": "DBU",
            "price_start_time": dt(2026, 1, 1), "price_end_time": None, "pricing": {"default": price}}


def test_poison_usage_and_price_rows_are_set_aside_and_gold_keeps_growing(
        lake: Lakehouse, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(progress, "_ENABLED", True)
    _put(lake, "billing.list_prices", [_price(SKU, Decimal("0.15")), _price("BAD_SKU", Decimal("123456789"))])
    _put(lake, "billing.usage", [_usage("u1", 1, Decimal("2")), _usage("poison", 2, POISON),
                                 _usage("u2", 3, Decimal("3"))])
    assert build_gold(lake, ["fact_usage"]) == {"fact_usage": 2}
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if "system.billing.usage set aside" in x)
    assert "gold.fact_usage: 1 row(s)" in line and "monitor.quarantine" in line
    assert "system.billing.list_prices set aside" in err

    q = {r.source_file: r for r in lake.read("quarantine", "monitor").collect()}
    assert set(q) == {"system.billing.usage", "system.billing.list_prices"}
    bad = q["system.billing.usage"]
    assert bad.table_name == "gold.fact_usage" and '"record_id":"poison"' in bad.raw_text
    assert bad.reason == "usage_quantity: 12345678901234567890.000000000000000000 cannot be converted to decimal(24,12)"
    assert "pricing.default" in q["system.billing.list_prices"].reason

    # Gold keeps growing after the poison row; reruns never quarantine a row twice.
    _put(lake, "billing.usage", [_usage("u3", 4, Decimal("1"))])
    assert build_gold(lake, ["fact_usage"]) == {"fact_usage": 1}
    assert lake.count("fact_usage") == 3
    assert lake.count("quarantine", "monitor") == 2
    costs = {r.record_id: r.list_cost for r in lake.read("fact_usage").collect()}
    assert costs["u1"] == Decimal("0.3") and set(costs) == {"u1", "u2", "u3"}
