"""The feature columns each streaming domain's window frame carries: the vocabulary rules use.

The streaming queries build one row per entity and event-time window with these columns (extra
columns are fine). Rules are checked against this list when they are loaded, so a typo in a
column name is a load-time error with the file and line, not an alert that silently never fires.
Domains not listed here (performance, quality) have no streaming frame yet; their rules are
accepted without a column check.
"""

from __future__ import annotations

from health_monitor.domains import DOMAINS, SPECS  # noqa: F401 - DOMAINS: the names a rule may use

#: Columns every domain's frame has (identity of the window plus the blended detector output).
COMMON_COLUMNS: dict[str, str] = {
    "entity_type": "workspace | workspace_sku | user | job | warehouse | cluster",
    "entity_id": "the entity's id (workspace id, workspace:sku, user name, job id, warehouse id, cluster id)",
    "workspace_id": "workspace of the entity",
    "window_start": "start of the event-time window (UTC)",
    "window_end": "end of the event-time window (UTC)",
    "value": "the window's main metric (cost, risk, duration)",
    "expected": "what the detectors expected for value",
    "score": "blended detector score, 0 (normal) to 1 (anomalous)",
    "recent_high_windows": "how many of the entity's last 3 windows (this one included) scored >= 0.8",
    "hour_of_day": "hour of window_start, 0-23 UTC",
    "day_of_week": "weekday of window_start, 1 = Sunday .. 7 = Saturday (Spark's dayofweek)",
    "is_weekend": "1 when window_start falls on a Saturday or Sunday",
}

#: Columns per streamed domain, from each domain's spec (:mod:`health_monitor.domains`).
DOMAIN_COLUMNS: dict[str, dict[str, str]] = {s.name: s.rule_columns for s in SPECS if s.rule_columns}


def known_columns(domain: str) -> set[str] | None:
    """Columns a rule of ``domain`` may reference, or None when the domain's frame is not defined."""
    if domain not in DOMAIN_COLUMNS:
        return None
    return set(COMMON_COLUMNS) | set(DOMAIN_COLUMNS[domain])
