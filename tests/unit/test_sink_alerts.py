"""The sink hands make_alerts only the windows that can alert, with their features parsed once.

Pure pandas, no Spark: a domain's windows closed and scored as in ``test_domains``, the first
ones sent along as priors (as the state function does for ``for: N`` rules).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from test_domains import CTX, HOURS, ROWS, START

from health_monitor.alerts.build import make_alerts
from health_monitor.domains import STREAM_DOMAINS
from health_monitor.rules import load_rules
from health_monitor.streaming import windows
from health_monitor.streaming.scoring import score_windows
from health_monitor.streaming.sink import (
    _score_id,
    _score_ids,
    alert_rows,
    expand_scored,
    feature_frame,
    parse_features,
    score_frame,
)

RULES = load_rules(None)
#: Features that make a default rule of each domain hit (cost's holds ``for: 3`` windows: set on a
#: run that starts among the priors).
RULE_HIT = {"cost": {"cost_usd": 50.0, "untagged_cost_pct": 80.0}, "security": {"self_grants": 1},
            "reliability": {"slow_run_streak": 3, "median_duration_s": 600.0, "duration_s": 2000.0}}
NOW = pd.Timestamp("2026-11-04 00:00").to_pydatetime()


def _ordered(domain: str) -> pd.DataFrame:
    make, entity_type, entity_id = ROWS[domain]
    ks = windows.KeyState(entity_type, entity_id)
    windows.accumulate(domain, ks, make())
    closed = windows.close_windows(domain, ks, int((START + pd.Timedelta(hours=HOURS + 1)).value // 1_000_000),
                                   CTX[domain])
    scored = score_windows(domain, ks, closed, {"models": (), "registry_uri": None, **CTX[domain]})
    scored = scored.assign(kind=["prior"] * 4 + ["score"] * (len(scored) - 4))
    # Windows a rule hits (a prior among them) and a run the detector alone finds anomalous.
    feats = [json.loads(f) for f in scored["features"]]
    for i in (2, 3, 4, 5, 8, 15):
        feats[i].update(RULE_HIT[domain])
    for i in (10, 11, 12, 20):
        scored.loc[i, "score"] = 0.97
        feats[i]["recent_high_windows"] = 3
    scored["features"] = [json.dumps(f) for f in feats]
    return scored.sort_values(["entity_type", "entity_id", "window_start"], kind="stable").reset_index(drop=True)


@pytest.mark.parametrize("domain", STREAM_DOMAINS)
def test_the_alerting_rows_make_the_alerts_of_all_new_windows(domain: str) -> None:
    ordered = _ordered(domain)
    current = (ordered["kind"] == "score").to_numpy()
    # Reference: every new window through make_alerts, as the sink did before.
    frame = expand_scored(ordered)
    hits = RULES.evaluate(domain, frame)
    hits = hits[current[hits["row"].to_numpy()]]
    remap = {old: new for new, old in enumerate(np.flatnonzero(current))}
    hits = hits.assign(row=hits["row"].map(remap)).reset_index(drop=True)
    want = make_alerts(frame[current].reset_index(drop=True), hits, domain, now=NOW)

    new, new_hits = alert_rows(ordered, parse_features(ordered["features"]), current, RULES, domain)
    got = make_alerts(new, new_hits, domain, now=NOW)
    assert len(want) > 0 and len(new) < current.sum()
    pd.testing.assert_frame_equal(got, want)
    # The sink's form: the parsed features as one frame, shared with the scores' maps.
    features = feature_frame(parse_features(ordered["features"]), ordered.index)
    new, new_hits = alert_rows(ordered, features, current, RULES, domain)
    pd.testing.assert_frame_equal(make_alerts(new, new_hits, domain, now=NOW), want)


def test_score_rows_from_parsed_features_are_those_from_the_json() -> None:
    ordered = _ordered("security")
    scored = ordered[ordered["kind"] == "score"]
    now = NOW.replace(tzinfo=None)
    pd.testing.assert_frame_equal(score_frame(scored, now, parse_features(scored["features"])),
                                  score_frame(scored, now))


def test_score_ids_of_a_batch_are_those_of_one_row_at_a_time() -> None:
    starts = [pd.Timestamp("2026-03-02 05:00"), pd.Timestamp("2026-03-02 05:00:00.250"),
              pd.Timestamp("2026-03-02 06:00:01")]
    got = _score_ids(["m", "m", "n"], ["job", "job", "user"], ["1", "1", "a@b"], pd.Series(starts))
    assert got == [_score_id("m", "job", "1", starts[0]), _score_id("m", "job", "1", starts[1]),
                   _score_id("n", "user", "a@b", starts[2])]
    assert len(set(got)) == 3
