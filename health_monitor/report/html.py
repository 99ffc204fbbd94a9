"""``health-monitor report``: budget fan chart, cost anomalies, savings, risky jobs, pipeline
health, security alerts and which model version serves (and why) in ONE self-contained HTML file.

Each section reads what the batch and streaming layers wrote (``ml`` and ``monitor`` tables,
plus Gold for actuals). A section whose data is missing renders a short note saying which
command produces it, instead of failing the whole report. Plotly's JavaScript is embedded once
(about 4.5 MB) so the file opens offline and can be mailed as is.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from pyspark.sql import functions as F

from health_monitor.runtime import Lakehouse


@dataclass
class Section:
    """One report section: a plotly figure, or a note explaining why there is none."""

    key: str
    title: str
    figure: object | None = None  # plotly.graph_objects.Figure
    note: str = ""


def _read(lake: Lakehouse, table: str, layer: str) -> pd.DataFrame | None:
    if not lake.exists(table, layer):
        return None
    return lake.read(table, layer).toPandas()


def _latest_predictions(lake: Lakehouse, model: str) -> pd.DataFrame | None:
    from health_monitor.batch.scoring import read_predictions

    df = read_predictions(lake, model)
    return None if df is None or df.empty else df


def _layout(fig, title: str, y: str) -> None:  # noqa: ANN001
    fig.update_layout(title=title, yaxis_title=y, template="plotly_white", height=420,
                      margin={"l": 60, "r": 20, "t": 50, "b": 40}, legend={"orientation": "h", "y": -0.15})


# ---------------------------------------------------------------------------- sections
def budget_section(lake: Lakehouse) -> Section:
    """Account-wide monthly fan chart: P10-P90 band, P50, monthly actuals, commit run rate."""
    import plotly.graph_objects as go

    from health_monitor.batch.budget import ACCOUNT, TABLE

    sec = Section("budget", "Budget forecast (account, monthly)")
    pred = _read(lake, TABLE, "ml")
    if pred is None or pred.empty:
        sec.note = "No budget forecasts yet: run 'health-monitor score'."
        return sec
    pred = pred[pred.workspace_id == ACCOUNT]
    pred = pred[pred.forecast_date == pred.forecast_date.max()].sort_values("month_start")
    x = pd.to_datetime(pred.month_start)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=x, y=pred.predicted_monthly_cost_p90, line={"width": 0}, name="P90",
                             showlegend=False))
    fig.add_trace(go.Scatter(x=x, y=pred.predicted_monthly_cost_p10, fill="tonexty", line={"width": 0},
                             fillcolor="rgba(31,119,180,0.25)", name="P10-P90"))
    fig.add_trace(go.Scatter(x=x, y=pred.predicted_monthly_cost, name="P50 forecast",
                             line={"color": "#1f77b4", "dash": "dash"}))
    if lake.exists("fact_usage", "gold"):
        act = (lake.read("fact_usage", "gold").groupBy(F.trunc("usage_date", "month").alias("m"))
               .agg(F.sum(F.col("list_cost").cast("double")).alias("cost")).orderBy("m").toPandas())
        fig.add_trace(go.Bar(x=pd.to_datetime(act.m), y=act.cost, name="actual (to date)",
                             marker_color="rgba(80,80,80,0.6)"))
    commits = _read(lake, "commit_configurations", "gold")
    if commits is not None and not commits.empty:
        acc = commits[commits.workspace_id.isna()]
        if not acc.empty:
            monthly = float(acc.commit_amount.astype(float).iloc[-1]) / 12
            fig.add_hline(y=monthly, line_dash="dot", line_color="crimson",
                          annotation_text=f"commit / 12 = ${monthly:,.0f}")
    _layout(fig, f"Monthly spend, forecast as of {pred.forecast_date.max()}", "USD (list)")
    sec.figure = fig
    var = pred.commit_variance_forecast.dropna()
    if len(var):
        v = float(var.iloc[-1])
        sec.note = (f"Year-end forecast vs commit: {'over' if v > 0 else 'under'} by ${abs(v):,.0f} (P50). ")
    return sec


def anomalies_section(lake: Lakehouse) -> Section:
    """Cost anomaly scores over time: streaming scores if present, else batch predictions."""
    import plotly.graph_objects as go

    sec = Section("anomalies", "Cost anomalies over time")
    scores = None
    if lake.exists("anomaly_scores", "monitor"):
        scores = (lake.read("anomaly_scores", "monitor").where(F.col("domain") == "cost")
                  .groupBy(F.to_date("window_start").alias("day"), "entity_id")
                  .agg(F.max("score").alias("score")).toPandas())
    if scores is not None and not scores.empty:
        fig = go.Figure([go.Scatter(x=pd.to_datetime(g.day), y=g.score, mode="lines+markers", name=str(e))
                         for e, g in scores.sort_values("day").groupby("entity_id")])
        _layout(fig, "Streaming cost anomaly score (daily max per entity)", "score (0-1)")
        sec.figure = fig
        return sec
    pred = _read(lake, "cost_anomaly_detector_predictions", "ml")
    if pred is None or pred.empty:
        sec.note = "No cost anomaly scores: run 'health-monitor stream' or 'health-monitor score'."
        return sec
    if "entity_type" in pred.columns:  # the cost stream's keys: one line per workspace, not per SKU
        pred = pred[pred["entity_type"] == "workspace"]
    pred = pred.sort_values("feature_timestamp")
    fig = go.Figure()
    for ws, g in pred.groupby("workspace_id"):
        fig.add_trace(go.Scatter(x=g.feature_timestamp, y=g.anomaly_score, mode="lines+markers", name=str(ws)))
        flagged = g[g.is_anomaly.astype(bool)]
        if len(flagged):
            fig.add_trace(go.Scatter(x=flagged.feature_timestamp, y=flagged.anomaly_score, mode="markers",
                                     marker={"color": "crimson", "size": 11, "symbol": "x"},
                                     name=f"{ws} anomaly"))
    _layout(fig, "Batch cost anomaly score per workspace (latest hour of each day)", "anomaly score")
    sec.figure = fig
    return sec


def savings_section(lake: Lakehouse) -> Section:
    """The ten largest monthly savings identified by the recommendations."""
    import plotly.graph_objects as go

    sec = Section("savings", "Top savings opportunities")
    recs = _read(lake, "recommendations", "ml")
    if recs is not None and not recs.empty:
        recs = recs[recs.score_date == recs.score_date.max()]
        recs = recs[recs.estimated_savings_usd_month > 0]
    if recs is None or recs.empty:
        sec.note = "No savings identified yet: run 'health-monitor score'."
        return sec
    top = recs.nlargest(10, "estimated_savings_usd_month").iloc[::-1]
    fig = go.Figure(go.Bar(x=top.estimated_savings_usd_month, y=top.category + ": " + top.entity, orientation="h",
                           text=top.action, hovertext=top.evidence, marker_color="seagreen"))
    _layout(fig, f"${recs.estimated_savings_usd_month.sum():,.0f}/month identified in {len(recs)} items",
            "")
    fig.update_layout(xaxis_title="USD / month", height=460)
    sec.figure = fig
    return sec


def risky_jobs_section(lake: Lakehouse) -> Section:
    """Jobs with the highest mean predicted failure probability on the latest score date."""
    import plotly.graph_objects as go

    sec = Section("risky_jobs", "Riskiest jobs")
    pred = _latest_predictions(lake, "job_failure_predictor")
    if pred is None:
        sec.note = "No job failure predictions: run 'health-monitor train' then 'health-monitor score'."
        return sec
    per_job = (pred.groupby(["workspace_id", "job_id"]).failure_probability.mean().nlargest(10).iloc[::-1])
    labels = [f"{w}/{j}" for w, j in per_job.index]
    fig = go.Figure(go.Bar(x=per_job.to_numpy(), y=labels, orientation="h", marker_color="darkorange"))
    _layout(fig, f"Failure probability of the day's runs (mean per job), {pred.score_date.iloc[0]}", "")
    fig.update_layout(xaxis_title="failure probability", xaxis_range=[0, 1])
    sec.figure = fig
    return sec


def pipeline_section(lake: Lakehouse) -> Section:
    """Pipeline health 0-100 per job with its five components."""
    import plotly.graph_objects as go

    sec = Section("pipeline_health", "Pipeline health")
    pred = _latest_predictions(lake, "pipeline_health_scorer")
    if pred is None:
        sec.note = "No pipeline health scores: run 'health-monitor train' then 'health-monitor score'."
        return sec
    pred = pred.sort_values("health_score").head(15)
    labels = pred.workspace_id.astype(str) + "/" + pred.job_id.astype(str)
    comps = ["success_rate_score", "duration_stability_score", "sla_compliance_score", "error_diversity_score",
             "recovery_speed_score"]
    fig = go.Figure(go.Bar(x=labels, y=pred.health_score, name="health score", marker_color="steelblue"))
    for c in comps:
        fig.add_trace(go.Scatter(x=labels, y=pred[c], mode="markers", name=c.replace("_score", "")))
    _layout(fig, "Least healthy pipelines (0-100) and their components", "score")
    sec.figure = fig
    return sec


def security_section(lake: Lakehouse) -> Section:
    """Security alerts per day and severity (streaming), else batch threat predictions."""
    import plotly.graph_objects as go

    sec = Section("security", "Security alerts")
    if lake.exists("alerts", "monitor"):
        alerts = (lake.read("alerts", "monitor").where(F.col("domain") == "security")
                  .groupBy(F.to_date("window_start").alias("day"), "severity").count().toPandas())
        if not alerts.empty:
            fig = go.Figure([go.Bar(x=pd.to_datetime(g.day), y=g["count"], name=s)
                             for s, g in alerts.groupby("severity")])
            fig.update_layout(barmode="stack")
            _layout(fig, "Security alerts per day (streaming)", "alerts")
            sec.figure = fig
            return sec
    pred = _read(lake, "security_threat_detector_predictions", "ml")
    if pred is None or pred.empty:
        sec.note = "No security alerts or threat scores: run 'health-monitor stream' or 'health-monitor score'."
        return sec
    top = pred.sort_values("threat_score", ascending=False).head(15).iloc[::-1]
    fig = go.Figure(go.Bar(x=top.threat_score, y=top.user_id + " (" + top.score_date.astype(str) + ")",
                           orientation="h", marker_color=["crimson" if t else "gray" for t in top.is_threat]))
    _layout(fig, "Highest batch threat scores (red: flagged)", "")
    sec.figure = fig
    return sec


def models_section(lake: Lakehouse) -> Section:
    """Every catalog model: which version serves (the model or its naive baseline) and why."""
    import plotly.graph_objects as go

    from health_monitor.batch.registry import describe
    from health_monitor.catalog import MODELS

    sec = Section("models", "Models: which version serves, and why")
    uri = lake.settings.tracking_uri
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        sec.note = "No models registered: run 'health-monitor train --all'."
        return sec
    infos = [(spec, describe(lake.settings, spec)) for spec in MODELS]
    infos = [(spec, i) for spec, i in infos if i.champion_version]
    if not infos:
        sec.note = "No models registered: run 'health-monitor train --all'."
        return sec
    fmt = lambda x: "-" if x is None else f"{x:.3f}"  # noqa: E731
    cols = {
        "model": [s.name for s, _ in infos],
        "serving": [f"{i.serving_role} v{i.champion_version}" for _, i in infos],
        "metric": [s.key_metric for s, _ in infos],
        "test": [fmt(i.metric) for _, i in infos],
        "baseline": [fmt(i.baseline) for _, i in infos],
        "why": [i.serving_reason or "-" for _, i in infos],
    }
    fig = go.Figure(go.Table(columnwidth=[3, 1.4, 1.6, 0.8, 0.8, 7],
                             header={"values": list(cols), "align": "left"},
                             cells={"values": list(cols.values()), "align": "left",
                                    "fill_color": [["#fde2e2" if i.serving_role == "baseline" else "white"
                                                    for _, i in infos]]}))
    fig.update_layout(height=120 + 34 * len(infos), margin={"l": 10, "r": 10, "t": 30, "b": 10},
                      title="Champion per model (red: the naive baseline serves because the model lost to it)")
    sec.figure = fig
    return sec


SECTIONS: list[Callable[[Lakehouse], Section]] = [
    budget_section, anomalies_section, savings_section, risky_jobs_section, pipeline_section, security_section,
    models_section]


def build_sections(lake: Lakehouse) -> list[Section]:
    """Every section; a section whose reader fails on odd data becomes a note, not a crash."""
    out = []
    for fn in SECTIONS:
        try:
            out.append(fn(lake))
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            # Why: one malformed table must not cost the reader the other sections.
            name = fn.__name__.removesuffix("_section")
            out.append(Section(name, name.replace("_", " ").title(), note=f"Could not draw this section: {exc}"))
    return out


_CSS = """body{font-family:system-ui,sans-serif;margin:24px auto;max-width:1100px;color:#222}
h1{margin-bottom:0}.meta{color:#666}section{margin:28px 0;border-top:1px solid #ddd;padding-top:8px}
.note{background:#f6f6f6;border-left:4px solid #bbb;padding:8px 12px;color:#444}"""


def render_html(sections: list[Section], title: str = "Databricks Health Monitor") -> str:
    """The report as one HTML string, plotly.js inlined once."""
    parts, js_included = [], False
    for s in sections:
        body = ""
        if s.figure is not None:
            body = s.figure.to_html(full_html=False, include_plotlyjs=not js_included,
                                    div_id=f"plot-{s.key}", config={"displaylogo": False})
            js_included = True
        note = f'<p class="note">{html.escape(s.note)}</p>' if s.note else ""
        parts.append(f'<section id="{s.key}"><h2>{html.escape(s.title)}</h2>{note}{body}</section>')
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>"
            f"<p class='meta'>Generated {now}</p>{''.join(parts)}</body></html>")


def write_report(lake: Lakehouse, output: str | Path) -> tuple[Path, list[Section]]:
    """Build every section and write the self-contained HTML file; returns its path and sections."""
    from health_monitor.errors import HealthMonitorError

    path = Path(output)
    if path.parent and not path.parent.exists():
        raise HealthMonitorError(f"folder {path.parent} does not exist")
    sections = build_sections(lake)
    path.write_text(render_html(sections), encoding="utf-8")
    return path, sections
