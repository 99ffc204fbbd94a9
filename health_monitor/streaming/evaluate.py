"""Detection quality of the streaming alerts against the simulator's ground truth.

This is the only stream-side code that reads ``simulator.ground_truth_incidents``: it scores
what the engine already wrote to ``monitor.alerts``; nothing here feeds back into detection.

Matching: an alert matches an incident when it names the incident's entity (the user, the job,
or for cost incidents on a job, SKU, cluster or workspace: a cost alert of that workspace, since
the cost stream watches workspaces and workspace x SKU; the same for the performance incidents
that raise spend: warehouse saturation, cluster over-provisioning, DBR regression) and its windows overlap the incident's
time span widened by a tolerance. Precision counts alerts that match any incident (a duration
alert on a job with a DBR regression is a true alert even though the regression is a
performance incident); recall counts incidents of the types the streams are built to catch.

Observed links (optional, see :func:`observed_links`): an alert also matches an incident on an
entity its own entity demonstrably touched, as the estate's own tables record it: a job alert
matches a quality incident on a table the job reads or writes (lineage), a user alert matches a
warehouse incident when the user's queries ran on that warehouse in the alert's window (query
history). The report gives the precision without links too.
Time to detect is measured in event time: end of the first matching alert window minus the
incident start (a live stream emits it one watermark delay later).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import pandas as pd

from health_monitor.domains import SPECS
from health_monitor.errors import HealthMonitorError
from health_monitor.runtime import Lakehouse

#: Incident types each streaming domain is meant to detect (recall is reported for these).
STREAM_INCIDENT_TYPES = {s.name: s.incident_types for s in SPECS if s.streams}
_WORKSPACE_LEVEL = {"job", "sku", "cluster", "workspace", "warehouse"}
#: Incidents of other domains that raise their workspace's spend by construction (a query surge
#: bills more warehouse DBUs, a resized cluster more workers, a regressed runtime longer runs): a
#: cost alert of their workspace during them has found a real cost change.
_SPEND_RAISING = {"warehouse_saturation", "cluster_over_provisioning", "dbr_regression"}


@dataclass
class TypeQuality:
    """Recall and time to detect for one incident type."""

    incident_type: str
    domain: str
    incidents: int
    detected: int
    ttd_hours: list[float] = field(default_factory=list)

    @property
    def recall(self) -> float:
        return self.detected / self.incidents if self.incidents else float("nan")

    @property
    def ttd_median_h(self) -> float:
        return float(pd.Series(self.ttd_hours).median()) if self.ttd_hours else float("nan")


@dataclass
class AlertQuality:
    """Precision of one alert type."""

    alert_type: str
    domain: str
    alerts: int
    true_alerts: int

    @property
    def precision(self) -> float:
        return self.true_alerts / self.alerts if self.alerts else float("nan")


@dataclass
class Evaluation:
    """Per incident type recall/TTD, per alert type precision, and the totals."""

    by_incident: list[TypeQuality]
    by_alert: list[AlertQuality]
    alerts: int
    true_alerts: int
    tolerance_h: float
    matches: pd.DataFrame
    #: true alerts when matching by the alert's own entity only (None: no links were given)
    true_without_links: int | None = None

    @property
    def precision(self) -> float:
        return self.true_alerts / self.alerts if self.alerts else float("nan")

    @property
    def recall(self) -> float:
        n = sum(t.incidents for t in self.by_incident)
        return sum(t.detected for t in self.by_incident) / n if n else float("nan")

    def format(self) -> str:
        """The report ``evaluate alerts`` prints."""
        out = [f"alert precision {self.precision:.1%} ({self.true_alerts}/{self.alerts} alerts match an incident), "
               f"incident recall {self.recall:.1%}; tolerance {self.tolerance_h:g} h"]
        if self.true_without_links is not None:
            p = self.true_without_links / self.alerts if self.alerts else float("nan")
            out.append(f"without observed links (lineage, query history): precision {_pct1(p)} "
                       f"({self.true_without_links}/{self.alerts})")
        out += ["",
               f"{'incident type':<24} {'domain':<12} {'incidents':>9} {'detected':>8} {'recall':>7} "
               f"{'median TTD (h)':>15}"]
        for t in self.by_incident:
            ttd = f"{t.ttd_median_h:.1f}" if t.ttd_hours else "-"
            out.append(f"{t.incident_type:<24} {t.domain:<12} {t.incidents:>9} {t.detected:>8} "
                       f"{_pct(t.recall):>7} {ttd:>15}")
        out += ["", f"{'alert type':<24} {'domain':<12} {'alerts':>9} {'true':>8} {'precision':>9}"]
        for a in self.by_alert:
            out.append(f"{a.alert_type:<24} {a.domain:<12} {a.alerts:>9} {a.true_alerts:>8} {_pct(a.precision):>9}")
        return "\n".join(out)


def _pct(x: float) -> str:
    return "-" if x != x else f"{x:.0%}"


def _pct1(x: float) -> str:
    return "-" if x != x else f"{x:.1%}"


def _entity_match(alerts: pd.DataFrame, inc: pd.Series) -> pd.Series:
    same_entity = alerts["entity_id"].astype(str) == str(inc.entity_id)
    if inc.entity_type == "sku":
        same_entity |= alerts["entity_id"].astype(str) == f"{inc.workspace_id}:{inc.entity_id}"
    if (inc.domain == "cost" or inc.incident_type in _SPEND_RAISING) and inc.entity_type in _WORKSPACE_LEVEL:
        # The cost stream watches workspaces (and their SKUs): a job's or cluster's runaway cost
        # shows up as its workspace's cost.
        same_entity |= (alerts["domain"] == "cost") & (alerts["workspace_id"].astype(str) == str(inc.workspace_id))
    return same_entity


def _link_match(alerts: pd.DataFrame, inc: pd.Series, links: pd.DataFrame | None) -> pd.Series:
    """Alerts whose entity touched the incident's entity during the alert's window (observed links)."""
    if links is None or links.empty:
        return pd.Series(False, index=alerts.index)
    lk = links[links["linked_id"].astype(str) == str(inc.entity_id)]
    a = alerts[["entity_id", "window_start", "window_end"]].astype({"entity_id": str}).reset_index()
    j = a.merge(lk.astype({"entity_id": str}), on="entity_id")
    hit = j.loc[(j["window_end"] > j["start"]) & (j["window_start"] < j["end"]), "index"]
    return pd.Series(alerts.index.isin(set(hit)), index=alerts.index)


#: The streams' window length: an alert's first window ends this long after its start.
FIRST_WINDOW = pd.Timedelta(hours=1)


def _first_window_end(alert: pd.Series) -> pd.Timestamp:
    """When the alert was first raisable: the end of its first window. An alert that goes on
    firing keeps its id and its ``window_end`` moves to the latest window (store.py), so
    ``window_end`` alone would charge a long-lived alert's later windows to its time to detect."""
    return min(alert.window_end, alert.window_start + FIRST_WINDOW)


def match_alerts(alerts: pd.DataFrame, truth: pd.DataFrame, tolerance: timedelta,
                 links: pd.DataFrame | None = None) -> pd.DataFrame:
    """All (alert, incident) pairs that match by entity (or an observed link) and overlapping time."""
    pairs = []
    for _, inc in truth.iterrows():
        lo, hi = inc.start_time - tolerance, inc.end_time + tolerance
        m = ((_entity_match(alerts, inc) | _link_match(alerts, inc, links))
             & (alerts["window_end"] > lo) & (alerts["window_start"] < hi))
        for _, a in alerts[m].iterrows():
            pairs.append({"alert_id": a.alert_id, "alert_type": a.alert_type, "incident_id": inc.incident_id,
                          "incident_type": inc.incident_type,
                          "ttd_h": max((_first_window_end(a) - inc.start_time) / pd.Timedelta(hours=1), 0.0)})
    return pd.DataFrame(pairs, columns=["alert_id", "alert_type", "incident_id", "incident_type", "ttd_h"])


def evaluate_frames(alerts: pd.DataFrame, truth: pd.DataFrame, tolerance_h: float = 6.0,
                    domains: tuple[str, ...] = tuple(STREAM_INCIDENT_TYPES),
                    links: pd.DataFrame | None = None,
                    streamed: tuple[pd.Timestamp, pd.Timestamp] | None = None) -> Evaluation:
    """Evaluate alert rows against ground-truth rows (pure pandas).

    ``links`` (entity_id, linked_id, start, end): the alert entity ``entity_id`` observably touched
    ``linked_id`` between start and end (see :func:`observed_links`); None matches by entity only.
    ``streamed`` (first window start, last window end): the event time the streams scored; only
    incidents overlapping it count. None: the alerts' own span (which leaves out the incidents
    before the first and after the last alert: give the scored span where there is one).
    """
    alerts = alerts[alerts["domain"].isin(domains)].copy()
    for c in ("window_start", "window_end"):
        alerts[c] = pd.to_datetime(alerts[c])
    truth = truth.copy()
    for c in ("start_time", "end_time"):
        truth[c] = pd.to_datetime(truth[c])
    if streamed is not None or not alerts.empty:
        # Only incidents the alerts could have seen: those overlapping the streamed event time.
        lo, hi = streamed if streamed is not None else (alerts["window_start"].min(), alerts["window_end"].max())
        truth = truth[(truth["end_time"] >= pd.Timestamp(lo)) & (truth["start_time"] <= pd.Timestamp(hi))]
    matches = match_alerts(alerts, truth, timedelta(hours=tolerance_h), links)
    true_ids = set(matches["alert_id"])
    without = None
    if links is not None:
        without = int(alerts["alert_id"].isin(set(match_alerts(alerts, truth, timedelta(hours=tolerance_h))["alert_id"])).sum())
    by_alert = []
    for (atype, dom), g in alerts.groupby(["alert_type", "domain"]):
        by_alert.append(AlertQuality(atype, dom, len(g), int(g["alert_id"].isin(true_ids).sum())))
    by_incident = []
    for dom in domains:
        for itype in STREAM_INCIDENT_TYPES.get(dom, ()):
            incs = truth[truth["incident_type"] == itype]
            m = matches[matches["incident_type"] == itype]
            first = m.groupby("incident_id")["ttd_h"].min()
            by_incident.append(TypeQuality(itype, dom, len(incs), int(first.size), first.tolist()))
    return Evaluation(by_incident, sorted(by_alert, key=lambda a: (a.domain, a.alert_type)), len(alerts),
                      int(alerts["alert_id"].isin(true_ids).sum()), tolerance_h, matches, without)


def observed_links(lake: Lakehouse) -> pd.DataFrame:
    """Links between alert entities and incident entities that the estate's own Gold tables record.

    * a job and each table it read or wrote (``fact_table_lineage``, JOB entities), over the span
      of those lineage events: a job failing while a table it reads breaks has found that break;
    * a user and each warehouse their queries ran on, per hour (``fact_query_history``): a user
      whose activity jumps while their warehouse is saturated is part of that surge.

    Returns entity_id, linked_id, start, end (naive UTC). Empty when neither table exists.
    """
    from pyspark.sql import functions as F

    parts = []
    if lake.exists("fact_table_lineage"):
        lin = lake.read("fact_table_lineage").where(F.upper("entity_type") == "JOB")
        tbl = F.explode(F.array_compact(F.array("source_table_full_name", "target_table_full_name")))
        parts.append(lin.select(F.col("entity_id"), tbl.alias("linked_id"), "event_time")
                     .groupBy("entity_id", "linked_id")
                     .agg(F.min("event_time").alias("start"), F.max("event_time").alias("end"))
                     .toPandas())
    if lake.exists("fact_query_history"):
        q = lake.read("fact_query_history").where(F.col("warehouse_id").isNotNull() & F.col("executed_by").isNotNull())
        hour = F.date_trunc("hour", "start_time")
        parts.append(q.select(F.col("executed_by").alias("entity_id"), F.col("warehouse_id").alias("linked_id"),
                              hour.alias("start")).distinct()
                     .withColumn("end", F.col("start") + F.expr("INTERVAL 1 HOUR")).toPandas())
    cols = ["entity_id", "linked_id", "start", "end"]
    if not parts:
        return pd.DataFrame(columns=cols)
    out = pd.concat([p[cols] for p in parts], ignore_index=True).dropna(subset=["entity_id", "linked_id"])
    for c in ("start", "end"):
        out[c] = pd.to_datetime(out[c])
    return out


def evaluate_alerts(lake: Lakehouse, tolerance_h: float = 6.0, links: bool = True) -> Evaluation:
    """Evaluate ``monitor.alerts`` against ``simulator.ground_truth_incidents`` of the same lakehouse
    (with :func:`observed_links` unless ``links`` is False; the report shows both precisions)."""
    if not lake.exists("ground_truth_incidents", "simulator"):
        raise HealthMonitorError("no simulator.ground_truth_incidents: evaluation needs a simulated estate "
                                 "('health-monitor simulate', then 'health-monitor stream start --available-now')")
    if not lake.exists("alerts", "monitor"):
        raise HealthMonitorError("no monitor.alerts yet: run 'health-monitor stream start --available-now' first")
    from pyspark.sql import functions as F

    alerts = lake.read("alerts", "monitor").toPandas()
    truth = lake.read("ground_truth_incidents", "simulator").toPandas()
    streamed = None
    if lake.exists("anomaly_scores", "monitor"):
        # Every window the streams scored: the event time they covered, alerts or not.
        span = (lake.read("anomaly_scores", "monitor")
                .agg(F.min("window_start").alias("lo"), F.max("window_end").alias("hi")).toPandas().iloc[0])
        if pd.notna(span["lo"]):
            streamed = (pd.Timestamp(span["lo"]), pd.Timestamp(span["hi"]))
    return evaluate_frames(alerts, truth, tolerance_h, links=observed_links(lake) if links else None,
                           streamed=streamed)


#: Emission delay a live stream adds to event-time TTD, for the docs.
EMIT_DELAY = {s.name: s.watermark for s in SPECS if s.streams}
