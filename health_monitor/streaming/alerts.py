"""From scored windows and rule hits to alerts: build, de-duplicate, write once, and track status.

Three steps, each a plain function:

* :func:`make_alerts` (pure pandas) turns a micro-batch's scored windows and rule hits into
  candidate alerts in the ``monitor.alerts`` contract: severity from score *and* business impact,
  deviation, a one-sentence summary a person can act on, evidence.
* :func:`apply_alerts` folds the candidates into ``monitor.alerts``: a continuing incident (same
  entity and alert type, windows within :func:`suppression_gap`) updates one row instead of
  opening a new one. The MERGE carries Delta's idempotent-write identifiers (txnAppId = the
  query's app id, txnVersion = the micro-batch id), so replaying a batch after a crash is skipped
  by Delta itself and the table ends exactly as after one application.
* The lifecycle (OPEN -> ACKED -> RESOLVED) lives in ``monitor.alert_actions``, written only by
  people through the CLI, so the stream and a person never write the same table;
  :func:`alert_status` joins the two.
"""

from __future__ import annotations

import getpass
import hashlib
import math
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from health_monitor.errors import HealthMonitorError
from health_monitor.rules.engine import SEVERITIES
from health_monitor.streaming.tables import ALERT_ACTIONS, ALERTS

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from health_monitor.runtime import Lakehouse

LAYER = "monitor"
#: Windows of one entity and alert type closer than this belong to the same incident.
SUPPRESSION_GAP = pd.Timedelta(hours=6)
#: Longer gaps per entity type. A job's windows exist only where it ran: a daily job that fails
#: or overruns again the next day is the same continuing incident, not a new one.
SUPPRESSION_GAP_BY_ENTITY = {"job": pd.Timedelta(hours=30)}
#: Longer gaps per alert type. A budget overrun or a workspace's untagged spend is a state, not an
#: event: a rate hovering around its threshold, or an untagged cluster that is material only in
#: the busy hours of each day, must not open a new alert each time it crosses the line (one
#: simulated untagged cluster opened nine alerts in ten days with the 6-hour gap).
SUPPRESSION_GAP_BY_TYPE = {"budget_burn": pd.Timedelta(days=7), "untagged_spend": pd.Timedelta(days=7)}


def suppression_gap(entity_type: str | None, alert_type: str | None = None) -> pd.Timedelta:
    """How far apart two windows of one entity and alert type may be and still be one incident."""
    return SUPPRESSION_GAP_BY_TYPE.get(str(alert_type),
                                       SUPPRESSION_GAP_BY_ENTITY.get(str(entity_type), SUPPRESSION_GAP))


MAX_SUPPRESSION_GAP = max([SUPPRESSION_GAP, *SUPPRESSION_GAP_BY_ENTITY.values(), *SUPPRESSION_GAP_BY_TYPE.values()])
#: A detector score at or above this raises an alert on its own (without a rule hit).
DETECTOR_MIN_SCORE = 0.8
#: A detector alerts on its own only when this many of the key's last windows (the engine's
#: ``recent_high_windows`` feature, over :data:`~health_monitor.streaming.engine.RECENT_WINDOWS`)
#: scored at or above ``min_score``: one odd hour of a bursty user or job is noise, a deviation that
#: lasts is not. Frames without that column (older callers, tests) keep single-window alerts.
DETECTOR_MIN_WINDOWS = 2
#: Domains whose detector score is evidence on rule alerts and a row in ``anomaly_scores``, but
#: never an alert by itself. A job's detector sees the same four signals (duration ratio,
#: failures, streak, retries) that the reliability rules judge against the job's own history
#: (robust duration z, its usual failure streaks, whether a retry is still to come); on 16
#: simulated estates its lone alerts were the first failures of streaks the rules confirmed a run
#: later, or flaky spells that recovered (3 of 6 true).
RULES_ONLY_DOMAINS = frozenset({"reliability"})
#: Alert type of a detector-only alert, per domain.
DETECTOR_ALERT_TYPE = {
    "cost": "cost_anomaly",
    "security": "user_behavior_anomaly",
    "reliability": "job_anomaly",
    "performance": "performance_anomaly",
    "quality": "data_quality_anomaly",
}
#: Cost at risk (USD) that raises an alert's severity by one and by two levels.
IMPACT_BUMP_USD = (1_000.0, 10_000.0)
#: Below this cost at risk a cost alert is at most MEDIUM: a 5x spike of $3 pages nobody.
IMPACT_FLOOR_USD = 25.0
#: Data sensitivity (0-1) from which a security alert is raised by one level.
SENSITIVITY_BUMP = 0.8
SENSITIVITY_LABELS = {"PUBLIC": 0.0, "LOW": 0.2, "INTERNAL": 0.3, "MEDIUM": 0.5, "CONFIDENTIAL": 0.7,
                      "HIGH": 0.8, "SENSITIVE": 0.8, "PII": 1.0, "RESTRICTED": 1.0, "CRITICAL": 1.0}
MAX_EVIDENCE = 12
STATUSES = ("OPEN", "ACKED", "RESOLVED")

# One process may run several streaming queries whose foreachBatch threads all write alerts:
# Delta would reject concurrent MERGEs on one table, so they take turns.
_APPLY_LOCK = threading.Lock()


# ---------------------------------------------------------------------------------------------
# Building candidate alerts


def alert_id_for(entity_type: str, entity_id: str, alert_type: str, window_start: Any) -> str:
    """Deterministic alert id from the entity, the alert type and the incident's first window."""
    ts = pd.Timestamp(window_start)
    ts = ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo else ts
    key = f"{entity_type}|{entity_id}|{alert_type}|{ts.isoformat()}"
    return hashlib.sha256(key.encode()).hexdigest()[:24]


def severity_level(severity: str) -> int:
    return SEVERITIES.index(severity)


def score_severity(score: float) -> str:
    """Severity from a 0-1 score alone (the same scale rules map their severities onto)."""
    if score >= 0.95:
        return "CRITICAL"
    if score >= 0.8:
        return "HIGH"
    if score >= 0.6:
        return "MEDIUM"
    return "LOW"


def sensitivity_value(raw: Any) -> float | None:
    """0-1 sensitivity from a number or a label such as ``PII`` / ``CONFIDENTIAL``."""
    if raw is None or (isinstance(raw, float) and math.isnan(raw)):
        return None
    if isinstance(raw, str):
        return SENSITIVITY_LABELS.get(raw.strip().upper())
    try:
        return float(raw)
    except (TypeError, ValueError):
        return None


def impact_severity(score: float, domain: str, impact_usd: float | None = None,
                    sensitivity: float | None = None, floor: str | None = None) -> str:
    """Severity from the score and the business impact.

    Money at risk raises a cost alert (one level from $1k, two from $10k) and caps a trivial one
    at MEDIUM; touching highly sensitive data raises a security alert by one level. A rule's own
    severity is a floor: the author's judgement is never lowered.
    """
    level = severity_level(score_severity(score))
    if impact_usd is not None and not math.isnan(impact_usd):
        level += sum(impact_usd >= b for b in IMPACT_BUMP_USD)
        if domain == "cost" and impact_usd < IMPACT_FLOOR_USD:
            level = min(level, severity_level("MEDIUM"))
    if sensitivity is not None and sensitivity >= SENSITIVITY_BUMP:
        level += 1
    if floor:
        level = max(level, severity_level(floor))
    return SEVERITIES[min(level, len(SEVERITIES) - 1)]


def _num(v: Any) -> float | None:
    if v is None or v is pd.NaT:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) or math.isinf(f) else f


def _money(v: float) -> str:
    return f"${v:,.0f}" if abs(v) >= 10 else f"${v:,.2f}"


def _window_text(start: pd.Timestamp, end: pd.Timestamp) -> str:
    minutes = int(round((end - start).total_seconds() / 60))
    span = {60: "hour", 1440: "day"}.get(minutes, f"{minutes} min" if minutes < 120 else f"{minutes // 60} h")
    return f"{span} to {end:%H:%M} UTC on {end:%b} {end.day}"


def _entity_label(domain: str, row: dict[str, Any]) -> str:
    et, eid, ws = row.get("entity_type"), row.get("entity_id"), row.get("workspace_id")
    if et == "workspace":
        return f"Workspace {eid}"
    if et == "workspace_sku":
        sku = row.get("sku_name") or str(eid).split(":")[-1]
        return f"{sku} in workspace {ws}"
    if et == "user":
        return f"User {row.get('user') or eid}"
    if et == "job":
        name = row.get("job_name")
        return f"Job {name} ({eid})" if name and name != eid else f"Job {eid}"
    return f"{str(et or domain).replace('_', ' ').capitalize()} {eid}"


def _action(domain: str, alert_type: str, row: dict[str, Any]) -> str:
    """What a person should look at first."""
    if domain == "cost":
        if alert_type == "budget_burn":
            return "review the month's largest jobs and warehouses against the budget"
        if alert_type == "untagged_spend":
            return "tag the workspace's clusters, jobs and warehouses with team, project or cost_center"
        job, sku = row.get("top_job"), row.get("top_sku") or row.get("sku_name")
        if job:
            return f"check job {job}" + (f" (top SKU {sku})" if sku else "")
        if sku:
            return f"check what drove {sku} usage"
        return "check the workspace's largest jobs and warehouses in that hour"
    if domain == "security":
        return {
            "privilege_escalation": "revoke the grant unless it was approved",
            "data_exfiltration": "confirm the export with the user and review what left the workspace",
            "credential_attack": "check the source IPs and lock the account if the attempts are not the user's",
            "suspicious_login": "confirm the sessions with the user and rotate their credentials if unknown",
            "sensitive_data_access": "confirm the user needs this data and review the table's grants",
            "off_hours_admin": "confirm the changes with the user and review the audit log",
        }.get(alert_type, "review the user's recent activity and revoke access if it is unexpected")
    if domain == "reliability":
        return {
            "job_failure_streak": "check the latest run's error and recent changes to the job",
            "sla_breach": "check the run's cluster, input volume and upstream delays",
            "job_duration_anomaly": "check the run's input volume, cluster size and recent code changes",
        }.get(alert_type, "check the job's latest runs and recent changes")
    return "investigate the recent change"


def summarize(domain: str, alert_type: str, row: dict[str, Any], message: str | None = None) -> str:
    """One sentence a person can act on: who, what, how far from normal, what to check."""
    start, end = pd.Timestamp(row["window_start"]), pd.Timestamp(row["window_end"])
    when = _window_text(start, end)
    action = _action(domain, alert_type, row)
    if message:
        return f"{message.rstrip('.')} ({when}); {action}."
    who = _entity_label(domain, row)
    value, expected = _num(row.get("value")), _num(row.get("expected"))
    score = _num(row.get("score")) or 0.0
    if domain == "cost" and value is not None:
        text = f"{who} spent {_money(value)} in the {when}"
        if expected and expected > 0:
            ratio = value / expected
            text += (f", {ratio:.1f}x its usual {_money(expected)}" if ratio >= 1
                     else f", {100 * (1 - ratio):.0f}% below its usual {_money(expected)}")
        return f"{text}; {action}."
    detail = ""
    if value is not None and expected is not None:
        detail = f" ({value:,.3g} against an expected {expected:,.3g})"
    what = {"security": "activity", "reliability": "runs"}.get(domain, "behaviour")
    return f"{who}'s {what} in the {when} is unusual, score {score:.2f}{detail}; {action}."


def _evidence_list(*parts: Any) -> list[str]:
    out: list[str] = []
    for part in parts:
        if part is None or (isinstance(part, float) and math.isnan(part)):
            continue
        items = [part] if isinstance(part, str) else list(part)
        for item in items:
            s = str(item)
            if s and s not in out:
                out.append(s)
    return out[:MAX_EVIDENCE]


#: A cost detector speaks alone only on a key with this much history (its weekly pattern)...
COST_DETECTOR_MIN_HISTORY_DAYS = 7.0
#: ...and on spend at least this many times what it expected.
COST_DETECTOR_MIN_RATIO = 2.0


def _detector_may_alert_alone(domain: str, row: dict[str, Any]) -> bool:
    """Whether a high-scoring window of ``domain`` may raise an alert with no rule hit.

    Never in :data:`RULES_ONLY_DOMAINS`. For cost, not on a window no person should be paged for
    (rules still alert): spend below double its expected level (no money at risk in a drop, such
    as a SKU going quiet after a cluster stops; little in a rise of a few tens of percent, which a
    young or flat series scores as extreme), or a key younger than a week, whose expected level
    is still a guess. On the simulated estates these were the detector's lone false cost alerts:
    a SQL warehouse's flat $2.20 hours scored 1.0 against an expected $1.40 in its first week."""
    if domain in RULES_ONLY_DOMAINS:
        return False
    if domain != "cost":
        return True
    value, expected = _num(row.get("value")), _num(row.get("expected"))
    if value is not None and expected is not None and value < COST_DETECTOR_MIN_RATIO * max(expected, 0.0):
        return False
    age = _num(row.get("history_days"))
    return age is None or age >= COST_DETECTOR_MIN_HISTORY_DAYS


def make_alerts(scored: pd.DataFrame, hits: pd.DataFrame, domain: str,
                min_score: float = DETECTOR_MIN_SCORE, now: datetime | None = None) -> pd.DataFrame:
    """Candidate alerts of one micro-batch, in the ``monitor.alerts`` contract.

    Args:
        scored: one row per scored window: entity_type, entity_id, workspace_id, window_start,
            window_end, value, expected, score (0-1), model_name, model_version, evidence (list
            of strings) and optionally cost_usd_at_risk, sensitivity and any feature columns used
            in summaries (top_job, top_sku, sku_name, user, job_name).
        hits: :meth:`RuleSet.evaluate` output on the same frame (``row`` = position in scored).
        domain: the domain of the frame.
        min_score: detector score from which a window alerts without a rule hit.
        now: processing time stamped on the candidates (default: now, UTC).

    Returns:
        One candidate per (window, alert type): rule hits of a window are grouped by alert type
        (a detector score over ``min_score`` on that window joins them as evidence), and a window
        with a high detector score and no rule hit gets a ``<domain>`` anomaly alert.
    """
    cols = ALERTS.column_names
    if scored is None or scored.empty:
        return pd.DataFrame(columns=cols)
    now_ts = _naive(now or datetime.now(UTC))
    frame = scored.reset_index(drop=True)
    records = frame.to_dict("records")
    by_row: dict[int, dict[str, list[dict[str, Any]]]] = {}
    if hits is not None and not hits.empty:
        for h in hits.to_dict("records"):
            by_row.setdefault(int(h["row"]), {}).setdefault(h["alert_type"], []).append(h)
    out: list[dict[str, Any]] = []
    for pos, row in enumerate(records):
        det_score = _num(row.get("score")) or 0.0
        det_evidence = row.get("evidence")
        if isinstance(det_evidence, np.ndarray):
            det_evidence = det_evidence.tolist()
        groups = by_row.get(pos, {})
        candidates: list[tuple[str, float, str | None, str | None, list[str]]] = []
        for alert_type, type_hits in groups.items():
            type_hits.sort(key=lambda h: (-h["score"], h["rule_id"]))
            top = type_hits[0]
            floor = max((h["severity"] for h in type_hits), key=severity_level)
            evidence = _evidence_list(*[h["evidence"] for h in type_hits],
                                      det_evidence if det_score >= min_score else None)
            candidates.append((alert_type, max(top["score"], det_score), floor, top["message"], evidence))
        sustained = _num(row.get("recent_high_windows"))
        if not groups and det_score >= min_score and (sustained is None or sustained >= DETECTOR_MIN_WINDOWS) \
                and _detector_may_alert_alone(domain, row):
            alert_type = DETECTOR_ALERT_TYPE.get(domain, f"{domain}_anomaly")
            evidence = _evidence_list([f"model:{row.get('model_name')}"], det_evidence)
            candidates.append((alert_type, det_score, None, None, evidence))
        for alert_type, score, floor, message, evidence in candidates:
            value, expected = _num(row.get("value")), _num(row.get("expected"))
            impact = _num(row.get("cost_usd_at_risk"))
            if impact is None and domain == "cost" and value is not None and expected is not None:
                impact = max(value - expected, 0.0)
            sens = sensitivity_value(row.get("sensitivity"))
            deviation = (100.0 * (value - expected) / abs(expected)
                         if value is not None and expected not in (None, 0.0) else None)
            detector_used = det_score >= min_score
            model_name = str(row.get("model_name") or "detector") if detector_used else "rules"
            if floor and detector_used:
                model_name += "+rules"
            out.append({
                "alert_id": alert_id_for(row["entity_type"], row["entity_id"], alert_type, row["window_start"]),
                "detected_at": now_ts,
                "window_start": pd.Timestamp(row["window_start"]),
                "window_end": pd.Timestamp(row["window_end"]),
                "domain": domain,
                "model_name": model_name,
                "model_version": str(row.get("model_version") or "1") if detector_used else "1",
                "alert_type": alert_type,
                "entity_type": str(row["entity_type"]),
                "entity_id": str(row["entity_id"]),
                "workspace_id": None if pd.isna(row.get("workspace_id")) else str(row["workspace_id"]),
                "score": float(min(max(score, 0.0), 1.0)),
                "severity": impact_severity(score, domain, impact, sens, floor),
                "deviation_pct": deviation,
                "impact_usd": impact,
                "summary": summarize(domain, alert_type, row, message),
                "evidence": evidence,
                "occurrences": 1,
                "last_seen_at": pd.Timestamp(row["window_end"]),
                "updated_at": now_ts,
            })
    return pd.DataFrame(out, columns=cols)


# ---------------------------------------------------------------------------------------------
# Folding candidates into the alerts table


def _naive(ts: Any) -> pd.Timestamp:
    t = pd.Timestamp(ts)
    return t.tz_convert("UTC").tz_localize(None) if t.tzinfo else t


def fold_alerts(existing: pd.DataFrame, candidates: pd.DataFrame,
                gap: pd.Timedelta | None = None) -> pd.DataFrame:
    """The rows to upsert: candidates folded into open incidents (pure, deterministic).

    ``existing`` holds the table's current rows for the candidates' entities. Candidates are
    applied in window order; one within ``gap`` (default: :func:`suppression_gap` of the
    candidate's entity type) of an incident's windows extends it (window_end,
    last_seen_at, max score and severity, occurrences for each later window, evidence union),
    otherwise it opens a new incident whose alert_id comes from its own first window.
    """
    if candidates.empty:
        return candidates.iloc[0:0]
    keys = ["entity_type", "entity_id", "alert_type"]
    incidents: dict[tuple, list[dict[str, Any]]] = {}
    for rec in existing.to_dict("records") if not existing.empty else []:
        incidents.setdefault(tuple(rec[k] for k in keys), []).append(rec)
    touched: dict[str, dict[str, Any]] = {}
    # Window order per entity, rule-typed candidates before detector-only ones of the same window,
    # so the detector's window can join the rule's incident.
    generic = set(DETECTOR_ALERT_TYPE.values())
    cands = candidates.assign(_ws=candidates["window_start"].map(_naive),
                              _generic=candidates["alert_type"].isin(generic)).sort_values(
        ["entity_type", "entity_id", "_ws", "_generic", "alert_type", "window_end", "alert_id"], kind="stable")
    for cand in cands.drop(columns=["_ws", "_generic"]).to_dict("records"):
        key = tuple(cand[k] for k in keys)
        start, end = _naive(cand["window_start"]), _naive(cand["window_end"])
        cand_gap = gap if gap is not None else suppression_gap(cand["entity_type"], cand["alert_type"])
        match = _find_incident(incidents.get(key, []), start, end, cand_gap)
        if match is None and cand["alert_type"] == DETECTOR_ALERT_TYPE.get(cand["domain"]):
            # A detector-only window inside a rule-typed incident of the same entity (the spike's
            # tail, below the rule's threshold but still anomalous) continues that incident.
            related = [inc for k, incs in incidents.items() if k[:2] == key[:2]
                       for inc in incs if inc["domain"] == cand["domain"]]
            match = _find_incident(related, start, end, cand_gap)
        if match is None:
            new = dict(cand)
            new["evidence"] = list(cand["evidence"] or [])
            incidents.setdefault(key, []).append(new)
            touched[new["alert_id"]] = new
            continue
        inc = match
        if end > _naive(inc["window_end"]):
            inc["occurrences"] = int(inc.get("occurrences") or 1) + 1
            inc["window_end"] = end
        inc["window_start"] = min(_naive(inc["window_start"]), start)
        inc["last_seen_at"] = max(_naive(inc.get("last_seen_at") or inc["window_end"]), end)
        if float(cand["score"]) > float(inc["score"]):
            for k in ("score", "summary", "deviation_pct", "model_name", "model_version"):
                inc[k] = cand[k]
        if severity_level(cand["severity"]) > severity_level(inc["severity"]):
            inc["severity"] = cand["severity"]
        impacts = [v for v in (_num(inc.get("impact_usd")), _num(cand.get("impact_usd"))) if v is not None]
        inc["impact_usd"] = max(impacts) if impacts else None
        old_ev = inc.get("evidence")
        old_ev = old_ev.tolist() if isinstance(old_ev, np.ndarray) else list(old_ev or [])
        inc["evidence"] = _evidence_list(old_ev, cand["evidence"])
        inc["updated_at"] = cand["updated_at"]
        touched[inc["alert_id"]] = inc
    rows = pd.DataFrame(list(touched.values()))
    return rows[ALERTS.column_names].sort_values("alert_id", ignore_index=True)


def _find_incident(incidents: list[dict[str, Any]], start: pd.Timestamp, end: pd.Timestamp,
                   gap: pd.Timedelta) -> dict[str, Any] | None:
    """The latest incident whose windows lie within ``gap`` of [start, end], if any."""
    for inc in sorted(incidents, key=lambda r: (_naive(r["window_end"]), r["alert_id"]), reverse=True):
        if start <= _naive(inc["window_end"]) + gap and end >= _naive(inc["window_start"]) - gap:
            return inc
    return None


def apply_alerts(lake: Lakehouse, alerts_pdf: pd.DataFrame, batch_id: int, app_id: str) -> int:
    """Fold one micro-batch's candidate alerts into ``monitor.alerts``, exactly once.

    The MERGE on alert_id runs with Delta's ``spark.databricks.delta.write.txnAppId`` /
    ``txnVersion`` session confs (``app_id`` / ``batch_id``) in a child session, so a batch that
    already committed is skipped by Delta when the stream replays it after a crash, and
    concurrently running queries in this process do not see each other's confs.

    Returns:
        The number of alert rows inserted or updated (0 when the batch was already applied).
    """
    if alerts_pdf is None or alerts_pdf.empty:
        return 0
    with _APPLY_LOCK, lake.writer_lock(ALERTS.name, LAYER):
        lake.ensure_table(ALERTS.name, ALERTS.schema, LAYER)
        before = _table_version(lake)
        existing = _existing_for(lake, alerts_pdf, before)
        rows = fold_alerts(existing, alerts_pdf)
        if rows.empty:
            return 0
        session = _merge_session(lake)
        view = f"alerts_batch_{uuid.uuid4().hex}"
        session.conf.set(TXN_APP_ID, app_id)
        session.conf.set(TXN_VERSION, str(int(batch_id)))
        try:
            session.createDataFrame(_to_spark_rows(rows), ALERTS.schema).createOrReplaceTempView(view)
            session.sql(
                f"MERGE INTO {lake.table_name(ALERTS.name, LAYER)} t USING {view} s "
                "ON t.alert_id = s.alert_id "
                "WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *"
            )
        finally:
            # Never leave the identifiers set: any later write in this session would be skipped.
            session.conf.unset(TXN_APP_ID)
            session.conf.unset(TXN_VERSION)
            session.catalog.dropTempView(view)
        after = _table_version(lake)
        _cache_commit(lake, before, after, rows)
        # Delta skips a MERGE whose (txnAppId, txnVersion) it has already committed.
        return len(rows) if after > before else 0


# The stream process is the only writer of monitor.alerts, so it can keep the recent incidents in
# memory between micro-batches instead of re-reading them: valid while the table's version is the
# one the cache was built at (anything else, e.g. a reset, shows up as a different version or a
# recreated log and the next batch reads the table again). Local only: on Databricks the version
# lookup would cost as much as the read.
@dataclass
class _IncidentCache:
    identity: tuple
    version: int
    horizon: pd.Timestamp  # holds every row whose window_end >= horizon
    rows: pd.DataFrame


_CACHE: dict[str, _IncidentCache] = {}
#: How much older than the batch's earliest window the cache reaches back (late data).
CACHE_REACH = pd.Timedelta(days=2)


def _table_identity(lake: Lakehouse) -> tuple | None:
    """Identifies one incarnation of the local table (a deleted and recreated table differs)."""
    if lake.settings.is_databricks:
        return None
    first = lake.location(ALERTS.name, LAYER) / "_delta_log" / f"{0:020d}.json"
    try:
        st = first.stat()
    except OSError:
        return None
    return (str(first), st.st_ino, st.st_mtime_ns)


def _cache_commit(lake: Lakehouse, before: int, after: int, rows: pd.DataFrame) -> None:
    """Fold the rows just merged into the cache (or drop it when the versions do not line up)."""
    identity = _table_identity(lake)
    cache = _CACHE.get(str(identity[0])) if identity else None
    if cache is None:
        return
    if after == before:
        return  # skipped replay: the table did not change
    if after != before + 1 or cache.version != before or cache.identity != identity:
        _CACHE.pop(str(identity[0]), None)
        return
    keep = cache.rows[~cache.rows["alert_id"].isin(set(rows["alert_id"]))]
    cache.rows = pd.concat([keep, rows[rows["window_end"].map(_naive) >= cache.horizon]], ignore_index=True)
    cache.version = after


TXN_APP_ID = "spark.databricks.delta.write.txnAppId"
TXN_VERSION = "spark.databricks.delta.write.txnVersion"
_SESSIONS: dict[int, tuple[Any, Any]] = {}


def _merge_session(lake: Lakehouse) -> Any:
    """A child session of the lake's SparkSession for the alerts MERGE (one per session, reused).

    Its SQL conf is its own, so the idempotency identifiers set for the MERGE cannot leak into
    writes other threads make meanwhile; calls are serialised by ``_APPLY_LOCK``. Where child
    sessions are not supported (Spark Connect) the main session is used, its confs unset right
    after the MERGE.
    """
    parent = lake.spark
    held = _SESSIONS.get(id(parent))
    if held is None or held[0] is not parent:
        try:
            child = parent.newSession()
        except Exception:  # noqa: BLE001 - e.g. Spark Connect has no newSession
            child = parent
        # Keeping the parent referenced keeps its id from being reused by another session.
        held = _SESSIONS[id(parent)] = (parent, child)
    return held[1]


def _table_version(lake: Lakehouse) -> int:
    """Current version of the alerts table (a skipped idempotent MERGE does not advance it)."""
    if not lake.settings.is_databricks:
        # Locally the newest commit file names the version: a listing instead of a Spark job.
        log = lake.location(ALERTS.name, LAYER) / "_delta_log"
        return max((int(p.stem) for p in log.glob("*.json") if p.stem.isdigit()), default=-1)
    row = lake.spark.sql(f"DESCRIBE HISTORY {lake.table_name(ALERTS.name, LAYER)} LIMIT 1").first()
    return int(row["version"]) if row else -1


def _existing_for(lake: Lakehouse, candidates: pd.DataFrame, version: int) -> pd.DataFrame:
    """Current rows that candidates may continue: same entities, windows within the gap."""
    from pyspark.sql import functions as F

    earliest = min(_naive(t) for t in candidates["window_start"]) - MAX_SUPPRESSION_GAP
    ids = set(candidates["entity_id"].astype(str))
    identity = _table_identity(lake)
    cache = _CACHE.get(str(identity[0])) if identity else None
    if not (cache and cache.identity == identity and cache.version == version and earliest >= cache.horizon):
        horizon = earliest - CACHE_REACH
        df = lake.read(ALERTS.name, LAYER).where(
            F.col("window_end") >= F.lit(horizon.to_pydatetime().replace(tzinfo=UTC)))
        rows = df.toPandas()
        if identity is None:
            return rows[rows["entity_id"].isin(ids) & (rows["window_end"] >= earliest)]
        cache = _CACHE[str(identity[0])] = _IncidentCache(identity, version, horizon, rows)
    elif earliest - CACHE_REACH > cache.horizon + pd.Timedelta(days=1):
        # Slide the horizon forward so a long-running stream does not keep every old alert.
        cache.horizon = earliest - CACHE_REACH
        cache.rows = cache.rows[cache.rows["window_end"].map(_naive) >= cache.horizon].reset_index(drop=True)
    rows = cache.rows
    return rows[rows["entity_id"].isin(ids) & (rows["window_end"].map(_naive) >= earliest)]


def _to_spark_rows(rows: pd.DataFrame) -> list[tuple]:
    """Plain Python values in contract order (no NaN in nullable columns, lists for arrays)."""
    out = []
    for rec in rows.to_dict("records"):
        vals = []
        for col in ALERTS.columns:
            v = rec.get(col.name)
            if isinstance(v, np.ndarray):
                v = v.tolist()
            if v is pd.NaT or (isinstance(v, float) and math.isnan(v)):
                v = None
            elif isinstance(v, pd.Timestamp | datetime):
                # Aware UTC datetimes: PySpark would read naive ones in the machine's local zone.
                v = _naive(v).to_pydatetime().replace(tzinfo=UTC)
            elif isinstance(v, np.generic):
                v = v.item()
            if col.name == "occurrences" and v is not None:
                v = int(v)
            vals.append(v)
        out.append(tuple(vals))
    return out


# ---------------------------------------------------------------------------------------------
# Lifecycle: OPEN -> ACKED -> RESOLVED, in a table only people (the CLI) write


def _empty(lake: Lakehouse, spec: Any) -> DataFrame:
    return lake.spark.createDataFrame([], spec.schema)


def alert_status(lake: Lakehouse) -> DataFrame:
    """Alerts with their current lifecycle status (the latest action per alert; OPEN if none).

    Adds ``status``, ``status_actor``, ``status_note``, ``status_at`` and ``updated_since_status``
    (the incident kept going after the person's last action: worth a second look).
    Reads only: neither table is created by a reader.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    alerts = lake.read(ALERTS.name, LAYER) if lake.exists(ALERTS.name, LAYER) else _empty(lake, ALERTS)
    actions = (lake.read(ALERT_ACTIONS.name, LAYER) if lake.exists(ALERT_ACTIONS.name, LAYER)
               else _empty(lake, ALERT_ACTIONS))
    latest = (actions
              .withColumn("_n", F.row_number().over(
                  Window.partitionBy("alert_id").orderBy(F.col("acted_at").desc(), F.col("action_id").desc())))
              .where("_n = 1")
              .select("alert_id", F.col("status"), F.col("actor").alias("status_actor"),
                      F.col("note").alias("status_note"), F.col("acted_at").alias("status_at")))
    return (alerts.join(latest, "alert_id", "left")
            .withColumn("status", F.coalesce(F.col("status"), F.lit("OPEN")))
            .withColumn("updated_since_status",
                        F.coalesce(F.col("updated_at") > F.col("status_at"), F.lit(False))))


def _resolve_id(lake: Lakehouse, alert_id: str) -> tuple[str, str]:
    """Full alert id (a unique prefix of 6+ characters is accepted) and its current status."""
    from pyspark.sql import functions as F

    alert_id = (alert_id or "").strip()
    if len(alert_id) < 6:
        raise HealthMonitorError(f"alert id {alert_id!r} is too short: give at least 6 characters")
    if not lake.exists(ALERTS.name, LAYER):
        raise HealthMonitorError("there are no alerts yet: run 'health-monitor stream start' first")
    rows = (alert_status(lake).where(F.col("alert_id").startswith(alert_id))
            .select("alert_id", "status").limit(3).collect())
    if not rows:
        raise HealthMonitorError(f"unknown alert id {alert_id!r}: see 'health-monitor alerts list'")
    if len(rows) > 1:
        raise HealthMonitorError(f"alert id prefix {alert_id!r} is ambiguous: give more characters")
    return rows[0]["alert_id"], rows[0]["status"]


def _act(lake: Lakehouse, alert_id: str, status: str, actor: str | None, note: str | None,
         allowed_from: tuple[str, ...]) -> str:
    full_id, current = _resolve_id(lake, alert_id)
    if current not in allowed_from:
        raise HealthMonitorError(f"alert {full_id} is {current}: cannot change it to {status}")
    now = datetime.now(UTC)
    row = (uuid.uuid4().hex, full_id, status, actor or _whoami(), note, now)
    lake.write(lake.spark.createDataFrame([row], ALERT_ACTIONS.schema), ALERT_ACTIONS.name, LAYER)
    return full_id


def _whoami() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def ack_alert(lake: Lakehouse, alert_id: str, actor: str | None = None, note: str | None = None) -> str:
    """Acknowledge an OPEN alert (someone is on it); returns the full alert id.

    Raises:
        HealthMonitorError: unknown or ambiguous id, or an alert already ACKED/RESOLVED.
    """
    return _act(lake, alert_id, "ACKED", actor, note, ("OPEN",))


def resolve_alert(lake: Lakehouse, alert_id: str, actor: str | None = None, note: str | None = None) -> str:
    """Resolve an OPEN or ACKED alert; returns the full alert id."""
    return _act(lake, alert_id, "RESOLVED", actor, note, ("OPEN", "ACKED"))


def reopen_alert(lake: Lakehouse, alert_id: str, actor: str | None = None, note: str | None = None) -> str:
    """Re-open an ACKED or RESOLVED alert (e.g. resolved too early); returns the full alert id."""
    return _act(lake, alert_id, "OPEN", actor, note, ("ACKED", "RESOLVED"))
