"""Building candidate alerts (pure pandas): a micro-batch's scored windows and rule hits become
rows in the ``monitor.alerts`` contract: severity from score *and* business impact, deviation, a
one-sentence summary a person can act on, evidence."""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from health_monitor.alerts.policy import (
    DETECTOR_MIN_SCORE,
    _num,
    detector_alert_type,
    detector_may_alert_alone,
    sustained,
)
from health_monitor.domains import DOMAINS as DOMAIN_NAMES
from health_monitor.domains import spec
from health_monitor.rules.engine import SEVERITIES
from health_monitor.streaming.tables import ALERTS

#: Cost at risk (USD) that raises an alert's severity by one and by two levels.
IMPACT_BUMP_USD = (1_000.0, 10_000.0)
#: Below this cost at risk a cost alert is at most MEDIUM: a 5x spike of $3 pages nobody.
IMPACT_FLOOR_USD = 25.0
#: Data sensitivity (0-1) from which a security alert is raised by one level.
SENSITIVITY_BUMP = 0.8
SENSITIVITY_LABELS = {"PUBLIC": 0.0, "LOW": 0.2, "INTERNAL": 0.3, "MEDIUM": 0.5, "CONFIDENTIAL": 0.7,
                      "HIGH": 0.8, "SENSITIVE": 0.8, "PII": 1.0, "RESTRICTED": 1.0, "CRITICAL": 1.0}
MAX_EVIDENCE = 12




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
        if _is_money(domain) and impact_usd < IMPACT_FLOOR_USD:
            level = min(level, severity_level("MEDIUM"))
    if sensitivity is not None and sensitivity >= SENSITIVITY_BUMP:
        level += 1
    if floor:
        level = max(level, severity_level(floor))
    return SEVERITIES[min(level, len(SEVERITIES) - 1)]


#: Impact a detector-only security alert can show, per feature of the window: (threshold, words).
#: Money at risk counts through ``impact_usd``.
IMPACT_SIGNS = {
    "export_gb": (1.0, "{:.1f} GB exported"),
    "self_grants": (1.0, "{:.0f} self-grant(s)"),
    "grants": (1.0, "{:.0f} permission grant(s)"),
    "sensitive_table_access": (1.0, "{:.0f} read(s) of sensitive tables"),
    "failed_logins": (5.0, "{:.0f} failed login(s)"),
}
#: Severity ceiling of a detector-only alert by (several signals?, impact?): evidence strength
#: and impact, not the score alone. One signal (one feature far from the baseline: nine weekend
#: events from a user who usually has none) with nothing at stake is at most LOW; CRITICAL needs
#: several signals *and* something at stake.
DETECTOR_ONLY_CAP = {(False, False): "LOW", (True, False): "MEDIUM", (False, True): "HIGH", (True, True): "CRITICAL"}


def _drivers(row: dict[str, Any]) -> list[str] | None:
    """Features backing the detector's score (multivariate detectors), None where not reported."""
    raw = row.get("detector_drivers")
    if not isinstance(raw, str):
        return None
    return [d for d in raw.split(",") if d]


def _impact_signs(row: dict[str, Any], impact_usd: float | None) -> list[str]:
    """What is at stake in the window, in words (money at risk, data exported, privileges gained)."""
    out = [f"{_money(impact_usd)} at risk"] if impact_usd is not None and impact_usd >= IMPACT_FLOOR_USD else []
    for col, (threshold, words) in IMPACT_SIGNS.items():
        v = _num(row.get(col))
        if v is not None and v >= threshold:
            out.append(words.format(v))
    return out


def detector_only_severity(score: float, domain: str, row: dict[str, Any], impact_usd: float | None,
                           sensitivity: float | None) -> tuple[str, str]:
    """Severity of an alert the detector raised alone, and why in words.

    Where the detector says which features back its score (:func:`_drivers`), the severity is
    capped by evidence strength (one signal or several) and impact (:data:`DETECTOR_ONLY_CAP`):
    a single sparse count can never make an alert CRITICAL by itself. Elsewhere (a univariate
    cost detector) it is :func:`impact_severity`.
    """
    sev = impact_severity(score, domain, impact_usd, sensitivity)
    drivers = _drivers(row)
    if drivers is None:
        return sev, ""
    several = len(drivers) >= 2
    signs = _impact_signs(row, impact_usd)
    cap = DETECTOR_ONLY_CAP[(several, bool(signs))]
    if severity_level(sev) > severity_level(cap):
        sev = cap
    strength = (f"{len(drivers)} signals ({', '.join(drivers[:3])})" if several
                else f"one signal ({drivers[0]})" if drivers else "no single strong signal")
    stake = ", ".join(signs) if signs else "nothing exported, granted or sensitive at stake"
    return sev, f"{strength}; {stake}: {sev}"


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


def _is_money(domain: str) -> bool:
    try:
        return spec(domain).value_is_money
    except KeyError:
        return False


def _action(domain: str, alert_type: str, row: dict[str, Any]) -> str:
    """What a person should look at first."""
    try:
        dom = spec(domain)
    except KeyError:
        return "investigate the recent change"
    if alert_type in dom.actions:
        return dom.actions[alert_type]
    if dom.value_is_money:
        # the window's top spender, when the window frame names it
        job, sku = row.get("top_job"), row.get("top_sku") or row.get("sku_name")
        if job:
            return f"check job {job}" + (f" (top SKU {sku})" if sku else "")
        if sku:
            return f"check what drove {sku} usage"
    return dom.default_action


def summarize(domain: str, alert_type: str, row: dict[str, Any], message: str | None = None,
              why: str = "") -> str:
    """One sentence a person can act on: who, what, how far from normal, why this severity
    (``why``, detector-only alerts), what to check."""
    start, end = pd.Timestamp(row["window_start"]), pd.Timestamp(row["window_end"])
    when = _window_text(start, end)
    action = _action(domain, alert_type, row)
    if message:
        return f"{message.rstrip('.')} ({when}); {action}."
    who = _entity_label(domain, row)
    value, expected = _num(row.get("value")), _num(row.get("expected"))
    score = _num(row.get("score")) or 0.0
    if _is_money(domain) and value is not None:
        text = f"{who} spent {_money(value)} in the {when}"
        if expected and expected > 0:
            ratio = value / expected
            text += (f", {ratio:.1f}x its usual {_money(expected)}" if ratio >= 1
                     else f", {100 * (1 - ratio):.0f}% below its usual {_money(expected)}")
        return f"{text}; {action}."
    detail = ""
    if value is not None and expected is not None:
        detail = f" ({value:,.3g} against an expected {expected:,.3g})"
    what = spec(domain).activity if domain in DOMAIN_NAMES else "behaviour"
    evidence = row.get("_top_evidence")
    if why:
        detail = f": {evidence}" if evidence else detail
        return f"{who}'s {what} in the {when} is unusual, score {score:.2f}{detail} ({why}); {action}."
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
        if not groups and det_score >= min_score and sustained(row) and detector_may_alert_alone(domain, row):
            alert_type = detector_alert_type(domain)
            evidence = _evidence_list([f"model:{row.get('model_name')}"], det_evidence)
            candidates.append((alert_type, det_score, None, None, evidence))
        for alert_type, score, floor, message, evidence in candidates:
            value, expected = _num(row.get("value")), _num(row.get("expected"))
            impact = _num(row.get("cost_usd_at_risk"))
            if impact is None and _is_money(domain) and value is not None and expected is not None:
                impact = max(value - expected, 0.0)
            # a run's (day's) spend above the key's usual one: the money a runaway puts at risk
            unit_risk = _num(row.get("unit_usd_at_risk"))
            if unit_risk is not None:
                impact = max(impact or 0.0, unit_risk)
            sens = sensitivity_value(row.get("sensitivity"))
            deviation = (100.0 * (value - expected) / abs(expected)
                         if value is not None and expected not in (None, 0.0) else None)
            detector_used = det_score >= min_score
            if floor is None:
                severity, why = detector_only_severity(score, domain, row, impact, sens)
            else:
                severity, why = impact_severity(score, domain, impact, sens, floor), ""
            model_name = str(row.get("model_name") or "detector") if detector_used else "rules"
            if floor and detector_used:
                model_name += "+rules"
            out.append(alert_record(
                row, domain, alert_type, model_name,
                str(row.get("model_version") or "1") if detector_used else "1", score, severity, deviation, impact,
                summarize(domain, alert_type, row | {"_top_evidence": _first_z(det_evidence)}, message, why),
                evidence, now_ts))
    return pd.DataFrame(out, columns=cols)


def alert_record(row: dict[str, Any], domain: str, alert_type: str, model_name: str, model_version: str,
                 score: float, severity: str, deviation_pct: float | None, impact_usd: float | None,
                 summary: str, evidence: list[str], now_ts: pd.Timestamp) -> dict[str, Any]:
    """One new incident's row of ``monitor.alerts`` for a window ``row`` (its key and times), as the
    stream and the late-billing correction pass both write it: the id is the key-window's, so
    either writer's alert on the same window folds into one incident."""
    return {
        "alert_id": alert_id_for(row["entity_type"], row["entity_id"], alert_type, row["window_start"]),
        "detected_at": now_ts,
        "window_start": pd.Timestamp(row["window_start"]),
        "window_end": pd.Timestamp(row["window_end"]),
        "domain": domain,
        "model_name": model_name,
        "model_version": model_version,
        "alert_type": alert_type,
        "entity_type": str(row["entity_type"]),
        "entity_id": str(row["entity_id"]),
        "workspace_id": None if pd.isna(row.get("workspace_id")) else str(row["workspace_id"]),
        "score": float(min(max(score, 0.0), 1.0)),
        "severity": severity,
        "deviation_pct": deviation_pct,
        "impact_usd": impact_usd,
        "summary": summary,
        "evidence": evidence,
        "occurrences": 1,
        "last_seen_at": pd.Timestamp(row["window_end"]),
        "updated_at": now_ts,
    }




def _first_z(evidence: Any) -> str | None:
    """The detector's strongest feature in words: ``weekend_events 9 vs baseline 0.36 (z=+10.6)``
    becomes ``weekend_events 9 against a usual 0.36``."""
    for e in evidence if isinstance(evidence, list) else []:
        if isinstance(e, str) and " vs baseline " in e:
            return e.split(" (z=")[0].replace(" vs baseline ", " against a usual ")
    return None


def _naive(ts: Any) -> pd.Timestamp:
    t = pd.Timestamp(ts)
    return t.tz_convert("UTC").tz_localize(None) if t.tzinfo else t
