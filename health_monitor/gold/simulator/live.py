"""Live mode: continue a simulated estate tick by tick so streams have something to watch.

Each tick generates the next ``hours_per_tick`` hours with the same estate (rebuilt from the
stored simulation parameters), releases rows held back by earlier ticks whose time has come
(late billing rows, the last hours of long runs), may start new incidents (kept in
``live_incidents`` so an incident spanning several ticks keeps acting, and recorded in
``ground_truth_incidents``), appends everything to the system layer and builds Gold.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from health_monitor import progress
from health_monitor.gold.schemas import GROUND_TRUTH
from health_monitor.gold.simulator.calendar import Window
from health_monitor.gold.simulator.entities import build_estate
from health_monitor.gold.simulator.frames import to_spark
from health_monitor.gold.simulator.generate import generate
from health_monitor.gold.simulator.incidents import INCIDENT_TYPES, Incident, Plan, plan_incidents
from health_monitor.gold.simulator.summary import SimulationSummary

if TYPE_CHECKING:
    from health_monitor.runtime import Lakehouse

LIVE_INCIDENTS = "live_incidents"
#: Chance that a new incident starts in a given hour of live mode.
INCIDENTS_PER_HOUR = 0.25
#: Live incidents are short so a watcher sees them start and end.
MAX_LIVE_HOURS = 8.0


def _load_incidents(lake: Lakehouse) -> list[Incident]:
    if not lake.exists(LIVE_INCIDENTS, "simulator"):
        return []
    out = []
    for r in lake.read(LIVE_INCIDENTS, "simulator").collect():
        d = json.loads(r["incident"])
        d["start"], d["end"] = pd.Timestamp(d["start"]), pd.Timestamp(d["end"])
        out.append(Incident(**d))
    return out


def _save_incidents(lake: Lakehouse, incidents: list[Incident]) -> None:
    from pyspark.sql import types as T

    rows = [(json.dumps({**i.__dict__, "start": i.start.isoformat(), "end": i.end.isoformat()}, default=str),)
            for i in incidents]
    schema = T.StructType([T.StructField("incident", T.StringType())])
    lake.write(lake.spark.createDataFrame(rows, schema), LIVE_INCIDENTS, "simulator", mode="overwrite")


def _last_commits(lake: Lakehouse) -> dict[str, pd.Timestamp]:
    """When each table was last written by a job, from lineage (what the monitor would see too)."""
    from pyspark.sql import functions as F

    if not lake.exists("access.table_lineage", "system"):
        return {}
    rows = (lake.read("access.table_lineage", "system").where("entity_type = 'JOB' AND target_table_full_name IS NOT NULL")
            .groupBy("target_table_full_name").agg(F.max("event_time").alias("t")).collect())
    return {r[0]: pd.Timestamp(r[1]) for r in rows}


def run_live(lake: Lakehouse, read_params: Callable, write_params: Callable, write_all: Callable,
             build_gold: Callable, ticks: int | None, hours_per_tick: int,
             seed: int | None, interval: float) -> SimulationSummary:
    """See :func:`health_monitor.gold.simulator.simulate_live`."""
    t0 = time.monotonic()
    params = read_params(lake)
    base_window = Window.for_days(pd.Timestamp(params["end_date"]).date(), int(params["days"]))
    estate = build_estate(int(params["seed"]), base_window, int(params["workspaces"]), float(params["scale"]))
    now = pd.Timestamp(params["now"])
    live_seed = int(params["seed"]) * 1000 + (seed if seed is not None else 1)
    summary = SimulationSummary(start=now.to_pydatetime())
    stop = threading.Event()
    old_handler = None
    if threading.current_thread() is threading.main_thread():
        def on_sigint(signum: int, frame: object) -> None:  # noqa: ARG001
            if stop.is_set():
                raise KeyboardInterrupt
            progress.info("stopping after this tick (Ctrl-C again to abort)")
            stop.set()
        old_handler = signal.signal(signal.SIGINT, on_sigint)
    incidents = _load_incidents(lake)
    rows: Counter = Counter()
    kinds: Counter = Counter()
    done = 0
    try:
        while not stop.is_set() and (ticks is None or done < ticks):
            window = Window(now, now + pd.Timedelta(hours=hours_per_tick))
            with progress.step(f"tick {done + 1}: {window.start:%Y-%m-%d %H:%M} .. {window.end:%H:%M}"):
                rng = np.random.default_rng([live_seed, int(now.value // 3_600_000_000_000)])
                n_new = rng.poisson(INCIDENTS_PER_HOUR * hours_per_tick)
                types = list(rng.choice(list(INCIDENT_TYPES), n_new)) if n_new else []
                new = plan_incidents(estate, rng, window, 1, types=types, warmup_days=0).incidents if types else []
                for inc in new:
                    inc.end = min(inc.end, inc.start + pd.Timedelta(hours=MAX_LIVE_HOURS))
                active = [i for i in incidents if i.end > window.start] + new
                plan = Plan(active)
                gen = generate(estate, plan, window, live_seed, static=False, last_commit=_last_commits(lake))
                written = write_all(lake, gen, window.end, "append")
                rows.update({f"system.{k}": v for k, v in written.items()})
                if new:
                    truth = Plan(new).frame()
                    lake.merge(to_spark(lake.spark, truth, GROUND_TRUTH), GROUND_TRUTH.name, GROUND_TRUTH.primary_key,
                               "simulator", update=False)
                    kinds.update(truth["incident_type"])
                incidents = [i for i in incidents if i.end > window.end] + [i for i in new if i.end > window.end]
                _save_incidents(lake, incidents)
                now = window.end
                done += 1
                write_params(lake, {**params, "now": now.isoformat(), "ticks": int(params.get("ticks", 0)) + done},
                             "overwrite")
                rows.update({f"gold.{k}": v for k, v in build_gold(lake).items()})
            if interval and (ticks is None or done < ticks):
                stop.wait(interval)
    finally:
        if old_handler is not None:
            signal.signal(signal.SIGINT, old_handler)
    summary.end = now.to_pydatetime()
    summary.rows = dict(rows)
    summary.incidents = dict(kinds)
    summary.seconds = time.monotonic() - t0
    return summary
