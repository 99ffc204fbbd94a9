"""Recommendations with money attached, from the day's prediction tables and Gold.

One ``ml.recommendations`` table; each row says what to do about one entity, why (evidence in
words, with the numbers), how many dollars a month it saves (0 where the advice is not a saving,
e.g. an upsize or a tag) and how sure the model is. Rerunning a date replaces that date's rows.

Money conventions (list prices, as in Gold ``fact_usage.list_cost``):
    job right-sizing: the optimizer's savings per run x the job's runs in the last 30 days;
    cluster capacity: the planner's weekly savings x 30/7 (negative: an upsize, savings 0);
    warehouses: -cost_impact_pct x the warehouse's last-30-day cost, where the size goes down.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from pyspark.sql import functions as F

from health_monitor.batch.scoring import latest_features, read_predictions
from health_monitor.catalog import get_model
from health_monitor.runtime import Lakehouse

TABLE = "recommendations"
COLUMNS = ["score_date", "category", "entity_type", "entity", "workspace_id", "action", "evidence",
           "estimated_savings_usd_month", "confidence", "model_name", "model_version", "created_at"]
SCHEMA = ("score_date date, category string, entity_type string, entity string, workspace_id string, "
          "action string, evidence string, estimated_savings_usd_month double, confidence double, "
          "model_name string, model_version string, created_at timestamp")
#: Rule of thumb for query advice: fixing a flagged issue removes about half of the query's time.
QUERY_FIX_SHARE = 0.5


def _rows(pred: pd.DataFrame, category: str, entity_type: str, entity: pd.Series, workspace: pd.Series | None,
          action: pd.Series, evidence: pd.Series, savings: pd.Series | float, confidence: pd.Series | float
          ) -> pd.DataFrame:
    n = len(pred)
    return pd.DataFrame({
        "category": category, "entity_type": entity_type, "entity": entity.astype(str).to_numpy(),
        "workspace_id": (workspace.astype(str).to_numpy() if workspace is not None else [None] * n),
        "action": np.asarray(action, dtype=object), "evidence": np.asarray(evidence, dtype=object),
        "estimated_savings_usd_month": np.clip(np.nan_to_num(np.broadcast_to(np.asarray(savings, float), (n,))),
                                               0, None),
        "confidence": np.clip(np.nan_to_num(np.broadcast_to(np.asarray(confidence, float), (n,))), 0, 1),
        "model_name": pred["model_name"].to_numpy() if n else [],
        "model_version": pred["model_version"].to_numpy() if n else []})


def _cost_30d(lake: Lakehouse, day: dt.date, column: str) -> pd.DataFrame:
    """Last-30-day list cost and record count per ``column`` (job_id, warehouse_id, cluster_id)."""
    u = lake.read("fact_usage", "gold").where(
        (F.col("usage_date") > F.date_sub(F.lit(day), 30)) & (F.col("usage_date") <= F.lit(day))
        & F.col(column).isNotNull())
    return u.groupBy(column).agg(F.sum(F.col("list_cost").cast("double")).alias("cost_30d")).toPandas()


def _runs_30d(lake: Lakehouse, day: dt.date) -> pd.DataFrame:
    r = lake.read("fact_job_run_timeline", "gold").where(
        (F.to_date("period_start_time") > F.date_sub(F.lit(day), 30))
        & (F.to_date("period_start_time") <= F.lit(day)))
    return r.groupBy("workspace_id", "job_id").agg(F.countDistinct("run_id").alias("runs_30d")).toPandas()


# ---------------------------------------------------------------------------- categories
def job_cost(lake: Lakehouse, day: dt.date) -> pd.DataFrame | None:
    """Right-sizing per job: savings per run (mean of the day's runs) x runs in the last 30 days."""
    p = read_predictions(lake, "job_cost_optimizer", day)
    if p is None or p.empty:
        return None
    g = p.groupby(["workspace_id", "job_id"]).agg(
        savings=("savings_estimate", "mean"), cost=("predicted_cost", "mean"),
        rec=("recommendation", lambda s: s.mode().iloc[0]), model_name=("model_name", "first"),
        model_version=("model_version", "first"), n=("run_id", "count")).reset_index()
    g = g.merge(_runs_30d(lake, day), on=["workspace_id", "job_id"], how="left").fillna({"runs_30d": 0})
    g = g[g.rec != "KEEP"]
    monthly = g.savings * g.runs_30d
    share = np.where(g.cost > 0, g.savings / g.cost.where(g.cost > 0, 1), 0)
    evidence = [f"predicted ${c:,.2f}/run, {r:.0f} runs in 30 days; low CPU -> cut workers by {100 * s:.0f}%"
                for c, r, s in zip(g.cost, g.runs_30d, share, strict=True)]
    action = [f"{r}: reduce the job cluster's workers by {100 * s:.0f}%" for r, s in zip(g.rec, share, strict=True)]
    return _rows(g, "job_cost_optimizer", "job", g.job_id, g.workspace_id, action, evidence, monthly,
                 np.minimum(1.0, g.n / 3.0) * 0.8)


def cluster_capacity(lake: Lakehouse, day: dt.date) -> pd.DataFrame | None:
    """DOWNSIZE_AGGRESSIVE / DOWNSIZE_MODERATE / UPSIZE / OPTIMAL per cluster, with autoscaling advice."""
    p = read_predictions(lake, "cluster_capacity_planner", day)
    if p is None or p.empty:
        return None
    feats = latest_features(lake, get_model("cluster_capacity_planner"), day).select(
        "cluster_id", "worker_count", "is_autoscaling").toPandas()
    p = p.merge(feats, on="cluster_id", how="left")
    workers = pd.to_numeric(p.worker_count, errors="coerce").fillna(1).clip(lower=1)
    ratio = p.recommended_workers / workers
    label = np.select([ratio <= 0.5, ratio < 0.85, ratio > 1.0], ["DOWNSIZE_AGGRESSIVE", "DOWNSIZE_MODERATE", "UPSIZE"],
                      "OPTIMAL")
    auto = p.is_autoscaling.fillna(False).astype(bool)
    action = [
        (f"{lab}: {int(w)} -> {int(r)} workers" if lab != "OPTIMAL" else "OPTIMAL: keep the size")
        + ("" if a or lab == "OPTIMAL" else f"; or enable autoscaling {min(int(r), int(w))}-{max(int(r), int(w))}")
        for lab, w, r, a in zip(label, workers, p.recommended_workers, auto, strict=True)]
    evidence = [f"predicted peak {c:.1f} cores next week; expected peak utilization {100 * u:.0f}% at {int(r)} workers"
                for c, u, r in zip(p.predicted_peak_cores, p.expected_peak_utilization, p.recommended_workers,
                                   strict=True)]
    return _rows(p, "cluster_capacity_planner", "cluster", p.cluster_id, None, action, evidence,
                 p.cost_savings * 30.0 / 7.0, 0.7)


def warehouses(lake: Lakehouse, day: dt.date) -> pd.DataFrame | None:
    """Recommended warehouse size, predicted p95 queue time and cost impact per warehouse."""
    p = read_predictions(lake, "warehouse_optimizer", day)
    if p is None or p.empty:
        return None
    p = p.merge(_cost_30d(lake, day, "warehouse_id"), on="warehouse_id", how="left").fillna({"cost_30d": 0.0})
    impact = p.cost_impact_pct / 100.0
    action = [f"resize to {s}" if i != 0 else f"keep {s}" for s, i in zip(p.recommended_size, impact, strict=True)]
    evidence = [f"predicted p95 queue {q:.1f}s at {s}; cost impact {100 * i:+.0f}% of ${c:,.0f} in the last 30 days"
                for q, s, i, c in zip(p.predicted_queue_p95_s, p.recommended_size, impact, p.cost_30d, strict=True)]
    return _rows(p, "warehouse_optimizer", "warehouse", p.warehouse_id, None, action, evidence,
                 -impact * p.cost_30d, 0.7)


def chargeback(lake: Lakehouse, day: dt.date) -> pd.DataFrame | None:
    """Allocation of untagged spend to teams, with its weight and attribution confidence."""
    p = read_predictions(lake, "chargeback_optimizer", day)
    if p is None or p.empty:
        return None
    spec = get_model("chargeback_optimizer")
    feats = latest_features(lake, spec, day).select(*spec.entity_keys, "tag_team").toPandas()
    p = p.merge(feats, on=list(spec.entity_keys), how="left")
    p = p[p.tag_team.isna() & p.allocated_team.notna()]
    action = [f"charge {100 * w:.0f}% of its cost to {t}" for w, t in zip(p.allocation_weight, p.allocated_team,
                                                                          strict=True)]
    evidence = [f"untagged {e}; cost cluster {c} is dominated by {t}" for e, c, t in
                zip(p.entity_type, p.cost_cluster, p.allocated_team, strict=True)]
    return _rows(p, "chargeback_optimizer", "cost_entity", p.entity_type + ":" + p.entity_id, p.workspace_id,
                 action, evidence, 0.0, p.attribution_confidence)


def tags(lake: Lakehouse, day: dt.date) -> pd.DataFrame | None:
    """Team tags for untagged jobs, with the classifier's confidence."""
    p = read_predictions(lake, "tag_recommender", day)
    if p is None or p.empty:
        return None
    spec = get_model("tag_recommender")
    feats = latest_features(lake, spec, day).select("workspace_id", "job_id", "tag_team").toPandas()
    p = p.merge(feats, on=["workspace_id", "job_id"], how="left")
    p = p[p.tag_team.isna() & p.recommended_tag.notna()]
    action = [f"add tag team={t}" for t in p.recommended_tag]
    evidence = ["job has no team tag; name, schedule and lineage resemble the team's jobs"] * len(p)
    return _rows(p, "tag_recommender", "job", p.job_id, p.workspace_id, action, evidence, 0.0, p.confidence)


def queries(lake: Lakehouse, day: dt.date) -> pd.DataFrame | None:
    """Query advice with the expected improvement (seconds) from the duration forecast."""
    p = read_predictions(lake, "query_optimization_recommender", day)
    if p is None or p.empty:
        return None
    p = p[p.recommendations.fillna("").str.len() > 0]
    dur = read_predictions(lake, "query_performance_forecaster", day)
    if dur is not None and not dur.empty:
        p = p.merge(dur[["statement_id", "predicted_duration_s"]], on="statement_id", how="left")
    else:
        p = p.assign(predicted_duration_s=np.nan)
    probs = p[["p_spill", "p_poor_pruning", "p_excessive_shuffle", "p_large_scan"]].astype(float)
    conf = probs.max(axis=1)
    gain = p.predicted_duration_s * conf * QUERY_FIX_SHARE
    evidence = [
        "p(spill)={:.2f}, p(poor pruning)={:.2f}, p(shuffle)={:.2f}, p(large scan)={:.2f}".format(*r)
        + (f"; expected improvement ~{g:.1f}s of {d:.1f}s" if g == g else "")
        for r, g, d in zip(probs.to_numpy(), gain, p.predicted_duration_s, strict=True)]
    return _rows(p, "query_optimization_recommender", "query", p.statement_id, None, p.recommendations,
                 evidence, 0.0, conf)


def dbr_migration(lake: Lakehouse, day: dt.date) -> pd.DataFrame | None:
    """DBR migration risk per job (the riskiest of its runs that day)."""
    p = read_predictions(lake, "dbr_migration_risk_scorer", day)
    if p is None or p.empty:
        return None
    g = p.groupby(["workspace_id", "job_id"]).agg(
        risk=("migration_risk_score", "max"), brk=("breaking_change_probability", "max"),
        model_name=("model_name", "first"), model_version=("model_version", "first")).reset_index()
    action = np.where(g.risk >= 0.5, "test on the target runtime before migrating", "low risk: migrate")
    evidence = [f"migration risk {r:.2f}, breaking-change probability {b:.2f}" for r, b in
                zip(g.risk, g.brk, strict=True)]
    return _rows(g, "dbr_migration_risk_scorer", "job", g.job_id, g.workspace_id, action, evidence, 0.0,
                 np.abs(g.risk - 0.5) * 2)


def pipeline_health(lake: Lakehouse, day: dt.date) -> pd.DataFrame | None:
    """Pipeline health 0-100 per job with its five components; the weakest names the action."""
    p = read_predictions(lake, "pipeline_health_scorer", day)
    if p is None or p.empty:
        return None
    comps = ["success_rate_score", "duration_stability_score", "sla_compliance_score", "error_diversity_score",
             "recovery_speed_score"]
    vals = p[comps].astype(float)
    weakest = vals.idxmin(axis=1).str.removesuffix("_score").str.replace("_", " ")
    action = [f"{'investigate' if h < 60 else 'watch' if h < 80 else 'healthy'}: weakest is {w}"
              for h, w in zip(p.health_score, weakest, strict=True)]
    evidence = [f"health {h:.0f}/100; " + ", ".join(f"{c.removesuffix('_score')} {v:.0f}" for c, v in zip(
        comps, row, strict=True)) for h, row in zip(p.health_score, vals.to_numpy(), strict=True)]
    return _rows(p, "pipeline_health_scorer", "job", p.job_id, p.workspace_id, action, evidence, 0.0, 1.0)


def freshness(lake: Lakehouse, day: dt.date) -> pd.DataFrame | None:
    """Predicted arrival lag (P50, P90 hours) per monitored table."""
    p = read_predictions(lake, "data_freshness_predictor", day)
    if p is None or p.empty:
        return None
    action = [f"expect data {a:.1f}h late (P90 {b:.1f}h)" for a, b in
              zip(p.predicted_lag_h, p.predicted_lag_p90_h, strict=True)]
    evidence = ["from the table's arrival-lag history and its upstream jobs' recent failures"] * len(p)
    return _rows(p, "data_freshness_predictor", "table", p.table_id, None, action, evidence, 0.0, 0.8)


def quality(lake: Lakehouse, day: dt.date) -> pd.DataFrame | None:
    """Quality degradation forecasts per table."""
    p = read_predictions(lake, "data_quality_degradation_forecaster", day)
    if p is None or p.empty:
        return None
    action = np.where(p.degradation_probability >= 0.5, "check upstream before quality drops", "no action")
    evidence = [f"predicted quality score {s:.2f}; degradation probability {d:.2f}" for s, d in
                zip(p.predicted_quality_score, p.degradation_probability, strict=True)]
    return _rows(p, "data_quality_degradation_forecaster", "table", p.table_id, None, action, evidence, 0.0,
                 p.degradation_probability.where(p.degradation_probability >= 0.5, 1 - p.degradation_probability))


def schema_drift(lake: Lakehouse, day: dt.date) -> pd.DataFrame | None:
    """Schema drift risk per table snapshot, with the breaking-change flag."""
    p = read_predictions(lake, "schema_drift_detector", day)
    if p is None or p.empty:
        return None
    brk = p.breaking_change_flag.fillna(False).astype(bool)
    action = np.where(brk, "breaking schema change: notify downstream owners", "no action")
    evidence = [f"drift risk {r:.2f}" for r in p.drift_risk_score]
    return _rows(p, "schema_drift_detector", "table", p.table_full_name, None, action, evidence, 0.0,
                 p.drift_risk_score)


CATEGORIES = [job_cost, cluster_capacity, warehouses, chargeback, tags, queries, dbr_migration, pipeline_health,
              freshness, quality, schema_drift]


def build_recommendations(lake: Lakehouse, day: dt.date | str | None = None, write: bool = True) -> pd.DataFrame:
    """Every category's rows for ``day`` (default: the latest score date); replaces that date's rows."""
    if day is None:
        dates = [read_predictions(lake, n) for n in ("job_failure_predictor", "cost_anomaly_detector")]
        known = [d.score_date.iloc[0] for d in dates if d is not None and not d.empty]
        day = max(known) if known else dt.date.today()
    day = day if isinstance(day, dt.date) else dt.date.fromisoformat(str(day))
    frames = [f for f in (fn(lake, day) for fn in CATEGORIES) if f is not None and len(f)]
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)
    out["score_date"] = day
    out["created_at"] = pd.Timestamp(dt.datetime.now(dt.UTC).replace(tzinfo=None))
    out = out[COLUMNS]
    if write:
        sdf = lake.spark.createDataFrame(out.astype(object).where(out.notna(), None), schema=SCHEMA)
        # Replace the date's rows: advice that no longer applies must disappear, not linger.
        with lake.writer_lock(TABLE, "ml"):
            if lake.exists(TABLE, "ml"):
                lake.spark.sql(f"DELETE FROM {lake.table_name(TABLE, 'ml')} WHERE score_date = DATE'{day}'")
            lake.write(sdf, TABLE, "ml", mode="append")
    return out


def savings_summary(lake: Lakehouse, day: dt.date | None = None, top: int = 10
                    ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Savings per category (sum, items) and the ``top`` largest items, for the latest date."""
    if not lake.exists(TABLE, "ml"):
        return pd.DataFrame(columns=["category", "items", "usd_month"]), pd.DataFrame(columns=COLUMNS)
    df = lake.read(TABLE, "ml")
    day = day or df.agg(F.max("score_date")).first()[0]
    pdf = df.where((F.col("score_date") == F.lit(day)) & (F.col("estimated_savings_usd_month") > 0)).toPandas()
    by_cat = (pdf.groupby("category").agg(items=("entity", "count"), usd_month=("estimated_savings_usd_month", "sum"))
              .reset_index().sort_values("usd_month", ascending=False))
    return by_cat, pdf.nlargest(top, "estimated_savings_usd_month")
