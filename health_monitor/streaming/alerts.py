"""Moved to :mod:`health_monitor.alerts` (build, store, lifecycle, policy); this re-export keeps
the old import path working while other branches still use it. New code imports the package."""

from health_monitor.alerts.build import *  # noqa: F403
from health_monitor.alerts.build import _evidence_list, _naive  # noqa: F401
from health_monitor.alerts.lifecycle import *  # noqa: F403
from health_monitor.alerts.policy import *  # noqa: F403
from health_monitor.alerts.store import *  # noqa: F403
