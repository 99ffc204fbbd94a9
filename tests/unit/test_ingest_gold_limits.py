"""Ingest checks system rows against what Gold can hold (no Spark: the validator is pure Python)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pyspark.sql import types as T

from health_monitor.gold.builders.quarantine import cast_can_fail
from health_monitor.gold.ingest import _RowValidator
from health_monitor.gold.system_schemas import SYSTEM_TABLES


def _usage_cells(qty: object) -> list[object]:
    spec = SYSTEM_TABLES["billing.usage"]
    row = {"account_id": "acc", "workspace_id": "ws", "record_id": "r1", "sku_name": "S", "cloud": "AWS",
           "usage_start_time": "2026-03-01T01:00:00Z", "usage_end_time": "2026-03-01T02:00:00Z",
           "usage_date": "2026-03-01", "usage_unit": "DBU", "usage_quantity": qty, "record_type": "ORIGINAL"}
    return [row.get(c) for c in spec.column_names]


def test_a_quantity_gold_cannot_hold_is_quarantined_with_the_reason() -> None:
    v = _RowValidator(SYSTEM_TABLES["billing.usage"])
    vals, reason = v.check(_usage_cells("12345678901234567890"))
    assert vals is None
    assert reason == ("usage_quantity: 12345678901234567890 does not fit decimal(24,12), "
                      "the type the Gold build converts it to")
    vals, reason = v.check(_usage_cells("999999999999.5"))  # the largest that still fits
    assert reason is None and vals is not None


def test_precision_loss_to_zero_is_refused_and_ordinary_rounding_kept() -> None:
    v = _RowValidator(SYSTEM_TABLES["billing.usage"])
    _, reason = v.check(_usage_cells("1e-30"))
    assert reason == "usage_quantity: '1e-30' is below the precision of decimal(38,18) (it would be stored as 0)"
    vals, reason = v.check(_usage_cells("0.333333333333333333333"))
    assert reason is None
    assert vals[SYSTEM_TABLES["billing.usage"].column_names.index("usage_quantity")] == Decimal("0.333333333333333333")
    assert v.check(_usage_cells("0"))[1] is None


def test_a_price_gold_cannot_hold_is_quarantined() -> None:
    spec = SYSTEM_TABLES["billing.list_prices"]
    row = {"account_id": "a", "price_start_time": "2026-01-01T00:00:00", "sku_name": "S", "cloud": "AWS",
           "currency_code": "USD", "usage_unit": "DBU", "pricing": '{"default": 123456789}'}
    _, reason = _RowValidator(spec).check([row.get(c) for c in spec.column_names])
    assert reason is not None and reason.startswith("pricing.default: 123456789 does not fit decimal(20,12)")


@pytest.mark.parametrize(("src", "dst", "fails"), [
    (T.DecimalType(38, 18), T.DecimalType(24, 12), True),
    (T.DecimalType(20, 12), T.DecimalType(38, 18), False),
    (T.LongType(), T.IntegerType(), True),
    (T.IntegerType(), T.LongType(), False),
    (T.LongType(), T.DecimalType(38, 18), False),
    (T.LongType(), T.DecimalType(20, 2), True),
    (T.StringType(), T.TimestampType(), True),
    (T.TimestampType(), T.DateType(), False),
    (T.DecimalType(38, 18), T.DoubleType(), False),
    (T.DoubleType(), T.StringType(), False),
    (T.NullType(), T.LongType(), False),
])
def test_only_casts_that_can_fail_are_checked(src: T.DataType, dst: T.DataType, fails: bool) -> None:
    assert cast_can_fail(src, dst) is fails
