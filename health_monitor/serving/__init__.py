"""Real-time serving: the catalog's nine endpoints over HTTP, from the registry's champions.

``health-monitor serve`` runs :func:`server.serve`: :mod:`models` loads and hot-swaps champions,
:mod:`store` holds the latest features per entity, :mod:`contracts` validates requests against the
MLflow signatures, :mod:`app` is the ASGI application, :mod:`telemetry` the metrics and the Delta
inference table, :mod:`openapi` the published contract.
"""

from health_monitor.serving.app import ServerConfig, create_app
from health_monitor.serving.models import ModelSet

__all__ = ["ModelSet", "ServerConfig", "create_app"]
