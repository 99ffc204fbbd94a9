"""Feature tables: Gold -> ``features`` layer, one table per grain, point-in-time correct.

Each table is a pure function of Gold DataFrames (see the domain modules); this module lists
them with their keys and writes them. A row keyed at time t uses only Gold data from before t
(rolling windows end one day / one row before; dimensions as of t); only ``label_*`` columns
look ahead, and models never take them as inputs.

Accounts enable system tables separately (lineage, query history, node timeline, data-quality
monitoring, ...), so a feature table needs only its *driving* Gold table (the first of its
``gold_tables``: the one its rows come from). Without it the table is skipped; any other input
that is missing is read as an empty table of its contract, so the features it feeds come out
zero or null, and :func:`build_features` says so in one line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING

from health_monitor import progress
from health_monitor.errors import HealthMonitorError
from health_monitor.features import cost, jobs, performance, quality, security, windows
from health_monitor.gold.schemas import GOLD_TABLES

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from health_monitor.runtime import Lakehouse


class MissingGold(HealthMonitorError):
    """A feature table's driving Gold table does not exist."""


def source_hint(gold_table: str) -> str:
    """The system tables a Gold table is built from, for notes (``system.query.history``)."""
    from health_monitor.gold.builders import BUILDERS, USER_CONFIG_TABLES

    if gold_table in USER_CONFIG_TABLES:
        return "user configuration, loaded with 'health-monitor ingest'"
    for b in BUILDERS:
        if b.table == gold_table and b.sources:
            return ", ".join(f"system.{s}" for s in b.sources)
    return "built by 'health-monitor build'"


class GoldInputs:
    """Lazy, cached reads of Gold tables, optionally cut at ``as_of`` (event time < as_of).

    ``driving`` names the table whose absence is an error; any other table read with
    ``required=True`` that does not exist is served as an empty table of its contract (one
    read with ``required=False`` as None, which its feature code handles); both are remembered
    in ``absent`` (the features they feed are zero or null).
    """

    def __init__(self, lake: Lakehouse, as_of: datetime | date | None = None) -> None:
        self.lake = lake
        self.as_of = as_of
        self.driving: str | None = None
        self.absent: set[str] = set()
        self._cache: dict[str, DataFrame] = {}

    def get(self, name: str, required: bool = True) -> DataFrame | None:
        """A Gold table (None if optional and missing; empty if missing and not the driving one)."""
        if name in self._cache:
            return self._cache[name]
        if not self.lake.exists(name, "gold"):
            if not required:
                self.absent.add(name)
                return None
            if self.driving is None or name == self.driving:
                raise MissingGold(f"Gold table {name} is missing (from {source_hint(name)}): run "
                                  "'health-monitor simulate' or 'health-monitor build' first")
            self.absent.add(name)
            return self.lake.spark.createDataFrame([], GOLD_TABLES[name].schema)
        from pyspark.sql import functions as F

        df = self.lake.read(name, "gold")
        spec = GOLD_TABLES[name]
        if self.as_of is not None:
            if spec.event_time:
                df = df.where(F.col(spec.event_time) < F.lit(self.as_of))
            elif spec.scd2:
                df = df.where(F.col("effective_from") < F.lit(self.as_of))
        self._cache[name] = df
        return df


@dataclass(frozen=True)
class FeatureTable:
    """One feature table: its keys, its point-in-time column and how it is computed."""

    name: str
    keys: tuple[str, ...]
    time_key: str
    gold_tables: tuple[str, ...]
    compute: Callable[[GoldInputs], DataFrame]
    description: str

    @property
    def driving(self) -> str:
        """The Gold table the rows come from: without it there is nothing to build."""
        return self.gold_tables[0]


def _user_windows(g: GoldInputs) -> DataFrame:
    from pyspark.sql import functions as F

    # user_id as the batch side spells users (lower-case), for scoring and serving lookups
    return windows.window_feature_frame(g, "security").withColumn("user_id", F.lower("entity_id"))


def _cost_daily(g: GoldInputs) -> DataFrame:
    return cost.cost_daily_features(g.get("fact_usage"), g.get("dim_date", required=False))


FEATURE_TABLES: dict[str, FeatureTable] = {t.name: t for t in [
    FeatureTable("calendar_features", ("date_key",), "date_key", ("dim_date",),
                 lambda g: quality.calendar_features(g.get("dim_date")),
                 "Shared calendar: cyclical day/month, weekends, month ends, holidays."),
    FeatureTable("cost_daily_features", ("workspace_id", "usage_date"), "usage_date",
                 ("fact_usage", "dim_date"), _cost_daily,
                 "Daily spend per workspace vs its own 7/30-day past."),
    FeatureTable("cost_hourly_features", ("workspace_id", "usage_hour"), "usage_hour", ("fact_usage",),
                 lambda g: cost.cost_hourly_features(g.get("fact_usage")),
                 "Hourly spend per workspace vs the previous 24 h and the same hour last week."),
    FeatureTable("budget_monthly_features", ("workspace_id", "as_of_date"), "as_of_date",
                 ("fact_usage", "dim_date"), lambda g: cost.budget_monthly_features(_cost_daily(g)),
                 "Month-to-date spend per workspace and day; label: the month's total."),
    FeatureTable("entity_cost_features", ("workspace_id", "entity_type", "entity_id", "week_start"),
                 "week_start", ("fact_usage",), lambda g: cost.entity_cost_features(g.get("fact_usage")),
                 "Weekly cost profile per job / warehouse / cluster / pipeline with its team tag."),
    FeatureTable("job_run_features", ("workspace_id", "run_id"), "period_start_time",
                 ("fact_job_run_timeline", "dim_job", "dim_cluster", "fact_usage", "fact_node_timeline",
                  "fact_table_lineage", "sla_definitions", "dim_date"),
                 lambda g: jobs.job_run_features(
                     g.get("fact_job_run_timeline"), g.get("dim_job"), g.get("dim_cluster"), g.get("fact_usage"),
                     g.get("fact_node_timeline"), g.get("fact_table_lineage", required=False),
                     g.get("sla_definitions", required=False), g.get("dim_date", required=False)),
                 "One row per finished run: the job's history before it, configuration, outcome labels."),
    FeatureTable("job_features", ("workspace_id", "job_id", "as_of_date"), "as_of_date",
                 ("fact_job_run_timeline", "dim_job", "fact_usage", "sla_definitions"),
                 lambda g: jobs.job_features(g.get("fact_job_run_timeline"), g.get("dim_job"), g.get("fact_usage"),
                                             g.get("sla_definitions", required=False)),
                 "Per job and day: pipeline-health components and tag-recommender inputs."),
    FeatureTable("cost_window_features", ("entity_type", "entity_id", "window_start", "revision"), "window_start",
                 ("fact_usage", "commit_configurations"), lambda g: windows.window_feature_frame(g, "cost"),
                 "Hourly windows per workspace and workspace x SKU: the cost stream's own window features "
                 "replayed over Gold (what the cost stream's champions train on), at close (revision 0) "
                 "and again where late billing rows changed a window (revisions 1-3: a day, two days, final)."),
    FeatureTable("user_window_features", ("entity_id", "window_start"), "window_start",
                 ("fact_audit_events", "fact_table_lineage", "fact_query_history"), _user_windows,
                 "Hourly windows per user: the security stream's own window features replayed over Gold "
                 "(what the security stream's champions train on)."),
    FeatureTable("user_daily_features", ("user_id", "event_date"), "event_date",
                 ("fact_audit_events", "fact_table_lineage", "fact_query_history"),
                 lambda g: security.user_daily_features(g.get("fact_audit_events"), g.get("fact_table_lineage"),
                                                        g.get("fact_query_history")),
                 "Per user and day: access, permission, volume and novelty signals vs own past and peers."),
    FeatureTable("query_features", ("statement_id",), "start_time", ("fact_query_history", "dim_warehouse"),
                 lambda g: performance.query_features(g.get("fact_query_history"),
                                                      g.get("dim_warehouse", required=False)),
                 "Per statement: text shape, the same text's history, warehouse load; outcome labels."),
    FeatureTable("warehouse_hourly_features", ("warehouse_id", "hour_start"), "hour_start",
                 ("fact_query_history", "fact_usage", "dim_warehouse"),
                 lambda g: performance.warehouse_hourly_features(g.get("fact_query_history"), g.get("fact_usage"),
                                                                 g.get("dim_warehouse", required=False)),
                 "Per warehouse and hour: load, queueing, spill, cost."),
    FeatureTable("cluster_daily_features", ("cluster_id", "node_date"), "node_date",
                 ("fact_node_timeline", "dim_cluster", "fact_usage"),
                 lambda g: performance.cluster_daily_features(g.get("fact_node_timeline"), g.get("dim_cluster"),
                                                              g.get("fact_usage")),
                 "Per cluster and day: utilization and cores in use; label: next week's peak cores."),
    FeatureTable("table_quality_features", ("table_id", "event_date"), "event_date",
                 ("fact_data_quality_monitoring_table_results", "fact_job_run_timeline"),
                 lambda g: quality.table_quality_features(g.get("fact_data_quality_monitoring_table_results"),
                                                          g.get("fact_job_run_timeline")),
                 "Per monitored table and day: quality score and arrival-lag history, upstream jobs."),
    FeatureTable("schema_change_features", ("table_full_name", "snapshot_date"), "snapshot_date",
                 ("fact_table_schema_history", "fact_table_lineage"),
                 lambda g: quality.schema_change_features(g.get("fact_table_schema_history"),
                                                          g.get("fact_table_lineage")),
                 "Per table snapshot: column changes vs the previous snapshot, downstream readers."),
]}


def compute_feature_table(lake: Lakehouse, name: str, as_of: datetime | date | None = None) -> DataFrame:
    """The feature table ``name`` as a DataFrame (not written), from Gold cut at ``as_of``."""
    if name not in FEATURE_TABLES:
        raise HealthMonitorError(f"unknown feature table {name!r}; known: {', '.join(FEATURE_TABLES)}")
    gold = GoldInputs(lake, as_of)
    gold.driving = FEATURE_TABLES[name].driving
    return FEATURE_TABLES[name].compute(gold)


def missing_driving(lake: Lakehouse, table: str) -> str | None:
    """The driving Gold table of feature table ``table`` when it does not exist, else None."""
    driving = FEATURE_TABLES[table].driving
    return None if lake.exists(driving, "gold") else driving


def build_features(lake: Lakehouse, as_of: datetime | date | None = None,
                   tables: list[str] | None = None) -> dict[str, int]:
    """Compute and (over)write feature tables in the ``features`` layer; returns rows per table.

    ``as_of`` builds them from Gold as it was before that time (backfills, leakage checks).
    A table whose driving Gold table is missing is skipped (absent from the result) with a
    note; one whose other inputs are missing is built without them, also with a note.
    """
    names = tables or list(FEATURE_TABLES)
    unknown = [n for n in names if n not in FEATURE_TABLES]
    if unknown:
        raise HealthMonitorError(f"unknown feature tables {unknown}; known: {', '.join(FEATURE_TABLES)}")
    gold = GoldInputs(lake, as_of)
    counts: dict[str, int] = {}
    for name in names:
        table = FEATURE_TABLES[name]
        driving = missing_driving(lake, name)
        if driving:
            progress.info(f"skip features.{name}: no Gold {driving} (from {source_hint(driving)})")
            continue
        gold.driving, gold.absent = table.driving, set()
        with progress.step(f"features.{name}"):
            df = table.compute(gold)
            lake.write(df, name, "features", mode="overwrite")
            counts[name] = lake.count(name, "features")
        if gold.absent:
            fed = ", ".join(f"{t} ({source_hint(t)})" for t in sorted(gold.absent))
            progress.info(f"features.{name}: built without {fed}: the features they feed are zero or null")
    return counts
