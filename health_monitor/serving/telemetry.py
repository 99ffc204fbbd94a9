"""What the server records about itself: Prometheus metrics and the Delta inference table.

Logging must never slow or block an answer, so requests go onto an in-memory queue and one
background thread writes them to Delta in batches (one commit per second at most). On a clean
shutdown (SIGTERM, Ctrl-C) the queue is drained before the process exits, so nothing answered
is missing from the table.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import defaultdict
from typing import Any

import pyarrow as pa

from health_monitor.runtime import Lakehouse

log = logging.getLogger(__name__)

INFERENCE_TABLE = "inference_log"
INFERENCE_SCHEMA = pa.schema([
    ("request_id", pa.string()), ("request_time", pa.timestamp("us", tz="UTC")),
    ("endpoint", pa.string()), ("model_name", pa.string()), ("model_version", pa.string()),
    ("status", pa.int32()), ("latency_ms", pa.float64()), ("n_records", pa.int32()),
    ("request", pa.string()), ("response", pa.string()),
])

#: Latency histogram buckets (seconds), dense below 50 ms where the spec's budgets are.
BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    """Request counts by endpoint and status, latency histograms by endpoint (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, int], int] = defaultdict(int)
        self._hist: dict[str, list[int]] = {}
        self._sum: dict[str, float] = defaultdict(float)
        self.logged_rows = 0

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        with self._lock:
            self._counts[(endpoint, status)] += 1
            h = self._hist.setdefault(endpoint, [0] * (len(BUCKETS) + 1))
            i = next((j for j, b in enumerate(BUCKETS) if seconds <= b), len(BUCKETS))
            h[i] += 1
            self._sum[endpoint] += seconds

    def render(self) -> str:
        """The Prometheus text exposition format (version 0.0.4)."""
        with self._lock:
            out = ["# HELP health_monitor_requests_total Requests by endpoint and HTTP status.",
                   "# TYPE health_monitor_requests_total counter"]
            for (ep, status), n in sorted(self._counts.items()):
                out.append(f'health_monitor_requests_total{{endpoint="{ep}",status="{status}"}} {n}')
            out += ["# HELP health_monitor_request_seconds Request latency inside the server.",
                    "# TYPE health_monitor_request_seconds histogram"]
            for ep, h in sorted(self._hist.items()):
                cum = 0
                for b, n in zip((*BUCKETS, float("inf")), h, strict=True):
                    cum += n
                    le = "+Inf" if b == float("inf") else repr(b)
                    out.append(f'health_monitor_request_seconds_bucket{{endpoint="{ep}",le="{le}"}} {cum}')
                out.append(f'health_monitor_request_seconds_sum{{endpoint="{ep}"}} {self._sum[ep]:.6f}')
                out.append(f'health_monitor_request_seconds_count{{endpoint="{ep}"}} {cum}')
            out += ["# HELP health_monitor_inference_rows_logged_total Rows committed to the inference table.",
                    "# TYPE health_monitor_inference_rows_logged_total counter",
                    f"health_monitor_inference_rows_logged_total {self.logged_rows}"]
        return "\n".join(out) + "\n"


class InferenceLogger:
    """Queue of request records written to ``monitor.inference_log`` by one background thread."""

    def __init__(self, lake: Lakehouse, metrics: Metrics, flush_s: float = 1.0, batch_rows: int = 2000) -> None:
        self.lake = lake
        self.metrics = metrics
        self.flush_s = flush_s
        self.batch_rows = batch_rows
        self._q: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="inference-log", daemon=True)
        self.failures = 0

    def start(self) -> None:
        self._thread.start()

    def put(self, row: dict[str, Any]) -> None:
        """Enqueue one request record (never blocks)."""
        self._q.put_nowait(row)

    def close(self, timeout_s: float = 30.0) -> None:
        """Drain the queue and stop (called on shutdown)."""
        self._q.put(None)
        self._thread.join(timeout_s)

    def _run(self) -> None:
        pending: list[dict[str, Any]] = []
        deadline = time.monotonic() + self.flush_s
        while True:
            try:
                item = self._q.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                item = ...
            if item is None:
                self._flush(pending)
                return
            if item is not ...:
                pending.append(item)
            if len(pending) >= self.batch_rows or time.monotonic() >= deadline:
                self._flush(pending)
                pending = []
                deadline = time.monotonic() + self.flush_s

    def _flush(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        table = pa.Table.from_pylist(rows, schema=INFERENCE_SCHEMA)
        for attempt in range(3):
            try:
                self._write(table)
                self.metrics.logged_rows += len(rows)
                return
            except Exception as exc:  # noqa: BLE001 - logging must not take the server down
                log.warning("inference log write failed (attempt %d): %s", attempt + 1, exc)
                time.sleep(0.5 * (attempt + 1))
        self.failures += len(rows)
        log.error("inference log: %d rows could not be written", len(rows))

    def _write(self, table: pa.Table) -> None:
        if self.lake.settings.is_databricks:
            self.lake.write(self.lake.spark.createDataFrame(table.to_pandas()), INFERENCE_TABLE, "monitor")
            return
        from deltalake import write_deltalake

        with self.lake.writer_lock(INFERENCE_TABLE, "monitor", wait_s=10.0):
            write_deltalake(str(self.lake.location(INFERENCE_TABLE, "monitor")), table, mode="append")
