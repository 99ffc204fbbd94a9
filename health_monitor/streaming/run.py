"""Running the domains' queries: start, report progress, wait, stop, reset."""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pyspark.sql.streaming import StreamingQuery

from health_monitor import checkpoints, progress
from health_monitor.domains import STREAM_DOMAINS, spec
from health_monitor.errors import HealthMonitorError
from health_monitor.runtime import Lakehouse, start_query
from health_monitor.settings import Settings
from health_monitor.streaming import catchup
from health_monitor.streaming.query import build_stream, query_name
from health_monitor.streaming.registered import log_blend
from health_monitor.streaming.sink import BatchSink, BatchStats
from health_monitor.streaming.tables import ANOMALY_SCORES, LATE_ROWS


@dataclass
class StreamRun:
    """The queries one ``stream start`` runs, with their sinks (for progress and status)."""

    lake: Lakehouse
    queries: dict[str, StreamingQuery]
    sinks: dict[str, BatchSink]
    seen_batches: dict[str, int] = field(default_factory=dict)

    def active(self) -> bool:
        return any(q.isActive for q in self.queries.values())

    def check(self) -> None:
        """Raise the first query failure as a one-line error (after stopping the others)."""
        for name, q in self.queries.items():
            exc = q.exception()
            if exc is not None:
                self.stop()
                msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise HealthMonitorError(f"stream query {name} failed: {msg}")

    def report(self) -> None:
        """Print a progress line per finished micro-batch and refresh each query's status file."""
        for domain, q in self.queries.items():
            sink = self.sinks[domain]
            if (q.lastProgress or {}).get("batchId") in (None, self.seen_batches.get(domain)):
                continue  # no batch finished since the last report (spares a stats read on Connect)
            stats = sink.current()
            if stats.batch_id < 0 or self.seen_batches.get(domain) == stats.batch_id:
                continue
            prog = _progress_for(q, stats.batch_id)
            if prog.get("batchId") != stats.batch_id and q.isActive:
                continue  # Spark posts the batch's progress just after the sink returns
            self.seen_batches[domain] = stats.batch_id
            # Connect's progress objects carry absent metrics as None: `or 0`, not a .get default.
            dropped = sum(int(op.get("numRowsDroppedByWatermark") or 0) for op in prog.get("stateOperators") or [])
            progress.info(
                f"{domain} batch {stats.batch_id}: {prog.get('numInputRows') or 0:,} rows in, "
                f"{stats.windows} windows scored (max score {stats.max_score:.2f}), "
                f"{stats.late_rows} late ({dropped} dropped by watermark), {stats.alerts} alert rows, "
                f"{stats.seconds:.1f}s")
            self.write_status(domain, prog)

    def write_status(self, domain: str, prog: dict | None = None) -> None:
        q, sink = self.queries[domain], self.sinks[domain]
        prog = prog if prog is not None else (q.lastProgress or {})
        last = sink.current()
        checkpoints.write_status(sink.location, {
            "query": sink.name, "domain": domain, "run_id": str(q.runId), "active": q.isActive,
            "last_batch": vars(last) | {"totals": last.totals},
            "progress": {k: prog.get(k) for k in ("batchId", "timestamp", "numInputRows",
                                                  "inputRowsPerSecond", "processedRowsPerSecond",
                                                  "eventTime", "sources")},
            "dropped_by_watermark": sum(int(op.get("numRowsDroppedByWatermark") or 0)
                                        for op in prog.get("stateOperators") or []),
            "updated_at": datetime.now(UTC).isoformat(),
        })

    def stop(self, drain_s: float = 0.0) -> None:
        """Stop every query; with ``drain_s`` first let a running micro-batch finish (up to that long).

        Stopping mid-batch is safe (the sinks are idempotent and the batch reruns on restart);
        draining just avoids redoing the work.
        """
        deadline = time.monotonic() + drain_s
        while drain_s and time.monotonic() < deadline and any(
                q.isActive and q.status.get("isTriggerActive") for q in self.queries.values()):
            time.sleep(0.2)
        for q in self.queries.values():
            with contextlib.suppress(Exception):  # already stopped or failed: nothing to stop
                q.stop()


def _progress_for(q: StreamingQuery, batch_id: int) -> dict:
    for p in reversed(q.recentProgress or []):
        if p.get("batchId") == batch_id:
            return p
    return q.lastProgress or {}


def available_domains(lake: Lakehouse, domains: list[str] | tuple[str, ...] = STREAM_DOMAINS) -> list[str]:
    """The requested domains with at least one source table; a one-line note names what is missing.

    Accounts enable system tables separately: a domain without any of its sources has no
    stream, and one with some of them runs on those (security without lineage scores audit).
    """
    out = []
    for d in domains:
        missing = [t for t in spec(d).sources if not lake.exists(t)]
        if len(missing) == len(spec(d).sources):
            progress.info(f"skip stream {d}: no Gold {', '.join(missing)}")
            continue
        if missing:
            progress.info(f"stream {d}: without Gold {', '.join(missing)} (the signals it feeds are absent)")
        out.append(d)
    return out


def start_streams(lake: Lakehouse, domains: list[str] | tuple[str, ...] = STREAM_DOMAINS,
                  trigger: str | None = "30 seconds", available_now: bool = False,
                  max_files_per_trigger: int | None = None, rules: Any = None,
                  shuffle_partitions: int | None = None, heartbeat_dir: Path | None = None,
                  catch_up: bool = False) -> StreamRun:
    """Start one query per domain (those with source tables) and return them running.

    Args:
        lake: the lakehouse (Gold tables in, monitor tables out).
        domains: subset of :data:`~health_monitor.domains.STREAM_DOMAINS`.
        trigger: processing-time trigger interval (``"30 seconds"``) when not ``available_now``.
        available_now: process everything available in as many batches as needed, then stop.
        max_files_per_trigger: Delta source rate limit (smaller batches; replay and tests use it).
        rules: a :class:`~health_monitor.rules.RuleSet`; loaded from the settings when None.
        shuffle_partitions: state-store partitions of a *new* checkpoint (default: the session's);
            small replays run faster on one (fewer Python workers to start).
        heartbeat_dir: watermark heartbeats for finite recordings (see :func:`build_stream`).
        catch_up: a first start scores the backlog with the batch path and the stream starts
            after it (:mod:`~health_monitor.streaming.catchup`; resumes an interrupted catch-up,
            a no-op for a stream that has run). A finished catch-up is honoured either way.
    """
    bad = [d for d in domains if d not in STREAM_DOMAINS]
    if bad:
        raise HealthMonitorError(f"unknown stream domain(s) {', '.join(bad)}; expected {', '.join(STREAM_DOMAINS)}")
    todo = available_domains(lake, domains)
    if not todo:
        raise HealthMonitorError(
            f"no Gold source tables for {', '.join(domains)} in {lake.settings.data_dir}: "
            "run 'health-monitor simulate' (or ingest and build) first")
    if rules is None:
        from health_monitor.rules import load_rules

        rules = load_rules(lake.settings)
    queries, sinks = {}, {}
    conf = lake.spark.conf
    previous = conf.get("spark.sql.shuffle.partitions")
    if shuffle_partitions:
        # Each query clones the session conf when it starts; the checkpoint then keeps the value.
        conf.set("spark.sql.shuffle.partitions", str(shuffle_partitions))
    try:
        # Before any query starts: a catch-up's handover is the stream's first input.
        plans = {d: catchup.prepare(lake, d, rules) if catch_up else catchup.load_plan(lake, d) for d in todo}
        for domain in todo:
            log_blend(lake, domain)  # which champions this stream blends in, or why not
            sink = BatchSink(lake, domain, rules)
            plan = plans[domain]
            if plan is not None:
                sink.late_floor_ms = plan.late_floor_ms
            writer = (build_stream(lake, domain, max_files_per_trigger, heartbeat_dir, plan).writeStream
                      .queryName(sink.name)
                      .option("checkpointLocation", str(sink.location))
                      .outputMode("append")
                      .foreachBatch(sink))
            writer = writer.trigger(availableNow=True) if available_now else writer.trigger(
                processingTime=trigger or "30 seconds")
            queries[domain] = start_query(writer)
            sinks[domain] = sink
    except Exception:
        for q in queries.values():
            q.stop()
        raise
    finally:
        conf.set("spark.sql.shuffle.partitions", previous)
    return StreamRun(lake, queries, sinks)


def wait(run: StreamRun, stop_event: threading.Event | None = None, poll_s: float = 0.5) -> None:
    """Report progress until every query has finished (availableNow) or ``stop_event`` is set."""
    try:
        while run.active():
            run.check()
            run.report()
            if stop_event is not None and stop_event.is_set():
                progress.info("stopping: letting the running micro-batch finish ...")
                run.stop(drain_s=120.0)
                break
            time.sleep(poll_s)
        run.check()
        run.report()
    finally:
        for domain in run.queries:
            run.write_status(domain)


def run_available_now(lake: Lakehouse, domains: list[str] | tuple[str, ...] = STREAM_DOMAINS,
                      max_files_per_trigger: int | None = None, rules: Any = None,
                      shuffle_partitions: int | None = None,
                      heartbeat_dir: Path | None = None, catch_up: bool = False) -> dict[str, BatchStats]:
    """Process everything the Gold tables hold now, then return each domain's last batch stats."""
    run = start_streams(lake, domains, available_now=True, max_files_per_trigger=max_files_per_trigger,
                        rules=rules, shuffle_partitions=shuffle_partitions, heartbeat_dir=heartbeat_dir,
                        catch_up=catch_up)
    wait(run)
    return {d: s.current() for d, s in run.sinks.items()}


def pid_file(settings: Settings) -> Path:
    """Where ``stream start`` records its process id (``stream stop`` and ``status`` read it)."""
    return settings.data_dir / "stream.pid"


def reset_stream(lake: Lakehouse, domain: str) -> str:
    """Forget a domain's stream: checkpoint (offsets, state, learned models), its anomaly scores
    and late rows; returns the new txnAppId. Alerts stay (people may have acknowledged them): the
    rerun folds into the same alert ids. Run it while the stream is stopped."""
    name = query_name(domain)
    new_app = checkpoints.reset_checkpoint(lake.settings, name)
    for table, cond in ((ANOMALY_SCORES.name, f"domain = '{domain}'"), (LATE_ROWS.name, f"query_name = '{name}'")):
        if lake.exists(table, "monitor"):
            with lake.writer_lock(table, "monitor"):
                lake.spark.sql(f"DELETE FROM {lake.table_name(table, 'monitor')} WHERE {cond}")
    return new_app
