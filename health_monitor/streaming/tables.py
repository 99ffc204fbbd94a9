"""Contracts of the tables the streaming engine writes (``monitor`` layer).

Ownership keeps local Delta single-writer safe: the stream process is the only writer of
``anomaly_scores``, ``alerts`` and ``late_rows``; a person's acknowledgements go to
``alert_actions``, written only by the ``alerts ack``/``resolve`` commands. Readers join the two
to get an alert's current status.
"""

from __future__ import annotations

from health_monitor.gold.ddl import table

ANOMALY_SCORES = table(
    "anomaly_scores", "monitor",
    """
    score_id string NOT NULL -- deterministic: model, entity, window
    domain string NOT NULL -- cost | security | reliability
    entity_type string NOT NULL -- workspace | workspace_sku | user | job
    entity_id string NOT NULL
    workspace_id string
    window_start timestamp NOT NULL
    window_end timestamp NOT NULL
    value double -- the observed value of the window's main metric
    expected double -- what the detector expected
    score double NOT NULL -- 0 (normal) to 1 (anomalous)
    model_name string NOT NULL
    model_version string NOT NULL
    features map<string,double>
    scored_at timestamp NOT NULL
    """,
    ["score_id"], "Every window the streaming detectors scored.",
    event_time="window_start",
)

ALERTS = table(
    "alerts", "monitor",
    """
    alert_id string NOT NULL -- deterministic from entity, alert_type and the incident's first window
    detected_at timestamp NOT NULL
    window_start timestamp NOT NULL -- first window of the incident
    window_end timestamp NOT NULL -- last window seen so far
    domain string NOT NULL
    model_name string NOT NULL
    model_version string NOT NULL
    alert_type string NOT NULL
    entity_type string NOT NULL
    entity_id string NOT NULL
    workspace_id string
    score double NOT NULL -- 0 to 1, the highest seen in the incident
    severity string NOT NULL -- LOW | MEDIUM | HIGH | CRITICAL
    deviation_pct double
    impact_usd double -- cost at risk, where it applies
    summary string NOT NULL -- one sentence a person can act on
    evidence array<string> -- top contributing features and rules
    occurrences int -- windows folded into this alert
    last_seen_at timestamp
    updated_at timestamp NOT NULL
    """,
    ["alert_id"], "Alerts raised by the streaming engine; a continuing incident updates one row.",
    event_time="window_start",
)

ALERT_ACTIONS = table(
    "alert_actions", "monitor",
    """
    action_id string NOT NULL
    alert_id string NOT NULL
    status string NOT NULL -- ACKED | RESOLVED | OPEN (re-opened)
    actor string
    note string
    acted_at timestamp NOT NULL
    """,
    ["action_id"], "Lifecycle changes made by people; the latest per alert is its status (default OPEN).",
)

LATE_ROWS = table(
    "late_rows", "monitor",
    """
    query_name string NOT NULL
    source_table string NOT NULL
    entity_id string
    event_time timestamp NOT NULL
    watermark timestamp
    received_at timestamp NOT NULL
    row_json string
    """,
    ["query_name", "source_table", "event_time", "entity_id"],
    "Rows that arrived behind the watermark: counted, kept and never silently dropped.",
    event_time="event_time",
)

STREAM_BATCHES = table(
    "stream_batches", "monitor",
    """
    query_name string NOT NULL
    batch_id bigint NOT NULL
    stats string NOT NULL -- the batch's BatchStats as JSON (windows, late rows, alerts, totals)
    written_at timestamp NOT NULL
    """,
    ["query_name", "batch_id"],
    "What each micro-batch did, written by the sink under Spark Connect (where the foreachBatch "
    "function runs server-side and its Python state never reaches the caller).",
)

STREAM_TABLES = {t.name: t for t in (ANOMALY_SCORES, ALERTS, ALERT_ACTIONS, LATE_ROWS, STREAM_BATCHES)}
