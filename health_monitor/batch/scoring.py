"""Daily batch inference: every catalog model scores the day's active entities.

For a score date D and each catalog model, the scorer

1. defines the day's *active* entities from Gold (workspaces with usage on D, runs started on D,
   users with audit / lineage / query events on D, ...: :data:`ACTIVE`),
2. takes, for each active entity, its latest feature row with a time stamp on or before D
   (point-in-time: features never come from after the score date),
3. predicts with the model's registered champion (the pyfunc input is exactly the catalog's
   feature columns) and
4. upserts ``<model>_predictions`` in the ``ml`` layer on the entity keys plus ``score_date``,
   so a rerun for the same date replaces rows and never duplicates them.

Coverage (entities scored / entities active) is reported per model; where it is below 100%
the report says why (no feature row yet, no champion, ...).

All 23 catalog models are batch-scorable: the "real-time" ones (security, exfiltration,
query forecasts) are also scored by the streams, but their champions are plain pyfuncs too.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from health_monitor import progress
from health_monitor.catalog import MODELS, ModelSpec, get_model
from health_monitor.errors import HealthMonitorError
from health_monitor.features.cost import usage_entity
from health_monitor.runtime import Lakehouse

#: Columns every prediction table carries besides entity keys and model outputs.
META_COLUMNS = ("model_name", "model_version", "scored_at", "feature_timestamp", "score_date")


def predictions_table(name: str) -> str:
    """Name of the ``ml``-layer table holding model ``name``'s predictions."""
    return f"{name}_predictions"


# ---------------------------------------------------------------------------- active entities
def _gold(lake: Lakehouse, table: str) -> DataFrame | None:
    return lake.read(table, "gold") if lake.exists(table, "gold") else None


def _on(df: DataFrame, col: str, day: dt.date) -> DataFrame:
    return df.where(F.to_date(F.col(col)) == F.lit(day))


def _workspaces(lake: Lakehouse, day: dt.date) -> DataFrame | None:
    u = _gold(lake, "fact_usage")
    return None if u is None else _on(u, "usage_date", day).select("workspace_id").distinct()


def _cost_entities(lake: Lakehouse, day: dt.date) -> DataFrame | None:
    u = _gold(lake, "fact_usage")
    if u is None:
        return None
    entity = usage_entity()  # the feature table's own keys, so coverage lines up
    return (_on(u, "usage_date", day).withColumn("_e", entity)
            .select("workspace_id", F.col("_e.t").alias("entity_type"), F.col("_e.i").alias("entity_id")).distinct())


def _cost_window_keys(lake: Lakehouse, day: dt.date) -> DataFrame | None:
    u = _gold(lake, "fact_usage")
    if u is None:
        return None
    # the cost stream's keys (streaming/sources.cost_input): the workspace and each workspace x SKU
    d = _on(u, "usage_date", day)
    return (d.select("workspace_id", F.lit("workspace").alias("entity_type"), F.col("workspace_id").alias("entity_id"))
            .unionByName(d.select("workspace_id", F.lit("workspace_sku").alias("entity_type"),
                                  F.concat_ws(":", "workspace_id", "sku_name").alias("entity_id")))
            .distinct())


def _runs(lake: Lakehouse, day: dt.date) -> DataFrame | None:
    r = _gold(lake, "fact_job_run_timeline")
    # Feature rows exist for finished runs only (a result state): a running job is not active yet.
    return None if r is None else (_on(r, "period_start_time", day).where(F.col("result_state").isNotNull())
                                   .select("workspace_id", "job_id", "run_id").distinct())


def _jobs(lake: Lakehouse, day: dt.date) -> DataFrame | None:
    r = _runs(lake, day)
    return None if r is None else r.select("workspace_id", "job_id").distinct()


_USER_SOURCES = (("fact_audit_events", "event_date", "user_email"),
                 ("fact_table_lineage", "event_date", "created_by"),
                 ("fact_query_history", "query_date", "executed_by"))


def _window_users(lake: Lakehouse, day: dt.date) -> DataFrame | None:
    # the security stream's users: audit and lineage rows (query history only adds bytes to those)
    return _users(lake, day, _USER_SOURCES[:2])


def _users(lake: Lakehouse, day: dt.date, sources: tuple = _USER_SOURCES) -> DataFrame | None:
    parts = []
    for table, col, user in sources:
        g = _gold(lake, table)
        if g is not None:
            parts.append(_on(g, col, day).where(F.col(user).isNotNull()).select(F.lower(user).alias("user_id")))
    if not parts:
        return None
    out = parts[0]
    for p in parts[1:]:
        out = out.unionByName(p)
    return out.distinct()


def _queries(lake: Lakehouse, day: dt.date) -> DataFrame | None:
    q = _gold(lake, "fact_query_history")
    return None if q is None else _on(q, "start_time", day).select("statement_id").distinct()


def _warehouses(lake: Lakehouse, day: dt.date) -> DataFrame | None:
    q = _gold(lake, "fact_query_history")
    return None if q is None else (_on(q, "start_time", day).where(F.col("warehouse_id").isNotNull())
                                   .select("warehouse_id").distinct())


def _clusters(lake: Lakehouse, day: dt.date) -> DataFrame | None:
    n = _gold(lake, "fact_node_timeline")
    # Worker rows, as the capacity features count: a driver-only cluster has no worker capacity to plan.
    return None if n is None else (_on(n, "node_date", day).where(~F.coalesce(F.col("driver"), F.lit(False)))
                                   .select("cluster_id").distinct())


def _dq_tables(lake: Lakehouse, day: dt.date) -> DataFrame | None:
    q = _gold(lake, "fact_data_quality_monitoring_table_results")
    return None if q is None else _on(q, "event_time", day).select("table_id").distinct()


def _schema_tables(lake: Lakehouse, day: dt.date) -> DataFrame | None:
    s = _gold(lake, "fact_table_schema_history")
    return None if s is None else _on(s, "snapshot_time", day).select("table_full_name").distinct()


#: Feature table -> (what "active on day D" means, function returning the active entity keys).
ACTIVE: dict[str, tuple[str, Callable[[Lakehouse, dt.date], DataFrame | None]]] = {
    "cost_daily_features": ("workspaces with usage that day", _workspaces),
    "cost_window_features": ("workspaces and workspace x SKUs with usage that day", _cost_window_keys),
    "user_window_features": ("users with audit or lineage events that day", _window_users),
    "budget_monthly_features": ("workspaces with usage that day", _workspaces),
    "entity_cost_features": ("jobs/warehouses/clusters/pipelines with usage that day", _cost_entities),
    "job_run_features": ("job runs started that day with a result", _runs),
    "job_features": ("jobs with runs that day", _jobs),
    "user_daily_features": ("users with audit, lineage or query events that day", _users),
    "query_features": ("queries started that day", _queries),
    "warehouse_hourly_features": ("warehouses with queries that day", _warehouses),
    "cluster_daily_features": ("clusters with worker node rows that day", _clusters),
    "table_quality_features": ("tables with data-quality results that day", _dq_tables),
    "schema_change_features": ("tables with schema snapshots that day", _schema_tables),
}


# ---------------------------------------------------------------------------- report
@dataclass
class ModelScore:
    """One model's scoring outcome for a date."""

    name: str
    active: int = 0
    scored: int = 0
    version: str | None = None
    table: str = ""
    active_definition: str = ""
    notes: list[str] = field(default_factory=list)
    #: Why the model was not scored on this estate (its inputs are missing); empty if scored.
    skipped: str = ""

    @property
    def coverage(self) -> float | None:
        """Entities scored / entities active (None when nothing was active)."""
        return None if self.active == 0 else self.scored / self.active


@dataclass
class ScoreReport:
    """What :func:`score_all` did for one date."""

    score_date: dt.date
    models: list[ModelScore] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """True when every model with active entities scored all of them."""
        return all(m.coverage in (None, 1.0) for m in self.models)

    def lines(self) -> list[str]:
        """Human-readable coverage lines (one per model, with reasons when below 100%)."""
        out = []
        for m in self.models:
            if m.skipped:
                out.append(f"{m.name:<38} skipped: {m.skipped}")
                continue
            cov = "  n/a" if m.coverage is None else f"{100 * m.coverage:5.1f}%"
            out.append(f"{m.name:<38} {cov}  {m.scored}/{m.active} ({m.active_definition})"
                       f"{'  v' + m.version if m.version else ''}")
            out.extend(f"    {n}" for n in m.notes)
        return out


# ---------------------------------------------------------------------------- scoring
def _as_date(value: dt.date | str | None, lake: Lakehouse) -> dt.date:
    if value is None:
        u = _gold(lake, "fact_usage")
        last = None if u is None else u.agg(F.max("usage_date")).first()[0]
        if last is None:
            raise HealthMonitorError("no fact_usage in Gold to pick a score date from: pass --date or build Gold")
        return last
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise HealthMonitorError(f"date {value!r} is not YYYY-MM-DD") from None


def latest_features(lake: Lakehouse, spec: ModelSpec, day: dt.date) -> DataFrame:
    """Each entity's latest row of ``spec.feature_table`` with its time key on or before ``day``
    (of a window judged again when its late rows arrived, its latest revision)."""
    feats = lake.read(spec.feature_table, "features")
    feats = feats.where(F.to_date(F.col(spec.time_key)) <= F.lit(day))
    order = [F.col(spec.time_key).desc()] + ([F.col("revision").desc()] if "revision" in feats.columns else [])
    w = Window.partitionBy(*spec.entity_keys).orderBy(*order)
    return feats.withColumn("_rn", F.row_number().over(w)).where("_rn = 1").drop("_rn")


def _to_spark_frame(lake: Lakehouse, pdf: pd.DataFrame) -> DataFrame:
    """pandas -> Spark with stable types: lists/dicts become JSON text, all-null columns strings."""
    pdf = pdf.copy()
    fields = []
    for c in pdf.columns:
        s = pdf[c]
        if s.dtype == object:
            if s.map(lambda v: isinstance(v, list | tuple | dict | np.ndarray)).any():
                pdf[c] = s.map(lambda v: None if v is None else json.dumps(
                    v.tolist() if isinstance(v, np.ndarray) else v, default=str))
                fields.append(T.StructField(c, T.StringType()))
            elif s.map(lambda v: isinstance(v, dt.date | dt.datetime | pd.Timestamp)).any():
                fields.append(None)
            else:
                pdf[c] = s.map(lambda v: None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))
                fields.append(T.StructField(c, T.StringType()))
        elif pd.api.types.is_bool_dtype(s):
            fields.append(T.StructField(c, T.BooleanType()))
        elif pd.api.types.is_integer_dtype(s):
            fields.append(T.StructField(c, T.LongType()))
        elif pd.api.types.is_float_dtype(s):
            pdf[c] = s.astype("float64")
            fields.append(T.StructField(c, T.DoubleType()))
        else:
            fields.append(None)
    if all(f is not None for f in fields):
        pdf = pdf.astype(object).where(pdf.notna(), None)
        return lake.spark.createDataFrame(pdf, schema=T.StructType(fields))
    return lake.spark.createDataFrame(pdf)


def score_model(lake: Lakehouse, spec: ModelSpec, day: dt.date, scored_at: dt.datetime | None = None
                ) -> ModelScore:
    """Score one catalog model's active entities for ``day`` and upsert its prediction table."""
    from health_monitor.batch.registry import CHAMPION, alias_version, load_champion
    from health_monitor.batch.trainer import signature_frame
    from health_monitor.features import missing_driving, source_hint

    definition, active_fn = ACTIVE[spec.feature_table]
    res = ModelScore(spec.name, table=predictions_table(spec.name), active_definition=definition)
    keys = list(spec.entity_keys)
    driving = missing_driving(lake, spec.feature_table)
    if driving:
        res.skipped = f"no Gold {driving} (from {source_hint(driving)}) for {spec.feature_table}"
        return res
    active = active_fn(lake, day)
    if active is None:
        res.notes.append("the Gold tables that define active entities do not exist")
        return res
    active = active.cache()
    try:
        res.active = active.count()
        if res.active == 0:
            return res
        if not lake.exists(spec.feature_table, "features"):
            res.notes.append(f"feature table {spec.feature_table} does not exist: run 'health-monitor train' "
                             "or score with --build-features")
            return res
        res.version = alias_version(lake.settings, spec, CHAMPION)
        if res.version is None:
            absent = [t for t in spec.gold_tables if not lake.exists(t, "gold")]
            if absent:  # train skipped it for the same reason
                res.skipped = f"no champion: its inputs {', '.join(absent)} are not in Gold"
                res.active = 0
                return res
            res.notes.append("no champion in the registry: run 'health-monitor train'")
            return res
        rows = active.join(latest_features(lake, spec, day), keys, "inner").toPandas()
        missing = res.active - len(rows)
        if missing:
            res.notes.append(f"{missing} active entities have no feature row on or before {day} "
                             "(feature tables older than Gold? rebuild with --build-features)")
        if rows.empty:
            return res
        model = load_champion(lake.settings, spec.name)
        # The signature declares numbers as float64; Spark hands back int64 for count columns.
        out = model.predict(signature_frame(rows.reset_index(drop=True), list(spec.features)))
        out = out.reset_index(drop=True)[list(spec.outputs)]
        frame = rows[keys].reset_index(drop=True).copy()
        for c in spec.outputs:
            frame[c] = out[c].to_numpy()
        frame["model_name"] = spec.name
        frame["model_version"] = res.version
        # Text on the way in, typed in Spark: pandas datetime columns with NaT are fragile to convert.
        frame["feature_timestamp"] = pd.to_datetime(rows[spec.time_key]).dt.strftime("%Y-%m-%d %H:%M:%S").to_numpy()
        stamp = scored_at or dt.datetime.now(dt.UTC).replace(tzinfo=None)
        sdf = (_to_spark_frame(lake, frame)
               .withColumn("feature_timestamp", F.col("feature_timestamp").cast("timestamp"))
               .withColumn("scored_at", F.lit(stamp).cast("timestamp"))
               .withColumn("score_date", F.lit(day).cast("date")))
        for k in keys:  # entity keys are strings in every Gold contract
            sdf = sdf.withColumn(k, F.col(k).cast("string"))
        lake.merge(sdf, res.table, keys + ["score_date"], layer="ml")
        res.scored = len(frame)
        return res
    finally:
        active.unpersist()


def score_all(lake: Lakehouse, date: dt.date | str | None = None, models: list[str] | None = None,
              build_features: bool = False) -> ScoreReport:
    """Score every catalog model (or ``models``) for ``date`` (default: Gold's last usage day).

    Args:
        lake: the lakehouse (Gold, features, ml layers).
        date: the score date; entities active that day are scored with features as of that day.
        models: catalog names to score (default all 23).
        build_features: rebuild the feature tables from Gold first (when Gold moved on since
            the last training run).

    Returns:
        A :class:`ScoreReport` with per-model coverage and reasons for any gap.
    """
    day = _as_date(date, lake)
    specs = [get_model(n) for n in models] if models else list(MODELS)
    if build_features:
        from health_monitor.features import build_features as _build

        with progress.step("rebuilding feature tables"):
            _build(lake, tables=sorted({s.feature_table for s in specs}))
    report = ScoreReport(day)
    scored_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    for i, spec in enumerate(specs, 1):
        with progress.step(f"[{i}/{len(specs)}] scoring {spec.name}"):
            report.models.append(score_model(lake, spec, day, scored_at))
    return report


def read_predictions(lake: Lakehouse, name: str, day: dt.date | None = None) -> pd.DataFrame | None:
    """One model's predictions (for ``day``, default the latest score date) as pandas, or None."""
    table = predictions_table(name)
    if not lake.exists(table, "ml"):
        return None
    df = lake.read(table, "ml")
    if day is None:
        day = df.agg(F.max("score_date")).first()[0]
        if day is None:
            return None
    return df.where(F.col("score_date") == F.lit(day)).toPandas()
