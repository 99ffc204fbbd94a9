"""Profile of one domain's micro-batches: the Spark jobs each runs and why, Delta commits, CPU.

Why: issue 16 item 1 asks what one micro-batch costs before removing fixed costs. This runs the
engine available-now over a small backlog per domain (rows of ``bench_streaming_scale``'s real
shapes, one Delta commit per micro-batch) and records, per batch and per part of the sink, the
Spark jobs started (their stage names carry PySpark's call site: ``toPandas at sink.py:...``),
the query's own duration breakdown (``StreamingQueryProgress.durationMs``), ``numInputRows``
against the rows appended, the Delta commits per table and the CPU-seconds of the process tree.
With ``--plan`` it also writes the physical plan of the sink's action (scans, pushed filters).

Local benchmark only (the driver's status tracker needs the classic JVM session):
``nice -n 10 .venv/bin/python bench/profile_batch.py --rows 3000 --keys 60 --chunks 3``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from bench_streaming_scale import Meter, _codegen_compiles, _delta_commits, backlog_lake  # noqa: E402


def _jobs(tracker: Any, group: str) -> set[int]:
    return set(tracker.getJobIdsForGroup(group))


def _describe(store: Any, job_ids: list[int]) -> list[str]:
    """One line per job: its description (Delta names its own jobs) or call site, and stages."""
    out = []
    for j in sorted(job_ids):
        try:
            data = store.job(j)  # bench only: the driver's AppStatusStore through py4j
        except Exception:  # noqa: BLE001 - evicted from the store
            out.append(f"job {j}: ?")
            continue
        desc = data.description().getOrElse(None) if data.description().isDefined() else None
        secs = ""
        if data.submissionTime().isDefined() and data.completionTime().isDefined():
            ms = data.completionTime().get().getTime() - data.submissionTime().get().getTime()
            secs = f", {ms / 1000:.2f} s"
        out.append(f"job {j}: {desc or data.name()} ({data.stageIds().size()} stages{secs})")
    return out


def profile(domain: str, rows: int, keys: int, chunks: int, tmp: Path, plan: bool) -> dict:
    """Run ``domain`` available-now over ``rows`` rows in ``chunks`` commits; per-batch jobs and times."""
    from health_monitor.streaming import engine

    lake, commits0 = backlog_lake(domain, rows, keys, chunks, tmp / f"profile-{domain}", tmp)
    settings = lake.settings
    tracker = lake.spark.sparkContext.statusTracker()  # bench only: the classic JVM session
    store = lake.spark.sparkContext._jsc.sc().statusStore()
    group: dict[str, str] = {}
    batches: list[dict] = []
    parts = {"_write_scores": "scores append", "_write_alerts": "alerts (rules + store)",
             "_publish": "stats publish"}
    saved: dict[str, Callable] = {n: getattr(engine.BatchSink, n) for n in ("__call__", *parts)}
    plans: list[str] = []

    def wrap_part(name: str) -> Callable:
        def part(self: Any, *a: Any, **kw: Any) -> Any:
            before, t0 = _jobs(tracker, group["id"]), time.perf_counter()
            try:
                return saved[name](self, *a, **kw)
            finally:
                new = sorted(_jobs(tracker, group["id"]) - before)
                batches[-1]["parts"][parts[name]] = {"s": round(time.perf_counter() - t0, 2), "jobs": len(new)}
                batches[-1]["job_ids"][parts[name]] = new
        return part

    def call(self: Any, batch_df: Any, batch_id: int) -> None:
        batches.append({"batch": batch_id, "parts": {}, "job_ids": {}})
        before, t0, cg0 = _jobs(tracker, group["id"]), time.perf_counter(), _codegen_compiles(lake.spark)[0]
        saved["__call__"](self, batch_df, batch_id)
        new = sorted(_jobs(tracker, group["id"]) - before)
        rec = batches[-1]
        rec["codegen_compiles"] = _codegen_compiles(lake.spark)[0] - cg0
        rec["sink_s"] = round(time.perf_counter() - t0, 2)
        rec["sink_jobs"] = len(new)
        inner = {j for ids in rec["job_ids"].values() for j in ids}
        rec["job_ids"]["sink action (stateful plan + late rows)"] = [j for j in new if j not in inner]
        rec["jobs"] = {k: _describe(store, v) for k, v in rec.pop("job_ids").items()}

    from pyspark.sql.classic.dataframe import DataFrame  # the classic session's class (bench only)

    to_pandas = DataFrame.toPandas

    def traced(df: DataFrame) -> Any:
        res = to_pandas(df)
        if plan and batches and not plans:  # the sink's action as run (bench only): what it scans
            plans.append(df._jdf.queryExecution().executedPlan().toString())
        return res

    for name in parts:
        setattr(engine.BatchSink, name, wrap_part(name))
    DataFrame.toPandas = traced
    engine.BatchSink.__call__ = call
    try:
        run = engine.start_streams(lake, [domain], available_now=True, max_files_per_trigger=1)
        q = run.queries[domain]
        group["id"] = str(q.runId)
        with Meter() as m:
            engine.wait(run)
        all_jobs = _jobs(tracker, group["id"])
    finally:
        for name, fn in saved.items():
            setattr(engine.BatchSink, name, fn)
        DataFrame.toPandas = to_pandas
    progress = [p for p in q.recentProgress]
    commits = {t: c - commits0.get(t, 0) for t, c in _delta_commits(settings.data_dir).items()
               if c > commits0.get(t, 0)}
    per_batch = {p["batchId"]: p for p in progress}
    for b in batches:
        p = per_batch.get(b["batch"], {})
        b["numInputRows"] = p.get("numInputRows")
        b["durationMs"] = p.get("durationMs")
    out = {"domain": domain, "rows": rows, "keys": keys, "chunks": chunks, "batches": batches,
           "spark_jobs": len(all_jobs), "delta_commits": commits, **m.figures(rows)}
    if plans:
        out["plans"] = plans
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--domains", nargs="+", default=["cost", "security", "reliability"])
    ap.add_argument("--rows", type=int, default=3000)
    ap.add_argument("--keys", type=int, default=60)
    ap.add_argument("--chunks", type=int, default=3)
    ap.add_argument("--plan", action="store_true", help="also keep the first batch's optimized plan")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    os.environ.setdefault("HEALTH_MONITOR_DRIVER_MEMORY", "2g")
    tmp = Path(tempfile.mkdtemp(prefix="hm-profile-"))
    results = []
    try:
        for d in args.domains:
            rec = profile(d, args.rows, args.keys, args.chunks, tmp, args.plan)
            results.append(rec)
            print(json.dumps({k: v for k, v in rec.items() if k != "plans"}, indent=1), flush=True)
            if args.json:
                args.json.write_text(json.dumps(results, indent=1))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
