"""A stream upgraded under a running checkpoint: a key's saved online detector is continued when
today's detector declares its version continuable, and started afresh otherwise."""

from __future__ import annotations

import numpy as np
import pandas as pd

from health_monitor.detectors.univariate import UnivariateDetector
from health_monitor.streaming.scoring import _detector
from health_monitor.streaming.windows import KeyState


def _learned_state(version_tag: str) -> KeyState:
    det = UnivariateDetector(calib_window=2000, scale_alpha=0.02)  # v2's defaults
    ts = pd.date_range("2026-10-01", periods=48, freq="h")
    det.score_learn(pd.DataFrame({"timestamp": ts, "value": 100 + np.sin(np.arange(48))}))
    ks = KeyState("workspace", "1")
    ks.detector = det.get_state()
    ks.history["detector_version"] = version_tag
    return ks


def test_a_continuable_version_keeps_what_the_key_learned():
    assert "2" in UnivariateDetector.continues and UnivariateDetector.version != "2"
    ks = _learned_state(f"{UnivariateDetector.name}:2")
    det = _detector("cost", ks)
    assert ks.detector is not None and "detector_reset" not in ks.history
    assert det.calib_window == 2000  # continued with the parameters it learned with


def test_an_unknown_version_starts_afresh_and_says_so():
    ks = _learned_state(f"{UnivariateDetector.name}:1")
    det = _detector("cost", ks)
    assert ks.detector is None and ks.history["detector_reset"] is True
    assert det.calib_window == UnivariateDetector().calib_window
