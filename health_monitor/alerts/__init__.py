"""From scored windows and rule hits to alerts: build, store once, and track status.

* :mod:`~health_monitor.alerts.policy`: when a detector score alone may alert (sustained deviation).
* :mod:`~health_monitor.alerts.build`: :func:`make_alerts` (pure pandas), candidates in the
  ``monitor.alerts`` contract.
* :mod:`~health_monitor.alerts.store`: :func:`fold_alerts` and :func:`apply_alerts`, folding
  candidates into continuing incidents and writing them exactly once.
* :mod:`~health_monitor.alerts.lifecycle`: OPEN -> ACKED -> RESOLVED, written only by people.
"""

from health_monitor.alerts.build import alert_id_for, impact_severity, make_alerts, summarize
from health_monitor.alerts.lifecycle import STATUSES, ack_alert, alert_status, reopen_alert, resolve_alert
from health_monitor.alerts.policy import DETECTOR_MIN_SCORE, DETECTOR_MIN_WINDOWS, RECENT_WINDOWS
from health_monitor.alerts.store import apply_alerts, fold_alerts, suppression_gap

__all__ = [
    "DETECTOR_MIN_SCORE", "DETECTOR_MIN_WINDOWS", "RECENT_WINDOWS", "STATUSES", "ack_alert",
    "alert_id_for", "alert_status", "apply_alerts", "fold_alerts", "impact_severity", "make_alerts",
    "reopen_alert", "resolve_alert", "summarize", "suppression_gap",
]
