"""The streaming engine: one Structured Streaming query per domain, scored per key, written once.

Split by responsibility (this module only re-exports, for callers of the old path):

* :mod:`~health_monitor.streaming.sources`: Gold facts -> projected, keyed rows;
* :mod:`~health_monitor.streaming.scoring`: the stateful per-key window scorer;
* :mod:`~health_monitor.streaming.query`: the streaming DataFrame of a domain;
* :mod:`~health_monitor.streaming.sink`: the idempotent ``foreachBatch`` writer;
* :mod:`~health_monitor.streaming.run`: starting, reporting, stopping and resetting queries.

What a domain is (sources, watermark, detector, models, ...) lives in :mod:`health_monitor.domains`.
"""

from health_monitor.domains import SPECS, STREAM_DOMAINS
from health_monitor.streaming.query import build_stream, query_name
from health_monitor.streaming.run import (
    StreamRun,
    available_domains,
    pid_file,
    reset_stream,
    run_available_now,
    start_streams,
    wait,
)
from health_monitor.streaming.scoring import (
    HEARTBEAT,
    OUTPUT_COLUMNS,
    OUTPUT_SCHEMA,
    PRIOR_WINDOWS,
    STATE_SCHEMA,
    _detector,
    make_state_function,
    score_windows,
)
from health_monitor.streaming.sink import BatchSink, BatchStats, expand_scored

DOMAINS = STREAM_DOMAINS
#: Watermark delay per streamed domain (from the specs).
WATERMARK_DELAY = {s.name: s.watermark for s in SPECS if s.streams}

__all__ = [
    "DOMAINS", "HEARTBEAT", "OUTPUT_COLUMNS", "OUTPUT_SCHEMA", "PRIOR_WINDOWS", "STATE_SCHEMA",
    "WATERMARK_DELAY", "BatchSink", "BatchStats", "StreamRun", "_detector", "available_domains",
    "build_stream", "expand_scored", "make_state_function", "pid_file", "query_name", "reset_stream",
    "run_available_now", "score_windows", "start_streams", "wait",
]
