"""Job runs: schedules, durations, failures and retries from latent causes.

A run's duration grows with its job's hidden data volume (compound growth, business-day and
month-end effects) and slows down when that volume presses on the nodes' memory; it fails when
the pressure passes the limit (DRIVER_ERROR), when a flaky dependency is in a bad spell
(LIBRARY_INSTALLATION_ERROR, CLOUD_FAILURE), when a spot node is reclaimed (CLUSTER_ERROR), or
when an incident breaks it. Failed runs of jobs with retries are followed by RETRY runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from health_monitor.gold.simulator.calendar import Calendar, Window, office_curve
from health_monitor.gold.simulator.entities import Estate, Job
from health_monitor.gold.simulator.frames import json_col
from health_monitor.gold.simulator.incidents import Plan

_TRANSIENT = {"LIBRARY_INSTALLATION_ERROR", "CLOUD_FAILURE", "CLUSTER_ERROR", "INTERNAL_ERROR"}
_TERMINATION_TYPE = {"SUCCESS": "SUCCESS", "DRIVER_ERROR": "CLIENT_ERROR", "RUN_EXECUTION_ERROR": "CLIENT_ERROR",
                     "LIBRARY_INSTALLATION_ERROR": "CLIENT_ERROR", "CLOUD_FAILURE": "CLOUD_FAILURE",
                     "CLUSTER_ERROR": "CLOUD_FAILURE", "INTERNAL_ERROR": "INTERNAL_ERROR",
                     "STORAGE_ACCESS_ERROR": "CLIENT_ERROR", "UNAUTHORIZED_ERROR": "CLIENT_ERROR",
                     "USER_CANCELED": "SUCCESS", "RESOURCE_NOT_FOUND": "CLIENT_ERROR"}
_RESULT = {"SUCCESS": "SUCCEEDED", "USER_CANCELED": "CANCELLED", "INTERNAL_ERROR": "ERROR",
           "CLOUD_FAILURE": "ERROR", "CLUSTER_ERROR": "FAILED"}


@dataclass
class Runs:
    """All runs of the window, one row per run (``runs``), and the hourly timeline rows."""

    runs: pd.DataFrame
    timeline: pd.DataFrame
    task_timeline: pd.DataFrame


def _schedule(job: Job, window: Window, rng: np.random.Generator, cal: Calendar) -> np.ndarray:
    """Scheduled start times (datetime64) of ``job`` inside the window."""
    start, end = window.start, window.end
    if job.schedule == "hourly":
        t = pd.date_range(start.floor("h"), end, freq="h", inclusive="left") + pd.Timedelta(minutes=job.minute)
    elif job.schedule == "every4h":
        t = pd.date_range(start.floor("D"), end, freq="4h", inclusive="left") + pd.Timedelta(minutes=job.minute)
    elif job.schedule == "daily":
        t = pd.date_range(start.floor("D"), end, freq="D") + pd.Timedelta(hours=job.hour, minutes=job.minute)
    elif job.schedule == "weekly":
        d = pd.date_range(start.floor("D"), end, freq="D")
        t = d[d.dayofweek == 0] + pd.Timedelta(hours=job.hour, minutes=job.minute)
    elif job.schedule == "monthly":
        d = pd.date_range(start.floor("D"), end, freq="D")
        t = d[d.is_month_end] + pd.Timedelta(hours=job.hour, minutes=job.minute)
    elif job.schedule == "continuous":
        t = pd.date_range(start.floor("D"), end, freq="D") + pd.Timedelta(minutes=2)
    else:  # file_arrival / adhoc: Poisson arrivals shaped by office hours
        hours = window.hours
        lam = 0.35 if job.schedule == "file_arrival" else 0.12
        local = hours.hour.to_numpy() + 0
        days = hours.floor("D")
        dayf = cal.day_factors(days, 0.3 if job.schedule == "adhoc" else 0.7, 0.3, 1.2)
        rate = lam * office_curve(local) / 0.6 * dayf
        n = rng.poisson(rate)
        t = pd.DatetimeIndex(np.repeat(hours.to_numpy(), n)) + pd.to_timedelta(
            rng.uniform(0, 3600, n.sum()), unit="s")
    t = pd.DatetimeIndex(t)
    return t[(t >= start) & (t < end)].to_numpy()


def generate_runs(estate: Estate, plan: Plan, window: Window, rng: np.random.Generator, cal: Calendar) -> Runs:
    """Every run of every job whose start falls in ``window``, then its hourly timeline rows."""
    frames = []
    for job in estate.jobs:
        sched = _schedule(job, window, rng, cal)
        if len(sched) == 0:
            continue
        frames.append(_runs_of(job, sched, estate, plan, rng, cal))
    runs = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    timeline = _timeline(runs, estate)
    return Runs(runs, timeline, _task_timeline(timeline, estate))


def _runs_of(job: Job, sched: np.ndarray, estate: Estate, plan: Plan, rng: np.random.Generator,
             cal: Calendar) -> pd.DataFrame:
    n = len(sched)
    ts = pd.DatetimeIndex(sched)
    t_days = (ts - estate.epoch) / pd.Timedelta(days=1)
    business = cal.day_factors(ts.floor("D"), 0.75, 0.7, 1.25 if job.archetype in ("reporting", "etl_nightly") else 1.05)
    volume = np.exp(job.data_growth * t_days) * business * rng.lognormal(0, 0.08, n)
    workers = np.full(n, job.workers, float)
    node = estate_node = job.node_type
    mem = job.mem_need * volume * (1.0 + 0.05 * rng.standard_normal(n))
    dur_min = job.base_minutes * volume ** 0.8 * rng.lognormal(0, max(job.sigma, 0.02), n)
    dur_min *= 1 + 1.5 * np.clip(mem - 0.85, 0, None)  # spilling before it breaks
    if job.schedule == "continuous":
        dur_min = np.full(n, 24 * 60 - 4.0) - rng.uniform(0, 3, n)
    queue_s = np.where(rng.random(n) < 0.1, rng.exponential(90, n), 0.0)
    setup_s = (rng.lognormal(np.log(240), 0.3, n) if job.compute == "job_cluster"
               else rng.lognormal(np.log(8), 0.5, n))
    dbr = np.full(n, job.dbr, dtype=object)
    code = np.full(n, "SUCCESS", dtype=object)
    # Latent causes of failure.
    oom = rng.random(n) < 1 / (1 + np.exp(-(mem - 1.02) * 14))
    code[oom] = "DRIVER_ERROR"
    # Bursty flakiness: a bad spell spans the neighbouring runs too.
    bad_spell = np.convolve(rng.random(n) < job.flaky, np.ones(3), mode="full")[1:n + 1] > 0
    flaky = bad_spell & (rng.random(n) < 0.6)
    code[flaky & (code == "SUCCESS")] = rng.choice(["LIBRARY_INSTALLATION_ERROR", "CLOUD_FAILURE", "INTERNAL_ERROR"],
                                                   int((flaky & (code == "SUCCESS")).sum()), p=[0.5, 0.3, 0.2])
    if job.availability.startswith("SPOT") and job.compute == "job_cluster":
        pre = rng.random(n) < 1 - np.exp(-0.015 * workers * dur_min / 60)
        sel = pre & (code == "SUCCESS")
        code[sel] = "CLUSTER_ERROR"
    cancel = (rng.random(n) < 0.004) & (code == "SUCCESS")
    code[cancel] = "USER_CANCELED"

    runaway = np.zeros(n, bool)
    for inc in plan.of("runaway_job_cost"):
        if inc.entity_id == job.job_id:
            a = inc.active(sched)
            f = inc.extra["factor"]
            workers = np.where(a, np.ceil(workers * f ** 0.5), workers)
            dur_min = np.where(a, dur_min * f ** 0.5, dur_min)
            runaway |= a
    for inc in plan.of("dbr_regression"):
        if inc.entity_id == job.job_id:
            a = inc.active(sched)
            dbr[a] = inc.extra["new_dbr"]
            dur_min = np.where(a, dur_min * inc.extra["factor"], dur_min)
            mem = np.where(a, mem * 1.1, mem)
    for inc in plan.of("sla_breach"):
        if inc.entity_id == job.job_id:
            a = inc.active(sched)
            dur_min = np.where(a, dur_min * inc.extra["factor"], dur_min)
            queue_s = np.where(a, queue_s + rng.uniform(600, 3600, n) * inc.magnitude, queue_s)
    for inc in plan.of("late_data"):
        if inc.extra.get("writer_job") == job.job_id:
            a = inc.active(sched)
            # The producer waits on upstream files that do not come, then times out.
            queue_s = np.where(a, queue_s + rng.uniform(1800, 5400, n), queue_s)
            code[a] = "RUN_EXECUTION_ERROR"
    for inc in plan.of("quality_degradation"):
        if inc.extra.get("writer_job") == job.job_id:
            a = inc.active(sched)
            dur_min = np.where(a, dur_min * (0.5 + 0.5 * inc.extra["factor"]), dur_min)
    for inc in plan.of("breaking_schema_change"):
        if inc.entity_id in job.reads:
            a = inc.active(sched)
            code[a] = "RUN_EXECUTION_ERROR"
    # A broken dependency does not mend itself between a run and its retry: whatever the error
    # code says, retries inside the incident fail the same way.
    persistent = np.zeros(n, bool)
    for inc in plan.of("failing_job_streak"):
        if inc.entity_id == job.job_id:
            a = inc.active(sched)
            code[a] = inc.extra["code"]
            persistent |= a

    failed = code != "SUCCESS"
    work_s = np.maximum(1, dur_min * 60)  # the run's full work, before a failure cuts it short
    # A failure ends the run early (after some fraction of the work). Not a runaway's: the
    # incident is a run that goes on far longer on a scaled-out cluster, so a failure drawn for
    # it ends it at the end of that run (a job's timeout still stops it, below). Cut short, it
    # billed no more than a usual run while its label said it ran away (seed 23 did that).
    cut = rng.uniform(0.05, 0.9, n)
    dur_min = np.where(failed & (code != "USER_CANCELED") & ~runaway, dur_min * cut, dur_min)
    dur_min = np.where(code == "USER_CANCELED", dur_min * rng.uniform(0.1, 0.6, n), dur_min)
    result = np.array([_RESULT.get(c, "FAILED") for c in code], dtype=object)
    if job.timeout_seconds:
        # (a failed run ends before its timeout, except a runaway's, which runs to its end)
        over = (dur_min * 60 > job.timeout_seconds) & ((code == "SUCCESS") | (runaway & (code != "USER_CANCELED")))
        dur_min = np.where(over, job.timeout_seconds / 60, dur_min)
        result[over] = "TIMED_OUT"
        code[over] = "RUN_EXECUTION_ERROR"
    exec_s = np.maximum(1, dur_min * 60)
    cleanup_s = np.where(job.compute == "job_cluster", rng.uniform(5, 40, n), rng.uniform(0, 3, n))
    start = sched + pd.to_timedelta(queue_s, unit="s").to_numpy()
    total_s = setup_s + exec_s + cleanup_s
    end = start + pd.to_timedelta(np.round(total_s), unit="s").to_numpy()
    trigger = np.full(n, job.trigger_type, dtype=object)
    run_type = np.full(n, "SUBMIT_RUN" if job.schedule == "adhoc" else "JOB_RUN", dtype=object)
    df = pd.DataFrame({
        "job_id": job.job_id, "workspace_id": job.workspace_id, "sched": sched, "start": start, "end": end,
        "queue_s": queue_s, "setup_s": setup_s, "exec_s": exec_s, "work_s": work_s, "cleanup_s": cleanup_s,
        "code": code, "result": result, "trigger": trigger, "run_type": run_type,
        "workers": workers.astype(int), "node_type": node, "dbr": dbr, "mem": mem, "volume": volume,
    })
    del estate_node
    # Retries: transient causes usually clear, systematic ones do not.
    retry_rows = []
    if job.max_retries:
        for i in np.flatnonzero(result != "SUCCEEDED"):
            if code[i] == "USER_CANCELED":
                continue
            prev = df.iloc[i].to_dict()
            for _ in range(job.max_retries):
                ok = code[i] in _TRANSIENT and rng.random() < 0.75 and not persistent[i]
                r = dict(prev)
                r["start"] = prev["end"] + pd.Timedelta(seconds=float(rng.uniform(30, 300)))
                r["queue_s"] = 0.0
                # A retry that gets through does the run's whole work again (a little noise);
                # one that fails again stops where the cause hits, as before.
                r["exec_s"] = float(prev["work_s"] * rng.lognormal(0, 0.05) if ok else prev["exec_s"])
                r["end"] = r["start"] + pd.Timedelta(seconds=round(r["setup_s"] + r["exec_s"] + r["cleanup_s"]))
                r["trigger"] = "RETRY"
                r["code"] = "SUCCESS" if ok else prev["code"]
                r["result"] = "SUCCEEDED" if ok else prev["result"]
                retry_rows.append(r)
                if ok:
                    break
                prev = r
    if retry_rows:
        df = pd.concat([df, pd.DataFrame(retry_rows)], ignore_index=True)
    m = len(df)
    df["run_id"] = rng.integers(10**14, 10**15, m).astype(str)
    df["term_type"] = [_TERMINATION_TYPE.get(c, "CLIENT_ERROR") for c in df["code"]]
    df["compute"] = job.compute
    if job.compute == "job_cluster":
        # Job clusters are created per run, named like Databricks does: MMDD-HHMMSS-xxxxxxxx.
        stamp = pd.DatetimeIndex(df["start"]).strftime("%m%d-%H%M%S").to_numpy().astype(str)
        df["cluster_id"] = np.char.add(np.char.add(stamp, "-"), np.char.mod("%08x", rng.integers(0, 2**32, m))).astype(object)
    else:
        df["cluster_id"] = job.cluster_id
    df["warehouse_id"] = job.warehouse_id
    df["photon"] = job.photon
    df["availability"] = job.availability
    df["run_name"] = job.name
    df["run_as"] = job.run_as
    return df


def _timeline(runs: pd.DataFrame, estate: Estate) -> pd.DataFrame:
    """``lakeflow.job_run_timeline`` rows: runs cut at clock hours, state on the final row only."""
    if runs.empty:
        return pd.DataFrame()
    start = pd.DatetimeIndex(runs["start"])
    end = pd.DatetimeIndex(runs["end"])
    first_h = start.floor("h")
    n_rows = np.maximum(1, np.ceil(np.asarray((end - first_h) / pd.Timedelta(hours=1), dtype=float)).astype(int))
    idx = np.repeat(np.arange(len(runs)), n_rows)
    k = np.concatenate([np.arange(c) for c in n_rows])
    hour0 = first_h.to_numpy()[idx] + k * np.timedelta64(1, "h")
    p_start = np.maximum(start.to_numpy()[idx], hour0)
    p_end = np.minimum(end.to_numpy()[idx], hour0 + np.timedelta64(1, "h"))
    last = k == n_rows[idx] - 1
    r = runs.iloc[idx].reset_index(drop=True)

    def on_last(values: pd.Series) -> pd.Series:
        return values.where(last, None)

    compute_type = r["compute"].map({"job_cluster": "CLASSIC", "all_purpose": "CLASSIC",
                                     "serverless": "SERVERLESS", "warehouse": "WAREHOUSE"})
    cid = r["cluster_id"].where(r["cluster_id"].notna(), r["warehouse_id"])
    compute_ids = [[c] if isinstance(c, str) else [] for c in cid]
    compute = json_col([[{"type": t, "cluster_id": c, "warehouse_id": w}] if isinstance(c, str) or isinstance(w, str) else []
                        for t, c, w in zip(compute_type, r["cluster_id"], r["warehouse_id"], strict=True)])
    total = (r["setup_s"] + r["exec_s"] + r["cleanup_s"]).round()

    def secs(col: pd.Series) -> pd.Series:
        return on_last(col.round().astype("Int64")).astype("Int64")

    return pd.DataFrame({
        "account_id": estate.account_id, "workspace_id": r["workspace_id"], "job_id": r["job_id"],
        "run_id": r["run_id"], "period_start_time": p_start, "period_end_time": p_end,
        "trigger_type": r["trigger"], "result_state": on_last(r["result"]), "run_type": r["run_type"],
        "run_name": r["run_name"], "compute_ids": compute_ids, "termination_code": on_last(r["code"]),
        "compute": compute, "termination_type": on_last(r["term_type"]),
        "setup_duration_seconds": secs(r["setup_s"]), "queue_duration_seconds": secs(r["queue_s"]),
        "run_duration_seconds": secs(total + r["queue_s"]), "cleanup_duration_seconds": secs(r["cleanup_s"]),
        "execution_duration_seconds": secs(r["exec_s"]),
    })


def _task_timeline(timeline: pd.DataFrame, estate: Estate) -> pd.DataFrame:
    """``lakeflow.job_task_run_timeline``: the run's last task over the run's hourly slices.

    One task run per job run is enough for what the monitor reads from it (the compute each run
    used); its id is the job run's with a ``-t`` suffix, as real task runs have their own ids.
    """
    if timeline.empty:
        return pd.DataFrame()
    last_task = {j.job_id: (j.tasks[-1][0] if j.tasks else "main") for j in estate.jobs}
    return pd.DataFrame({
        "account_id": timeline["account_id"], "workspace_id": timeline["workspace_id"],
        "job_id": timeline["job_id"], "run_id": timeline["run_id"] + "-t", "job_run_id": timeline["run_id"],
        "parent_run_id": timeline["run_id"], "task_key": timeline["job_id"].map(last_task),
        "period_start_time": timeline["period_start_time"], "period_end_time": timeline["period_end_time"],
        "compute_ids": timeline["compute_ids"], "result_state": timeline["result_state"],
        "termination_code": timeline["termination_code"],
    })


def jobs_tables(estate: Estate, rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``lakeflow.jobs`` (create row plus occasional later edits) and ``lakeflow.job_tasks``."""
    rows, tasks = [], []
    end = estate.window.end
    for j in estate.jobs:
        versions = [(j.create_time, j.tags, j.timeout_seconds)]
        if rng.random() < 0.2:
            when = estate.window.start + pd.Timedelta(hours=float(rng.uniform(0, (end - estate.window.start) / pd.Timedelta(hours=1))))
            versions.append((when.floor("s"), {**j.tags, "owner_team": j.tags.get("team", "unknown")}, j.timeout_seconds))
        for change, tags, timeout in versions:
            rows.append({
                "account_id": estate.account_id, "workspace_id": j.workspace_id, "job_id": j.job_id, "name": j.name,
                "creator_id": j.creator, "tags": tags, "run_as": j.run_as, "change_time": change,
                "delete_time": None, "description": f"{j.archetype.replace('_', ' ')} job owned by {j.creator}",
                "trigger.schedule.quartz_cron_expression": j.cron,
                "trigger.schedule.timezone_id": "UTC" if j.cron else None,
                "trigger.schedule.pause_status": "UNPAUSED" if j.cron else None,
                "trigger_type": j.trigger_type, "paused": False, "timeout_seconds": timeout,
                "health_rules": ([{"metric": "RUN_DURATION_SECONDS", "operator": "GREATER_THAN",
                                   "value": int(j.base_minutes * 180)}] if j.archetype == "etl_nightly" else None),
                "create_time": j.create_time,
            })
        for key, deps in j.tasks:
            tasks.append({"account_id": estate.account_id, "workspace_id": j.workspace_id, "job_id": j.job_id,
                          "task_key": key, "depends_on_keys": deps, "change_time": j.create_time, "delete_time": None})
    jobs = pd.DataFrame(rows)
    jobs["tags"] = json_col(jobs["tags"])
    jobs["health_rules"] = json_col(jobs["health_rules"])
    return jobs, pd.DataFrame(tasks)
