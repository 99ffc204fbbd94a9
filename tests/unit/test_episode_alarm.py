"""The episode alarm policy (`detect`'s ``alarm`` column): one alarm per excursion of the score."""

from __future__ import annotations

import math

import numpy as np
import pytest

from health_monitor.detectors.base import episode_alarms, recent_peak


def reference_alarms(score: list[float], threshold: float, rearm: int) -> list[bool]:
    """The policy as an on-call user states it, one row at a time: alarm on a row at or above the
    threshold unless one of the previous ``rearm`` rows was too (NaN: not scored, so quiet)."""
    out, quiet = [], rearm  # rows since the last row at/above the threshold (armed at start)
    for s in score:
        high = not math.isnan(s) and s >= threshold
        out.append(high and quiet >= rearm)
        quiet = 0 if high else quiet + 1
    return out


def test_one_alarm_per_run_and_rearm_after_quiet_rows() -> None:
    s = np.zeros(40)
    s[5:9] = 0.9  # one excursion of 4 rows: one alarm, on its first row
    s[12] = 0.85  # 3 quiet rows later (< rearm 5): the same episode
    s[20] = 0.8  # 7 quiet rows later: a new alarm (the threshold itself counts)
    s[30] = 0.79  # just below the threshold: nothing
    got = episode_alarms(s, 0.8, rearm=5)
    assert np.flatnonzero(got).tolist() == [5, 20]
    assert episode_alarms(s, 0.8, rearm=0).sum() == int((s >= 0.8).sum())  # rearm 0: every row


def test_rearm_boundary_is_exact() -> None:
    s = np.zeros(20)
    s[2] = s[8] = 1.0  # 5 quiet rows between them
    assert np.flatnonzero(episode_alarms(s, 0.5, rearm=5)).tolist() == [2, 8]
    assert np.flatnonzero(episode_alarms(s, 0.5, rearm=6)).tolist() == [2]
    # a row exactly at the threshold opens the episode, so the higher row after it is no new alarm
    assert episode_alarms(np.array([0.0, 0.8, 0.9]), 0.8, rearm=3).tolist() == [False, True, False]


@pytest.mark.parametrize("rearm", [0, 1, 3, 17])
def test_matches_the_row_by_row_policy_at_every_threshold(rearm: int) -> None:
    # the benchmark sweeps the threshold over episode_alarms: it must be the policy at every one
    rng = np.random.default_rng(7)
    s = rng.beta(0.5, 3.0, 600)
    s[rng.integers(0, 600, 40)] = np.nan
    for t in (0.05, 0.2, 0.4, 0.6, 0.8, 0.95):
        assert episode_alarms(s, t, rearm).tolist() == reference_alarms(s.tolist(), t, rearm)


def test_recent_peak_is_strictly_before_the_row() -> None:
    s = np.array([0.1, 0.9, 0.2, 0.3, np.nan, 0.0])
    peak = recent_peak(s, 2)
    assert peak[0] == -np.inf
    assert peak[1:].tolist() == [0.1, 0.9, 0.9, 0.3, 0.3]
