"""Gold builders: the system tables (``system.*`` on Databricks, system-shaped Delta tables in the
local lakehouse) to every Gold table except the user-configuration ones.

Design
------
* One code path in both environments: sources are read only through ``Lakehouse.read`` /
  ``read_stream`` on the ``system`` layer, and every write goes through ``core.GoldSink``, which
  conforms the rows to the table's contract (columns, order, types) and MERGEs on its primary key
  only the rows that are new or changed. Reruns therefore never duplicate and report 0 rows.
* Streamable, append-only sources (billing.usage, lakeflow.job_run_timeline, compute.node_timeline,
  access.audit, access.table_lineage) are read with Structured Streaming,
  ``trigger(availableNow=True)`` and ``foreachBatch``, one checkpoint per Gold table under
  ``<checkpoint_dir>/gold/<table>``. A row is processed once whenever it arrives, so rows that
  land late with an old event time are picked up by the next build.
* A first build appends (one shuffle: by the partition date, de-duplicated within it) into a table
  created from the contract by DDL, so NOT NULL columns are enforced. Later builds compare new
  rows with the table (content hash) only in the partitions the new rows fall in, and MERGE only
  rows that are new or changed, pruned to those partitions.
* Job runs arrive as hourly rows and can straddle builds: each micro-batch recomputes the runs it
  touches from all of their source rows, so an in-progress run is updated when its final row lands.
* All-purpose usage is attributed to the job run on its cluster that overlaps it most. When runs
  change in a build, usage already in Gold on those clusters is attributed again, so a run that
  arrives after its cluster's usage still gets the cost.
* Non-streamable sources (query.history, data-quality results, information_schema snapshots) are
  read from a stored watermark minus a lookback (``core.Watermark``) and upserted.
* Dimensions are small: every build derives all SCD2 versions from their change logs
  (``versions``) and the sink writes only new or closed versions. ``dim_date`` spans the facts'
  dates plus ``FUTURE_DAYS``.
* New keys are appended in an insert-only commit; only changed keys go through MERGE. Streams read
  Gold with ``skipChangeCommits``, which skips every row of a commit that updates anything, so new
  rows must never share a commit with updates. ``fact_job_run_timeline`` also keeps a change data
  feed, because a run is completed by an update that the reliability stream must see.
* Independent builders run in parallel threads (``HEALTH_MONITOR_BUILD_THREADS``, default 4);
  ``fact_usage`` follows ``fact_job_run_timeline`` and ``dim_date`` comes last.
* A Gold table that is missing while its checkpoint exists is rebuilt from the beginning, and so
  is one whose streamed source was rewritten rather than appended to (locally: a new simulation
  or an overwrite); ``full_refresh`` drops tables and checkpoints on purpose.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from health_monitor import progress
from health_monitor.errors import HealthMonitorError
from health_monitor.gold.builders import dims, facts, jobs, usage
from health_monitor.gold.builders.core import SourceRewritten, conform, reset_state
from health_monitor.gold.schemas import GOLD_TABLES

if TYPE_CHECKING:
    from health_monitor.runtime import Lakehouse

#: Gold tables that hold user configuration: loaded with ``ingest``, never built.
USER_CONFIG_TABLES = ("commit_configurations", "sla_definitions")


@dataclass
class _Build:
    """State shared by the builders of one ``build_gold`` call."""

    lake: Lakehouse
    holiday_country: str = "US"
    touched_clusters: object = None  # DataFrame of job-run windows that changed in this build
    counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Builder:
    """How one Gold table is built: its required system tables and the function that builds it."""

    table: str
    sources: tuple[str, ...]
    run: Callable[[_Build], int | None]  # None: nothing to build from (skipped)


def _job_runs(b: _Build) -> int:
    n, b.touched_clusters = jobs.build_job_runs(b.lake)
    return n


#: In dependency order: dimensions, runs before usage (attribution), facts, then the calendar.
BUILDERS: list[Builder] = [
    Builder("dim_workspace", ("access.workspaces_latest",), lambda b: dims.build_dim_workspace(b.lake)),
    Builder("dim_sku", ("billing.list_prices",), lambda b: dims.build_dim_sku(b.lake)),
    Builder("dim_job", ("lakeflow.jobs",), lambda b: jobs.build_dim_job(b.lake)),
    Builder("dim_cluster", ("compute.clusters",), lambda b: dims.build_dim_cluster(b.lake)),
    Builder("dim_warehouse", ("compute.warehouses",), lambda b: dims.build_dim_warehouse(b.lake)),
    Builder("fact_job_run_timeline", (jobs.RUN_SOURCE,), _job_runs),
    Builder("fact_usage", (usage.USAGE_SOURCE,), lambda b: usage.build_usage(b.lake, b.touched_clusters)),
    Builder("fact_node_timeline", ("compute.node_timeline",), lambda b: facts.build_node_timeline(b.lake)),
    Builder("fact_audit_events", ("access.audit",), lambda b: facts.build_audit_events(b.lake)),
    Builder("fact_table_lineage", ("access.table_lineage",), lambda b: facts.build_table_lineage(b.lake)),
    Builder("fact_query_history", ("query.history",), lambda b: facts.build_query_history(b.lake)),
    Builder("fact_data_quality_monitoring_table_results", ("data_quality_monitoring.table_results",),
            lambda b: facts.build_dq_results(b.lake)),
    Builder("fact_table_schema_history", ("information_schema.columns",),
            lambda b: facts.build_schema_history(b.lake)),
    Builder("dim_date", (), lambda b: dims.build_dim_date(b.lake, b.holiday_country)),
]

BUILDABLE = [b.table for b in BUILDERS]


def _check_tables(tables: list[str] | None) -> list[str]:
    if not tables:
        return BUILDABLE
    for t in tables:
        if t in USER_CONFIG_TABLES:
            raise HealthMonitorError(
                f"{t} is user configuration, not built from system tables: load it with "
                f"'health-monitor ingest FILE --table {t}'"
            )
        if t not in GOLD_TABLES:
            raise HealthMonitorError(f"unknown Gold table {t!r}; buildable: {', '.join(BUILDABLE)}")
    return [t for t in BUILDABLE if t in tables]


def build_gold(lake: Lakehouse, tables: list[str] | None = None, *, full_refresh: bool = False,
               holiday_country: str = "US") -> dict[str, int]:
    """Build (incrementally) the Gold tables from the system layer.

    Args:
        lake: the lakehouse to read ``system`` and write ``gold`` in.
        tables: Gold tables to build (default: all but the user-configuration tables), always
            built in dependency order.
        full_refresh: drop the tables and their checkpoints first and rebuild from all history.
        holiday_country: ISO country code of the holidays in ``dim_date``.

    Returns:
        Rows inserted or updated per Gold table built; tables whose system sources do not exist
        are skipped (with a progress note) and absent from the result.
    """
    wanted = _check_tables(tables)
    b = _Build(lake, holiday_country)
    todo = {x.table: x for x in BUILDERS if x.table in wanted}
    # Independent builders run side by side: most of a small table's build is Spark and Delta
    # latency (planning, log replay, commits) rather than CPU, so overlapping them roughly halves
    # a full build on two cores. fact_usage needs the job runs of the same build (attribution)
    # and dim_date the facts' date range, so those wait for what they depend on.
    chains: list[list[Builder]] = []
    if "fact_job_run_timeline" in todo or "fact_usage" in todo:
        chains.append([todo[t] for t in ("fact_job_run_timeline", "fact_usage") if t in todo])
    chains += [[x] for t, x in todo.items() if t not in _ORDERED]
    # Start the session here: a builder thread that builds a Column (F.lit) before another thread
    # has created it fails with a bare AssertionError (a fresh 'health-monitor build').
    _ = lake.spark
    with ThreadPoolExecutor(max_workers=_workers(), thread_name_prefix="gold") as pool:
        for future in [pool.submit(_run_chain, b, chain, full_refresh) for chain in chains]:
            future.result()
    if "dim_date" in todo:
        _run_one(b, todo["dim_date"], full_refresh)
    return {t: b.counts[t] for t in BUILDABLE if t in b.counts}


#: Builders that must wait for others: in a chain (job runs, then usage) or last (dim_date).
_ORDERED = ("fact_job_run_timeline", "fact_usage", "dim_date")


def _workers() -> int:
    return max(1, int(os.environ.get("HEALTH_MONITOR_BUILD_THREADS", "4")))


def _run_chain(b: _Build, chain: list[Builder], full_refresh: bool) -> None:
    for builder in chain:
        _run_one(b, builder, full_refresh)


def _run_one(b: _Build, builder: Builder, full_refresh: bool) -> None:
    lake = b.lake
    missing = [s for s in builder.sources if not lake.exists(s, "system")]
    if missing:
        progress.info(f"skip {builder.table}: no system.{', system.'.join(missing)}")
        return
    if full_refresh:
        lake.delete_table(builder.table, "gold")
    if full_refresh or not lake.exists(builder.table, "gold"):
        reset_state(lake, builder.table)  # a checkpoint without its table would skip history
    with progress.step(f"gold.{builder.table}"):
        try:
            n = builder.run(b)
        except SourceRewritten as exc:
            progress.info(f"{exc}: rebuilding {builder.table} from all history")
            lake.delete_table(builder.table, "gold")
            reset_state(lake, builder.table)
            n = builder.run(b)
    if n is None:
        progress.info(f"skip {builder.table}: no Gold facts to take its range from")
        return
    b.counts[builder.table] = n
    progress.info(f"gold.{builder.table}: {n:,} rows added or updated")


__all__ = ["BUILDABLE", "BUILDERS", "USER_CONFIG_TABLES", "Builder", "build_gold", "conform"]
