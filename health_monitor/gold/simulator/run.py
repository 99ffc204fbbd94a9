"""``simulate`` and ``simulate_live``: generate, write to the lakehouse, build Gold."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from health_monitor import progress
from health_monitor.errors import HealthMonitorError
from health_monitor.gold.ddl import Column, TableSpec
from health_monitor.gold.schemas import GOLD_TABLES, GROUND_TRUTH
from health_monitor.gold.simulator import quality
from health_monitor.gold.simulator.calendar import Window
from health_monitor.gold.simulator.entities import Estate, build_estate
from health_monitor.gold.simulator.frames import to_arrow, to_spark
from health_monitor.gold.simulator.generate import Generated, generate, split_pending
from health_monitor.gold.simulator.incidents import Plan, incidents_per_type, plan_incidents
from health_monitor.gold.simulator.summary import SimulationSummary
from health_monitor.gold.system_schemas import SYSTEM_TABLES

if TYPE_CHECKING:
    from health_monitor.runtime import Lakehouse

PARAMS_TABLE = "simulation_params"
_PENDING_PREFIX = "pending__"


def _pending_spec(spec: TableSpec) -> TableSpec:
    return replace(spec, name=_PENDING_PREFIX + spec.name, layer="simulator",
                   columns=[*spec.columns, Column("_visible_at", "timestamp")], partition_by=[])


def _check(days: int, workspaces: int, scale: float) -> None:
    if days < 1 or days > 3660:
        raise HealthMonitorError(f"--days must be between 1 and 3660, got {days}")
    if workspaces < 1 or workspaces > 200:
        raise HealthMonitorError(f"--workspaces must be between 1 and 200, got {workspaces}")
    if not 0.05 <= scale <= 100:
        raise HealthMonitorError(f"--scale must be between 0.05 and 100, got {scale}")


def _write_all(lake: Lakehouse, gen: Generated, until: pd.Timestamp, mode: str) -> dict[str, int]:
    """Write rows visible by ``until`` to the system layer, keep the rest pending; rows written per table.

    ``overwrite`` starts a fresh estate (a bulk load, see :func:`_load_fresh`). ``append`` (live
    mode) also releases rows that earlier ticks held back and whose time has now come, so every
    row is written exactly once.
    """
    if mode == "overwrite":
        return _load_fresh(lake, gen, until)
    from pyspark.sql import functions as F

    spark = lake.spark
    names = list(gen.tables)
    names += [n for n in SYSTEM_TABLES if n not in gen.tables
              and lake.exists(_pending_spec(SYSTEM_TABLES[n]).name, "simulator")]

    def write(name: str) -> tuple[str, int]:
        spec = SYSTEM_TABLES[name]
        pspec = _pending_spec(spec)
        visible, pending = split_pending(name, gen.tables.get(name, pd.DataFrame()), spec.event_time, until)
        vis_df = to_spark(spark, visible, spec) if len(visible) else None
        pen_df = to_spark(spark, pending, pspec) if len(pending) else None
        n_due = 0
        if lake.exists(pspec.name, "simulator"):
            # Materialize before the pending table is overwritten below.
            old = lake.read(pspec.name, "simulator").localCheckpoint()
            due = old.filter(F.col("_visible_at") < F.lit(until.to_pydatetime())).drop("_visible_at")
            keep = old.filter(F.col("_visible_at") >= F.lit(until.to_pydatetime()))
            n_due = due.count()
            if n_due:
                vis_df = due if vis_df is None else vis_df.unionByName(due)
            if n_due or pen_df is not None:
                pen_df = keep if pen_df is None else pen_df.unionByName(keep)
            else:
                pen_df = None  # nothing changed
        if vis_df is not None:
            lake.write(vis_df, name, "system", mode="append", options=spec.stats_properties)
        if pen_df is not None:
            lake.write(pen_df, pspec.name, "simulator", mode="overwrite")
        return name, len(visible) + n_due

    # Several Spark jobs at once: Arrow conversion and Delta commits overlap on two cores.
    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(pool.map(write, names))


def _load_fresh(lake: Lakehouse, gen: Generated, until: pd.Timestamp) -> dict[str, int]:
    """Replace every system table (and its pending late rows) of a fresh estate by a bulk load.

    Arrow straight to Delta (``Lakehouse.write_arrow``): the same tables, schemas and rows as
    through Spark (tests compare them), for a fraction of the CPU.
    """

    def write(name: str) -> tuple[str, int]:
        spec = SYSTEM_TABLES[name]
        pspec = _pending_spec(spec)
        visible, pending = split_pending(name, gen.tables[name], spec.event_time, until)
        lake.write_arrow(to_arrow(visible, spec), name, "system", options=spec.stats_properties)
        if len(pending):
            lake.write_arrow(to_arrow(pending, pspec), pspec.name, "simulator")
        elif lake.exists(pspec.name, "simulator"):
            lake.delete_table(pspec.name, "simulator")
        return name, len(visible)

    # Two at a time: delta-rs writes Parquet outside the GIL while the next frame converts.
    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(write, gen.tables))


def _annual_cost(estate: Estate, usage: pd.DataFrame) -> dict[str, float]:
    ts = pd.DatetimeIndex(usage["usage_start_time"]).to_numpy()
    cost = np.zeros(len(usage))
    skus = usage["sku_name"].to_numpy()
    for sku in np.unique(skus):
        m = skus == sku
        cost[m] = usage["usage_quantity"].to_numpy()[m] * estate.price(sku, ts[m])
    days = (estate.window.end - estate.window.start) / pd.Timedelta(days=1)
    per_ws = pd.Series(cost).groupby(usage["workspace_id"].to_numpy()).sum() * 365 / days
    return {str(k): float(v) for k, v in per_ws.items()}


def _build_gold(lake: Lakehouse, full_refresh: bool = False) -> dict[str, int]:
    try:
        from health_monitor.gold.builders import build_gold
    except ImportError:  # the builders land separately; the system layer is complete without them
        progress.info("Gold builders not available yet: system layer only")
        return {}
    with progress.step("building Gold from the system tables"):
        # A fresh estate rebuilds Gold from scratch instead of merging into an older estate's.
        return dict(build_gold(lake, full_refresh=full_refresh))


def simulate(lake: Lakehouse, days: int = 120, workspaces: int = 8, seed: int = 7, scale: float = 1.0,
             end_date: date | None = None, build: bool = True) -> SimulationSummary:
    """Simulate a fresh estate into ``lake`` (system tables, user config, ground truth), then build Gold.

    Args:
        lake: the lakehouse to write to; existing system, simulator and Gold tables are replaced.
        days: days of history, ending with ``end_date``.
        workspaces: number of workspaces.
        seed: same seed and arguments give the same estate.
        scale: multiplies entity counts (users, clusters, warehouses, jobs), not days.
        end_date: last simulated day (default: yesterday, UTC).
        build: build Gold afterwards (tests of the system layer alone turn it off).
    """
    _check(days, workspaces, scale)
    t0 = time.monotonic()
    # The JVM starts while numpy draws and writes the estate (neither needs Spark): on two cores
    # the two overlap. A failure to start (no Java) is raised again where Spark is first used.
    threading.Thread(target=_start_spark, args=(lake,), daemon=True, name="spark-start").start()
    end_date = end_date or (datetime.now(UTC).date() - timedelta(days=1))
    window = Window.for_days(end_date, days)
    with progress.step(f"drawing the estate ({workspaces} workspaces, scale {scale}, seed {seed})"):
        estate = build_estate(seed, window, workspaces, scale)
        plan = plan_incidents(estate, np.random.default_rng([seed, 2]), window, incidents_per_type(days, workspaces))
    with progress.step(f"generating {days} days of system tables"):
        gen = generate(estate, plan, window, seed)
    summary = SimulationSummary(start=window.start.to_pydatetime(), end=window.end.to_pydatetime())
    with progress.step("writing system tables"):
        written = _write_all(lake, gen, window.end, "overwrite")
        summary.rows.update({f"system.{k}": v for k, v in written.items()})
        cost = _annual_cost(estate, gen.tables["billing.usage"])
        commits, slas = quality.user_config(estate, plan, cost)
        for name, pdf in (("commit_configurations", commits), ("sla_definitions", slas)):
            lake.write_arrow(to_arrow(pdf, GOLD_TABLES[name]), name, "gold")
            summary.rows[f"gold.{name}"] = len(pdf)
        truth = plan.frame()
        lake.write_arrow(to_arrow(truth, GROUND_TRUTH), GROUND_TRUTH.name, "simulator")
        summary.rows[f"simulator.{GROUND_TRUTH.name}"] = len(truth)
        _write_params(lake, {"seed": seed, "days": days, "workspaces": workspaces, "scale": scale,
                             "end_date": end_date.isoformat(), "now": window.end.isoformat(), "ticks": 0}, "overwrite")
    summary.incidents = dict(Counter(plan.frame()["incident_type"]))
    if build:
        summary.rows.update({f"gold.{k}": v for k, v in _build_gold(lake, full_refresh=True).items()})
    summary.seconds = time.monotonic() - t0
    return summary


def _start_spark(lake: Lakehouse) -> None:
    from health_monitor.runtime import get_spark

    if lake._spark is not None:  # noqa: SLF001 - a session given to the lakehouse (a Connect one)
        return

    # A simulation is a short bulk job: C1-only JIT flags if this starts the JVM (see
    # runtime.SHORT_LIVED_JVM_OPTIONS). Errors (no Java) are reported by the first real use,
    # in the caller's thread.
    with contextlib.suppress(Exception):
        get_spark(lake.settings, short_lived=True)


def _write_params(lake: Lakehouse, params: dict, mode: str) -> None:
    from pyspark.sql import types as T

    schema = T.StructType([T.StructField("params", T.StringType()), T.StructField("written_at", T.TimestampType())])
    df = lake.spark.createDataFrame([(json.dumps(params), datetime.now(UTC).replace(tzinfo=None))], schema)
    lake.write(df, PARAMS_TABLE, "simulator", mode=mode)


def _read_params(lake: Lakehouse) -> dict:
    if not lake.exists(PARAMS_TABLE, "simulator"):
        raise HealthMonitorError("no simulated estate to continue: run 'health-monitor simulate' first")
    rows = lake.read(PARAMS_TABLE, "simulator").orderBy("written_at").collect()
    return json.loads(rows[-1]["params"])


def simulate_live(lake: Lakehouse, ticks: int | None = 1, hours_per_tick: int = 1, seed: int | None = None,
                  interval: float = 0.0, build: bool = True) -> SimulationSummary:
    """Continue a simulated estate from its last hour, ``hours_per_tick`` per tick, building Gold each tick.

    Each tick appends the rows that became visible in its hours (late rows of earlier ticks
    included), injects incidents now and then (recorded in ground truth) and runs the Gold
    build, so Gold fact tables grow while a stream watches. ``ticks=None`` runs until
    interrupted (Ctrl-C stops after the current tick's writes).
    """
    from health_monitor.gold.simulator.live import run_live

    return run_live(lake, _read_params, _write_params, _write_all, _build_gold if build else (lambda _lake: {}),
                    ticks, hours_per_tick, seed, interval)


__all__ = ["Plan", "SimulationSummary", "simulate", "simulate_live"]
