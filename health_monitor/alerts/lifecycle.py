"""Alert lifecycle: OPEN -> ACKED -> RESOLVED, in ``monitor.alert_actions``, a table only people
(the CLI) write, so the stream and a person never write the same table; :func:`alert_status` joins
the two."""

from __future__ import annotations

import getpass
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from health_monitor.alerts.store import LAYER
from health_monitor.errors import HealthMonitorError
from health_monitor.streaming.tables import ALERT_ACTIONS, ALERTS

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from health_monitor.runtime import Lakehouse

STATUSES = ("OPEN", "ACKED", "RESOLVED")



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
