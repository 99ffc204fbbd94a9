"""How a stream combines its online detector's score with a registered champion's: the champion
adds evidence and never vetoes an online alarm (issue 11: a weighted average lost seed 23's
billing error, found cold at 1.8 h, to a champion that saw nothing unusual)."""

from __future__ import annotations

import numpy as np

from health_monitor.detectors.base import DECADES
from health_monitor.streaming.registered import blend_scores

THRESHOLD = 0.8  # the streams' default alert threshold: tail probability 1e-4


def _p(score: float) -> float:
    return 10.0 ** (-DECADES * score)


def test_an_ordinary_champion_never_lowers_an_online_alarm():
    online = np.array([1.0, 0.9, THRESHOLD, 0.3])
    blended = blend_scores(online, np.zeros(4))
    assert (blended >= online).all()
    assert (blended[:3] >= THRESHOLD).all()


def test_agreement_strengthens_and_matches_fishers_method():
    online, champ = np.array([0.6]), np.array([0.5])
    blended = blend_scores(online, champ)[0]
    q = _p(0.6) * _p(0.5)
    fisher_p = q * (1.0 - np.log(q))
    assert np.isclose(blended, -np.log10(fisher_p) / DECADES)
    assert blended > max(0.6, 0.5)
    # two moderately rare signals that each stay under the threshold raise an alarm together
    assert blended >= THRESHOLD


def test_a_champion_alone_needs_overwhelming_evidence():
    ordinary = np.full(3, 0.05)
    blended = blend_scores(ordinary, np.array([0.5, 0.8, 1.0]))
    assert blended[0] < THRESHOLD and blended[1] < THRESHOLD  # p = 1e-4 from the champion alone is not enough
    assert blended[2] >= THRESHOLD  # p = 1e-5 is


def test_blending_is_symmetric_monotone_and_bounded():
    rng = np.random.default_rng(3)
    a, b = rng.uniform(0, 1, 500), rng.uniform(0, 1, 500)
    ab = blend_scores(a, b)
    assert ((ab >= 0) & (ab <= 1)).all()
    assert (ab >= a).all()
    # more champion evidence never lowers the result
    assert (blend_scores(a, np.minimum(b + 0.1, 1.0)) >= ab - 1e-12).all()
    # missing champion scores count as no evidence
    assert np.array_equal(blend_scores(a, np.full(500, np.nan)), blend_scores(a, np.zeros(500)))
