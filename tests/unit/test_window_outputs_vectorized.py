"""The state function's per-window paths that now run over a bucket's arrays give what the per-key
and per-window forms they replaced gave, on generated rows.

The forms replaced are kept here as references: one ``records()`` call per key for its prior rows
(dicts of Timestamps in its state), one ``windows.accumulate`` call per key, NumPy's median, and
the features JSON through ``_jsonable`` per value. Values, dtypes, key order and the pickled
state must be the same.
"""

from __future__ import annotations

import json
import pickle
from collections import deque

import numpy as np
import pandas as pd
import pytest

from health_monitor.streaming import bucketed, windows
from health_monitor.streaming.scoring import (
    OUTPUT_COLUMNS,
    PRIOR_WINDOWS,
    _jsonable,
    features_json,
    prior_frame,
    records,
    remember_recent,
)
from health_monitor.streaming.windows.reliability import _median

START = pd.Timestamp("2026-11-06 20:00")  # a Friday evening: off hours and a weekend


# --------------------------------------------------------------------------- prior rows
def _scored(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """Rows as emit() writes them: NaN expected values, null workspaces, NaT event times."""
    starts = pd.to_datetime(START.value // 1_000_000 + 3_600_000 * rng.integers(0, 500, n), unit="ms")
    expected = rng.random(n)
    expected[rng.random(n) < 0.3] = np.nan
    return pd.DataFrame({
        "kind": "score", "domain": "reliability", "entity_type": "job",
        "entity_id": [f"j{i}" for i in rng.integers(0, 9, n)],
        "workspace_id": np.where(rng.random(n) < 0.2, None, "ws1"),
        "window_start": starts, "window_end": starts + pd.Timedelta(hours=1),
        "value": rng.lognormal(3, 1, n), "expected": expected, "score": rng.random(n),
        "model_name": "m", "model_version": "3", "features": [json.dumps({"i": i}) for i in range(n)],
        "evidence": "[]", "event_time": pd.NaT, "source_table": None, "row_json": None,
    })[OUTPUT_COLUMNS]


def _old_remember(parts: list, scored: pd.DataFrame) -> None:
    """The per-key form: one records() call per key, dicts of Timestamps kept."""
    at = 0
    for ks, closed, _ in parts:
        n = len(closed)
        if n:
            ks.recent.extend(records(scored.iloc[max(at, at + n - PRIOR_WINDOWS):at + n]))
            del ks.recent[:-PRIOR_WINDOWS]
        at += n


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_prior_rows_give_the_frames_their_records_gave(seed: int) -> None:
    rng = np.random.default_rng(seed)
    old_keys = [windows.KeyState("job", f"j{i}") for i in range(6)]
    new_keys = [windows.KeyState("job", f"j{i}") for i in range(6)]
    for call in range(4):
        sizes = rng.integers(0, 8, len(old_keys)).tolist()
        scored = _scored(rng, sum(sizes))
        _old_remember([(ks, [None] * n, None) for ks, n in zip(old_keys, sizes, strict=True)], scored)
        remember_recent([(ks, [None] * n, None) for ks, n in zip(new_keys, sizes, strict=True)], scored)
        if call == 1:
            # a key restored from state written before: its dicts go on with today's tuples
            new_keys[0].recent = [dict(r) for r in old_keys[0].recent]
        for old, new in zip(old_keys, new_keys, strict=True):
            assert len(old.recent) == len(new.recent) <= PRIOR_WINDOWS
            if old.recent:
                pd.testing.assert_frame_equal(prior_frame(new.recent), pd.DataFrame(old.recent, columns=OUTPUT_COLUMNS))
        together_old = [r for ks in old_keys for r in ks.recent]
        together_new = [r for ks in new_keys for r in ks.recent]
        pd.testing.assert_frame_equal(prior_frame(together_new).assign(kind="prior"),
                                      pd.DataFrame(together_old, columns=OUTPUT_COLUMNS).assign(kind="prior"))
    # what the state keeps survives its pickle
    ks = pickle.loads(pickle.dumps(new_keys[1]))
    pd.testing.assert_frame_equal(prior_frame(ks.recent), pd.DataFrame(old_keys[1].recent, columns=OUTPUT_COLUMNS))


# --------------------------------------------------------------------------- features JSON, median
def test_features_json_is_json_of_jsonable_values() -> None:
    rng = np.random.default_rng(4)
    values = [1.5, float("nan"), float("inf"), -0.0, 0.1 + 0.2, 7, True, None, "x\u00e9\"", np.float64(2.5),
              np.float64("nan"), np.int64(3), np.bool_(True), [1, "a"], 1e300, -float("inf")]
    for _ in range(200):
        keys = rng.choice(len(values), 8).tolist()
        feats = {f"f{j}": values[i] for j, i in enumerate(keys)}
        assert features_json(feats) == json.dumps({k: _jsonable(v) for k, v in feats.items()})


def test_median_is_numpys() -> None:
    rng = np.random.default_rng(5)
    for t in range(3000):
        n = int(rng.integers(1, 51))
        v = [rng.lognormal(5, 2, n), rng.integers(0, 9, n).astype(float), rng.uniform(0, 1e308, n),
             np.append(rng.normal(0, 1, n - 1), np.inf), np.append(rng.normal(0, 1, n - 1), np.nan)][t % 5]
        d = deque(v.tolist(), maxlen=50)
        want, got = float(np.median(d)), _median(d)
        assert got == want or (np.isnan(got) and np.isnan(want))


# --------------------------------------------------------------------------- accumulate_keys
def _rows(domain: str, rng: np.random.Generator, n: int) -> pd.DataFrame:
    """Rows of five keys over 30 hours, some without a workspace (a key's first rows among them)."""
    t = pd.Series(START + pd.to_timedelta(rng.integers(0, 30 * 3600, n), unit="s"))
    key = np.array([f"k{i}" for i in rng.integers(0, 5, n)], dtype=object)
    ws = np.array(["ws1", "ws2", None], dtype=object)[rng.integers(0, 3, n)]
    ws[key == "k4"] = None
    if domain == "security":
        audit = rng.random(n) < 0.7
        flag = lambda p: np.where(audit, rng.random(n) < p, False)  # noqa: E731
        return pd.DataFrame({
            "entity_type": "user", "entity_id": key, "workspace_id": ws, "event_time": t,
            "source": np.where(audit, "audit", "lineage"),
            "ip": np.where(audit & (rng.random(n) < 0.9), [f"10.0.{i}.1" for i in rng.integers(0, 4, n)], None),
            "is_login": flag(0.3), "is_failed": flag(0.2), "is_admin": flag(0.1), "is_grant": flag(0.05),
            "is_self_grant": flag(0.02), "is_export": flag(0.1),
            "export_bytes": np.where(rng.random(n) < 0.8, rng.random(n) * 1e9, np.nan),
            "table_name": np.where(audit, None, np.array(["main.hr.pii", "main.s.t1", None], dtype=object)[
                rng.integers(0, 3, n)]),
            "is_read": np.where(audit, None, rng.random(n) < 0.8),
            "is_sensitive": np.where(audit, None, rng.random(n) < 0.5),
            "statement_id": np.where(audit, None, [f"s{i}" for i in rng.integers(0, 6, n)]),
            "read_bytes": np.where(audit, np.nan, rng.integers(1, 10**9, n).astype(float)),
            "source_table": "fact_audit_events"})
    return pd.DataFrame({
        "entity_type": "job", "entity_id": key, "workspace_id": ws, "event_time": t,
        "run_id": [f"r{i}" for i in rng.integers(0, n // 2, n)], "job_name": "nightly",
        "result_state": np.array(["SUCCEEDED", "FAILED"], dtype=object)[rng.integers(0, 2, n)],
        "is_failure": rng.random(n) < 0.2, "is_retry": rng.random(n) < 0.1, "duration_s": rng.lognormal(6, 0.5, n),
        "wait_s": rng.random(n) * 30, "termination_code": None, "source_table": "fact_job_run_timeline"})


@pytest.mark.parametrize("domain", ["security", "reliability"])
def test_accumulate_keys_folds_each_key_as_its_own_accumulate_call(domain: str) -> None:
    rng = np.random.default_rng(6)
    rows = _rows(domain, rng, 900)
    # arrival roughly in time order, a few hours late at most; windows close between calls
    arrival = rows["event_time"] + pd.to_timedelta(rng.integers(0, 4 * 3600, len(rows)), unit="s")
    rows = rows.iloc[np.argsort(arrival.to_numpy(), kind="stable")].reset_index(drop=True)
    per_key: dict = {}
    together: dict = {}
    for part in np.array_split(np.arange(len(rows)), 6):
        call = rows.iloc[part].reset_index(drop=True)
        got, at, _ = bucketed._split(iter([call]))
        for k, pos in at.items():
            per_key.setdefault(k, windows.KeyState(*k))
            together.setdefault(k, windows.KeyState(*k))
            windows.accumulate(domain, per_key[k], got.iloc[pos].reset_index(drop=True))
        bucketed.accumulate_keys(domain, got, at, {k: together[k] for k in at})
        wm = int(windows._ms(call["event_time"]).max()) - 2 * windows.HOUR_MS
        for k in per_key:
            a = windows.close_windows(domain, per_key[k], wm, {})
            b = windows.close_windows(domain, together[k], wm, {})
            assert features_json({"w": [c["window_start"] for c in a], "f": [c["features"] for c in a]}) == \
                features_json({"w": [c["window_start"] for c in b], "f": [c["features"] for c in b]})
    assert per_key.keys() == together.keys()
    for k in per_key:
        assert pickle.dumps(per_key[k]) == pickle.dumps(together[k]), k
