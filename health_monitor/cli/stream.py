"""``health-monitor stream``: run, inspect and stop the streaming anomaly engine.

``stream start`` runs in the foreground (one query per domain), prints a line per micro-batch and
writes a pid file; ``stream stop`` signals that process, which stops its queries gracefully.
``stream status`` reads checkpoints and the monitor tables, so it works whether or not a stream
is running. ``stream reset`` / ``stream backup`` manage the checkpoints.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import threading
import time
from pathlib import Path

from health_monitor.domains import STREAM_DOMAINS
from health_monitor.errors import HealthMonitorError

DOMAINS = STREAM_DOMAINS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("stream", help="run the streaming anomaly engine (start, status, stop)",
                       description="Structured Streaming queries over the Gold fact tables that score "
                                   "hourly windows per entity and write anomaly scores and alerts.")
    ss = p.add_subparsers(dest="stream_command", metavar="ACTION")
    s = ss.add_parser("start", help="start the queries in the foreground (Ctrl-C or 'stream stop' ends them)")
    s.add_argument("--domains", default=",".join(DOMAINS), help=f"comma-separated: {','.join(STREAM_DOMAINS)}")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--trigger", default="30s", help="micro-batch interval, e.g. 30s, 5m (default 30s)")
    g.add_argument("--available-now", action="store_true",
                   help="process everything available now, then exit")
    s.add_argument("--max-files-per-trigger", type=int, default=None,
                   help="cap on Delta files per micro-batch (smaller batches)")
    s.add_argument("--catch-up", action="store_true",
                   help="first start over a long history: score the backlog with the batch path, then "
                        "stream from the Delta versions after it (resumes an interrupted catch-up; "
                        "no effect on a stream that has already run)")
    s.add_argument("--state-buckets", type=int, default=None, metavar="B",
                   help="buckets of keys in a NEW checkpoint's bucketed state (default: "
                        "$HEALTH_MONITOR_STATE_BUCKETS, else 4 x shuffle partitions); a checkpoint "
                        "keeps the count it was made with")
    s.set_defaults(func=run_start)
    st = ss.add_parser("status", help="queries, last batch, offsets, rows, late rows and alerts")
    st.set_defaults(func=run_status)
    sp = ss.add_parser("stop", help="stop a running 'stream start' gracefully")
    sp.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for it to exit")
    sp.set_defaults(func=run_stop)
    r = ss.add_parser("reset", help="forget a domain's checkpoint, learned state and scores (new txnAppId)")
    r.add_argument("--domains", required=True, help="comma-separated domains to reset")
    r.set_defaults(func=run_reset)
    b = ss.add_parser("backup", help="copy the checkpoints (stop the stream first)")
    b.add_argument("--domains", default=",".join(DOMAINS))
    b.set_defaults(func=run_backup)
    p.set_defaults(func=lambda args, ctx: (p.print_help(), 2)[1])


def parse_domains(text: str) -> list[str]:
    """``cost,security`` -> ['cost', 'security'], with a one-line error for unknown names."""
    names = [d.strip() for d in text.split(",") if d.strip()]
    bad = [d for d in names if d not in DOMAINS]
    if bad or not names:
        raise HealthMonitorError(f"unknown domain(s) {', '.join(bad) or '(none)'}; choose from {', '.join(DOMAINS)}")
    return names


def parse_trigger(text: str) -> str:
    """``30s`` / ``5m`` / ``1 minute`` -> Spark's ``'30 seconds'`` form."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|sec|secs|seconds?|m|min|mins|minutes?|h|hours?)?\s*", text)
    if not m:
        raise HealthMonitorError(f"invalid --trigger {text!r}: use e.g. 30s, 5m or 1h")
    n, unit = float(m.group(1)), (m.group(2) or "s")
    seconds = n / 1000 if unit == "ms" else n * (60 if unit.startswith("m") else 3600 if unit.startswith("h") else 1)
    if seconds <= 0:
        raise HealthMonitorError("--trigger must be positive")
    return f"{int(seconds * 1000)} milliseconds" if seconds < 1 else f"{seconds:g} seconds"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _pid_file(settings) -> Path:  # noqa: ANN001 - Settings
    from health_monitor.streaming.run import pid_file

    return pid_file(settings)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def run_start(args: argparse.Namespace, ctx) -> int:  # noqa: ANN001
    from health_monitor import progress
    from health_monitor.streaming import engine

    domains = parse_domains(args.domains)
    trigger = None if args.available_now else parse_trigger(args.trigger)
    if getattr(args, "state_buckets", None) is not None:
        from health_monitor.streaming.bucketed import BUCKETS_ENV, bucket_count

        # read where a new checkpoint's layout is recorded (bucketed.new_layout), in this process
        os.environ[BUCKETS_ENV] = str(bucket_count(1, args.state_buckets))
    lake = ctx.lake
    pid_path = engine.pid_file(lake.settings)
    other = _read_pid(pid_path)
    if other and other != os.getpid() and _pid_alive(other):
        raise HealthMonitorError(f"a stream is already running (pid {other}); 'health-monitor stream stop' first")
    pid_path.parent.mkdir(parents=True, exist_ok=True)
    pid_path.write_text(str(os.getpid()))
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        run = engine.start_streams(lake, domains, trigger=trigger, available_now=args.available_now,
                                   max_files_per_trigger=args.max_files_per_trigger,
                                   catch_up=args.catch_up)
        mode = "available-now" if args.available_now else f"trigger every {trigger}"
        progress.info(f"streaming {', '.join(run.queries)} ({mode}); pid {os.getpid()}; "
                      "stop with Ctrl-C or 'health-monitor stream stop'")
        try:
            engine.wait(run, stop)
        except KeyboardInterrupt:
            progress.info("stopping ...")
            run.stop()
        for domain, sink in run.sinks.items():
            t = sink.last.totals
            print(f"{domain}: {t['batches']} batches, {t['windows']:,} windows scored, "
                  f"{t['late_rows']:,} late rows kept, {t['alerts']:,} alert rows written")
    finally:
        signal.signal(signal.SIGTERM, previous)
        if _read_pid(pid_path) == os.getpid():
            pid_path.unlink(missing_ok=True)
    return 0


def run_status(args: argparse.Namespace, ctx) -> int:  # noqa: ANN001
    from health_monitor import checkpoints
    from health_monitor.streaming import engine

    settings = ctx.settings
    pid = _read_pid(engine.pid_file(settings))
    running = pid is not None and _pid_alive(pid)
    print(f"stream process: {'running, pid ' + str(pid) if running else 'not running'}")
    infos = {i.query_name: i for i in checkpoints.list_checkpoints(settings)}
    if not infos:
        print(f"no stream checkpoints in {checkpoints.checkpoint_root(settings)}: run 'health-monitor stream start'")
        return 0
    lake = ctx.lake
    late_counts, alert_counts = {}, {}
    if lake.exists("late_rows", "monitor"):
        late_counts = {r.query_name: r["count"] for r in lake.read("late_rows", "monitor").groupBy("query_name").count().collect()}
    if lake.exists("alerts", "monitor"):
        alert_counts = {r.domain: r["count"] for r in lake.read("alerts", "monitor").groupBy("domain").count().collect()}
    for domain in DOMAINS:
        info = infos.get(engine.query_name(domain))
        if info is None:
            continue
        st = info.status
        last = st.get("last_batch", {})
        prog = st.get("progress") or {}
        print(f"\n{info.query_name} ({domain})")
        print(f"  checkpoint     {info.location} ({info.size_bytes / 1e6:.1f} MB), txnAppId {info.app_id}")
        state = "in flight" if info.in_flight else "committed"
        print(f"  last batch     {info.last_batch} ({state}; last committed {info.last_committed})")
        print(f"  watermark      {info.watermark or '-'}")
        lay = info.layout or {}
        print(f"  state layout   {lay.get('layout', '- (recorded on first start)')}"
              + (f", {lay['buckets']} buckets of keys" if lay.get("buckets") else "")
              + ("" if lay.get("recorded", True) else " (checkpoint from before layouts were recorded)"))
        for src in prog.get("sources") or []:
            print(f"  offsets        {src.get('description', '')[:60]} -> {src.get('endOffset')}")
        if last:
            print(f"  last batch did {prog.get('numInputRows', 0) or 0:,} rows in, {last.get('windows', 0)} windows, "
                  f"{last.get('late_rows', 0)} late rows, {last.get('alerts', 0)} alert rows "
                  f"({last.get('seconds', 0)}s, at {last.get('finished_at', '-')})")
            t = last.get("totals", {})
            print(f"  this run       {t.get('batches', 0)} batches, {t.get('windows', 0):,} windows")
        print(f"  late rows      {late_counts.get(info.query_name, 0):,} kept in monitor.late_rows "
              f"({st.get('dropped_by_watermark', 0)} dropped by watermark in the last batch)")
        print(f"  alerts         {alert_counts.get(domain, 0):,} in monitor.alerts")
    return 0


def run_stop(args: argparse.Namespace, ctx) -> int:  # noqa: ANN001
    pid_path = _pid_file(ctx.settings)
    pid = _read_pid(pid_path)
    if pid is None or not _pid_alive(pid):
        pid_path.unlink(missing_ok=True)
        print("no stream is running")
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + args.timeout
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.5)
    if _pid_alive(pid):
        raise HealthMonitorError(f"stream pid {pid} did not stop within {args.timeout:.0f}s")
    print(f"stopped stream pid {pid}")
    return 0


def _refuse_if_running(ctx) -> None:  # noqa: ANN001
    pid = _read_pid(_pid_file(ctx.settings))
    if pid is not None and _pid_alive(pid):
        raise HealthMonitorError(f"a stream is running (pid {pid}): 'health-monitor stream stop' first")


def run_reset(args: argparse.Namespace, ctx) -> int:  # noqa: ANN001
    from health_monitor.streaming import engine

    _refuse_if_running(ctx)
    for domain in parse_domains(args.domains):
        new = engine.reset_stream(ctx.lake, domain)
        print(f"{domain}: checkpoint, state and scores reset; new txnAppId {new}")
    return 0


def run_backup(args: argparse.Namespace, ctx) -> int:  # noqa: ANN001
    from health_monitor import checkpoints
    from health_monitor.streaming import engine

    _refuse_if_running(ctx)
    for domain in parse_domains(args.domains):
        name = engine.query_name(domain)
        if not checkpoints.checkpoint_location(ctx.settings, name).is_dir():
            print(f"{domain}: no checkpoint yet")
            continue
        print(f"{domain}: backed up to {checkpoints.backup_checkpoint(ctx.settings, name)}")
    return 0
