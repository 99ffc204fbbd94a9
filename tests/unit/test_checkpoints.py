"""Checkpoint locations, app ids, watermarks from the offset log, backup and reset (no Spark)."""

from __future__ import annotations

import json

import pytest

from health_monitor import checkpoints
from health_monitor.errors import HealthMonitorError


def _fake_offsets(loc, batch_id: int, watermark_ms: int) -> None:
    (loc / "offsets").mkdir(parents=True, exist_ok=True)
    meta = {"batchWatermarkMs": watermark_ms, "batchTimestampMs": 1, "conf": {}}
    (loc / "offsets" / str(batch_id)).write_text("v1\n" + json.dumps(meta) + "\n{}\n")


def test_location_is_per_query_under_the_data_dir(settings):
    loc = checkpoints.checkpoint_location(settings, "hm_cost")
    assert loc == settings.data_dir / "checkpoints" / "hm_cost"
    with pytest.raises(HealthMonitorError):
        checkpoints.checkpoint_location(settings, "../escape")


def test_app_id_is_stable_until_a_reset_draws_a_new_one(settings):
    first = checkpoints.app_id(settings, "hm_cost")
    assert checkpoints.app_id(settings, "hm_cost") == first
    assert checkpoints.app_id(settings, "hm_security") != first
    _fake_offsets(checkpoints.checkpoint_location(settings, "hm_cost"), 0, 0)
    new = checkpoints.reset_checkpoint(settings, "hm_cost")
    assert new != first
    assert checkpoints.app_id(settings, "hm_cost") == new
    assert checkpoints.last_offset_batch(checkpoints.checkpoint_location(settings, "hm_cost")) is None


def test_watermarks_come_from_the_offset_log(settings):
    loc = checkpoints.checkpoint_location(settings, "hm_cost")
    _fake_offsets(loc, 0, 0)
    _fake_offsets(loc, 1, 5_000)
    _fake_offsets(loc, 2, 9_000)
    assert checkpoints.batch_watermark_ms(loc, 2) == 9_000
    # Late rows of batch 2 are judged against batch 1's watermark; batch 0 has none.
    assert checkpoints.late_event_watermark_ms(loc, 2) == 5_000
    assert checkpoints.late_event_watermark_ms(loc, 0) == 0
    (loc / "commits").mkdir()
    (loc / "commits" / "1").write_text("v1\n{}\n")
    info = checkpoints.checkpoint_info(settings, "hm_cost")
    assert (info.last_batch, info.last_committed, info.in_flight) == (2, 1, True)
    assert info.watermark is not None and info.watermark.timestamp() == 9.0


def test_backup_restore_and_list(settings):
    loc = checkpoints.checkpoint_location(settings, "hm_reliability")
    _fake_offsets(loc, 0, 0)
    aid = checkpoints.app_id(settings, "hm_reliability")
    checkpoints.write_status(loc, {"last_batch": {"batch_id": 0}})
    backup = checkpoints.backup_checkpoint(settings, "hm_reliability")
    checkpoints.reset_checkpoint(settings, "hm_reliability")
    checkpoints.restore_checkpoint(settings, "hm_reliability", backup)
    assert checkpoints.app_id(settings, "hm_reliability") == aid
    names = [i.query_name for i in checkpoints.list_checkpoints(settings)]
    assert names == ["hm_reliability"]
    assert checkpoints.read_status(loc)["last_batch"]["batch_id"] == 0
    with pytest.raises(HealthMonitorError):
        checkpoints.backup_checkpoint(settings, "hm_nothing")
