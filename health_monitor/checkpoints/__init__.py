"""Checkpoints of the streaming queries: locations, listing, backup, reset, txn app ids.

Online-model state lives in each query's state store, inside its checkpoint, so it is always
consistent with the offsets the query committed.
"""

from health_monitor.checkpoints.manager import (
    CheckpointInfo,
    app_id,
    backup_checkpoint,
    batch_watermark_ms,
    catchup_dir,
    checkpoint_info,
    checkpoint_location,
    checkpoint_root,
    last_committed_batch,
    last_offset_batch,
    late_event_watermark_ms,
    list_checkpoints,
    read_catchup_plan,
    read_layout,
    read_status,
    reset_checkpoint,
    restore_checkpoint,
    state_layout,
    write_catchup_plan,
    write_status,
)

__all__ = [
    "CheckpointInfo", "app_id", "backup_checkpoint", "batch_watermark_ms", "catchup_dir", "checkpoint_info",
    "checkpoint_location", "checkpoint_root", "last_committed_batch", "last_offset_batch",
    "late_event_watermark_ms", "list_checkpoints", "read_catchup_plan", "read_layout", "read_status",
    "reset_checkpoint", "restore_checkpoint", "state_layout", "write_catchup_plan", "write_status",
]
