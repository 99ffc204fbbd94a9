"""Every streaming detector by its stable name, so jobs and tables refer to detectors by name."""

from __future__ import annotations

from typing import Any

from health_monitor.detectors.base import StreamingDetector
from health_monitor.detectors.multivariate import MultivariateDetector
from health_monitor.detectors.univariate import UnivariateDetector

#: Detector classes by their ``name`` attribute (the name the anomaly_scores table records).
DETECTORS: dict[str, type[StreamingDetector]] = {
    cls.name: cls for cls in (UnivariateDetector, MultivariateDetector)
}

#: Short aliases the CLI and configuration files may use.
ALIASES: dict[str, str] = {"univariate": UnivariateDetector.name, "multivariate": MultivariateDetector.name}


def make_detector(name: str, **params: Any) -> StreamingDetector:
    """A fresh detector by registry name (or alias) with the given parameters.

    Raises:
        KeyError: the name is not registered (the message lists the known names).
    """
    cls = DETECTORS.get(ALIASES.get(name, name))
    if cls is None:
        known = ", ".join(sorted([*DETECTORS, *ALIASES]))
        raise KeyError(f"unknown detector {name!r}; known: {known}")
    return cls(**params)
