"""One feature definition for stream and batch: the streams' champions train on the window frame.

Pure pandas: the window tables are the stream's own window code replayed per key
(health_monitor/features/windows.py); here it runs on hand-made input rows (the columns the Spark
projections in streaming/sources.py produce). tests/integration/test_window_tables.py runs the
real stream and the real Spark replay over the same Gold rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from health_monitor.catalog import get_model
from health_monitor.domains import STREAM_DOMAINS, spec
from health_monitor.features import FEATURE_TABLES
from health_monitor.features.windows import (
    KEY_COLUMNS,
    closing_arrival,
    in_time,
    replay,
    replay_revisions,
    watermark_ms,
    window_columns,
)
from health_monitor.streaming import windows

START = pd.Timestamp("2026-11-02 00:00")  # a Monday
DAYS = 4
BLENDING = [d for d in STREAM_DOMAINS if spec(d).models]


def _cost_rows(seed: int = 5) -> pd.DataFrame:
    """fact_usage as cost_input projects it, keyed twice (workspace, workspace x SKU)."""
    rng = np.random.default_rng(seed)
    rows = []
    for h in range(DAYS * 24):
        for sku, base in (("JOBS_COMPUTE", 6.0), ("SQL_COMPUTE", 2.0)):
            for k in range(2):
                cost = base * (1 + 0.4 * np.sin(2 * np.pi * h / 24)) * rng.uniform(0.8, 1.2)
                if h == 80 and sku == "SQL_COMPUTE":
                    cost *= 12  # a spike, so z-scores and ratios have something to say
                rows.append({"workspace_id": "ws1", "event_time": START + pd.Timedelta(hours=h, minutes=7 + 20 * k),
                             "cost": cost, "dbus": cost * 2, "sku_name": sku,
                             "job_id": f"j{h % 3}" if k == 0 else None, "job_name": f"etl_{h % 3}" if k == 0 else None,
                             "is_tagged": bool(rng.random() < 0.7), "record_id": f"r{h}-{sku}-{k}",
                             "source_table": "fact_usage"})
    base = pd.DataFrame(rows)
    ws = base.assign(entity_type="workspace", entity_id=base["workspace_id"])
    sku = base.assign(entity_type="workspace_sku", entity_id=base["workspace_id"] + ":" + base["sku_name"])
    return pd.concat([ws, sku], ignore_index=True)


def _security_rows(seed: int = 7) -> pd.DataFrame:
    """Audit and lineage rows as security_input projects them, for two users."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in ("ann@corp.com", "5d1c0e7a-service"):
        for h in range(DAYS * 24):
            if rng.random() < 0.3:
                continue
            t = START + pd.Timedelta(hours=h, minutes=int(rng.integers(0, 59)))
            rows.append({"entity_id": user, "workspace_id": "ws1", "event_time": t, "source": "audit",
                         "ip": f"10.0.{h // 40}.{h % 5}", "is_login": True, "is_failed": bool(rng.random() < 0.1),
                         "is_admin": h % 11 == 0, "is_grant": h % 13 == 0, "is_self_grant": h == 70,
                         "is_export": h % 9 == 0, "export_bytes": float(rng.integers(1, 5)) * 1e8,
                         "table_name": None, "is_read": None, "is_sensitive": None, "statement_id": None,
                         "read_bytes": None, "source_table": "fact_audit_events"})
            rows.append({"entity_id": user, "workspace_id": "ws1", "event_time": t + pd.Timedelta(minutes=1),
                         "source": "lineage", "ip": None, "is_login": False, "is_failed": False, "is_admin": False,
                         "is_grant": False, "is_self_grant": False, "is_export": False, "export_bytes": None,
                         "table_name": "main.hr.employees_pii" if h % 6 == 0 else f"main.sales.t{h % 4}",
                         "is_read": True, "is_sensitive": h % 6 == 0, "statement_id": f"s{user[:3]}{h}",
                         "read_bytes": float(rng.integers(1, 50)) * 1e6, "source_table": "fact_table_lineage"})
    return pd.DataFrame(rows).assign(entity_type="user")


ROWS = {"cost": _cost_rows, "security": _security_rows}
CTX = {"cost": {"budgets": {"ws1": 4000.0}}, "security": {}}


def test_every_streaming_champion_is_a_catalog_model_on_its_streams_window_table() -> None:
    for domain in BLENDING:
        dom = spec(domain)
        assert dom.window_table in FEATURE_TABLES, f"{domain}: window table {dom.window_table} is not built"
        for name in dom.models:
            m = get_model(name)
            assert (m.domain, m.feature_table) == (domain, dom.window_table), name
            assert m.time_key == "window_start"


@pytest.mark.parametrize("domain", BLENDING)
def test_each_streaming_champions_signature_is_covered_by_its_streams_window_frame(domain: str) -> None:
    cols = window_columns(domain)
    for name in spec(domain).models:
        features = get_model(name).features
        missing = [f for f in features if f not in cols]
        assert not missing, f"{name} needs {missing}, which the {domain} stream's window frame lacks"
        assert all(cols[f] == "double" for f in features), f"{name}: non-numeric inputs for an Isolation Forest"


@pytest.mark.parametrize("domain", BLENDING)
def test_declared_window_columns_are_what_a_replay_produces(domain: str) -> None:
    keyed = ROWS[domain]()
    out = replay(domain, keyed, watermark_ms(domain, keyed["event_time"].max()), CTX[domain])
    assert len(out) > 50
    assert list(out.columns) == list(dict.fromkeys([*KEY_COLUMNS, *window_columns(domain)]))
    # every champion input is a real number on many windows (not a column of fillers; the
    # "own past" features are null in a key's first days by definition)
    for name in spec(domain).models:
        # a job's run against its usual runs needs a job key with five finished runs: see below
        cols = [c for c in get_model(name).features if c not in UNIT_FEATURES]
        filled = out[cols].notna().mean()
        assert (filled > 0.4).all(), filled[filled <= 0.4]


UNIT_FEATURES = ("unit_z", "unit_cost_usd")


def test_a_jobs_run_is_judged_against_its_usual_runs_once_it_has_five() -> None:
    hours = [START + pd.Timedelta(days=d, hours=2, minutes=m) for d in range(9) for m in (5, 35)]
    cost = [3.0 if d < 8 else 30.0 for d in range(9) for _ in (5, 35)]  # the ninth night costs 10x
    rows = pd.DataFrame({"workspace_id": "ws1", "event_time": hours, "cost": cost, "dbus": cost,
                         "sku_name": "JOBS_COMPUTE", "job_id": "j1", "job_name": "nightly", "is_tagged": True,
                         "record_id": [f"r{i}" for i in range(len(hours))], "source_table": "fact_usage",
                         "entity_type": "job", "entity_id": "j1"})
    out = replay("cost", rows, watermark_ms("cost", rows["event_time"].max() + pd.Timedelta(hours=6)), CTX["cost"])
    assert set(UNIT_FEATURES) <= set(window_columns("cost"))
    z = out.set_index("window_start")["unit_z"]
    assert z.iloc[:5].isna().all()  # too few finished runs to say what is usual
    assert z.iloc[-1] > 5 and z.iloc[5:-1].abs().max() < 1


def _stream_like(domain: str, keyed: pd.DataFrame, batches: int, ctx: dict) -> pd.DataFrame:
    """What the stream's stateful function computes, micro-batch by micro-batch: state pickled in
    between, rows arriving in event-time order, the watermark trailing the newest row by the
    domain's delay (streaming/scoring.make_state_function)."""
    delay = pd.Timedelta(spec(domain).watermark)
    keyed = keyed.sort_values("event_time", kind="stable").reset_index(drop=True)
    states: dict[tuple, bytes] = {}
    out = []
    newest = None
    for part in np.array_split(np.arange(len(keyed)), batches):
        pdf = keyed.iloc[part]
        # Spark moves the watermark at the end of a batch: this batch closes with the previous one's
        wm = None if newest is None else int((newest - delay).value // 1_000_000)
        for key, g in pdf.groupby(["entity_type", "entity_id"]):
            ks = windows.KeyState.loads(states[key]) if key in states else windows.KeyState(*key)
            windows.accumulate(domain, ks, g)
            if wm is not None:
                for c in windows.close_windows(domain, ks, wm, ctx):
                    out.append({"entity_type": key[0], "entity_id": key[1], "window_start": c["window_start"],
                                **c["features"]})
            states[key] = ks.dumps()
        newest = pdf["event_time"].max()
    wm = int((newest - delay).value // 1_000_000)  # the no-data batch after the last one
    for key, blob in states.items():
        ks = windows.KeyState.loads(blob)
        for c in windows.close_windows(domain, ks, wm, ctx):
            out.append({"entity_type": key[0], "entity_id": key[1], "window_start": c["window_start"],
                        **c["features"]})
    return pd.DataFrame(out)


@pytest.mark.parametrize("domain", BLENDING)
def test_batch_replay_and_stream_give_equal_features_for_the_same_rows(domain: str) -> None:
    keyed = ROWS[domain]()
    batch = replay(domain, keyed, watermark_ms(domain, keyed["event_time"].max()), CTX[domain])
    stream = _stream_like(domain, keyed, batches=9, ctx=CTX[domain])
    stream["window_start"] = pd.to_datetime(stream["window_start"], unit="ms")
    key = ["entity_type", "entity_id", "window_start"]
    assert len(stream) == len(batch)
    merged = batch.merge(stream, on=key, suffixes=("", "_stream"), validate="one_to_one")
    assert len(merged) == len(batch)
    for c in window_columns(domain):
        if c not in stream.columns:  # a feature of key types these rows lack (a job's runs)
            assert merged[c].isna().all(), c
            continue
        a, b = merged[c], merged[f"{c}_stream"]
        if window_columns(domain)[c] == "double":
            np.testing.assert_allclose(a.to_numpy(float), pd.to_numeric(b).to_numpy(float), rtol=1e-9,
                                       equal_nan=True, err_msg=c)
        else:
            assert (a.fillna("") == b.fillna("").astype(str)).all(), c


def test_one_unit_per_feature_untagged_cost_is_a_percent() -> None:
    out = replay("cost", _cost_rows(), watermark_ms("cost", _cost_rows()["event_time"].max()), CTX["cost"])
    pct = out["untagged_cost_pct"]
    assert pct.between(0, 100).all() and pct.max() > 1.0  # percent, as the rules and features/cost.py say
    assert "percent (0-100)" in spec("cost").rule_columns["untagged_cost_pct"]


def test_a_row_enters_its_window_only_if_it_arrived_before_the_window_closed() -> None:
    # Hourly billing rows ingested the same day, over three days; the cost watermark is 3 hours.
    hours = pd.date_range(START, periods=72, freq="h")
    rows = pd.DataFrame({"usage_start_time": hours, "ingestion_date": hours.normalize()})
    closed = closing_arrival(rows.groupby("usage_start_time")["ingestion_date"].min(), spec("cost").watermark)
    # 19:00's window ends at 20:00 and closes once a row of 23:00 or later arrives (that day);
    # 20:00's needs a row of 00:00 the next day (ingested then); the last hours never close.
    assert closed[START + pd.Timedelta(hours=19)] == START
    assert closed[START + pd.Timedelta(hours=20)] == START + pd.Timedelta(days=1)
    assert closed.iloc[-4:].isna().all() and closed.iloc[:-4].notna().all()

    # A correction of 10:00 on day 0 ingested three days later: late. One ingested the same day, or
    # a row that says nothing about its arrival: in time.
    late = {"usage_start_time": START + pd.Timedelta(hours=10), "ingestion_date": START + pd.Timedelta(days=3)}
    same_day = late | {"ingestion_date": START}
    unknown = late | {"ingestion_date": pd.NaT}
    extra = pd.DataFrame([late, same_day, unknown])
    ok = in_time(pd.concat([rows, extra], ignore_index=True), "usage_start_time", "ingestion_date",
                 spec("cost").watermark)
    assert ok.iloc[:len(rows)].all()
    assert ok.iloc[len(rows):].tolist() == [False, True, True]
    # 20:00's row ingested the next day is in time: its window had not closed before then
    next_day = pd.DataFrame([{"usage_start_time": START + pd.Timedelta(hours=20),
                              "ingestion_date": START + pd.Timedelta(days=1)}])
    assert in_time(pd.concat([rows, next_day], ignore_index=True), "usage_start_time", "ingestion_date",
                   "3 hours").iloc[-1]


def test_a_late_row_makes_a_revision_of_its_window_and_an_in_time_row_does_not() -> None:
    keyed = _cost_rows()
    # Billing rows ingested on the day of their hour (in time), but for one SQL row of hour 30,
    # ingested three days later (after every wait but the final one's), and one jobs row of hour
    # 40, ingested the next day (late for the stream, in time for the one-day revision).
    keyed["arrival"] = keyed["event_time"].dt.normalize()
    late3 = keyed["record_id"] == "r30-SQL_COMPUTE-0"
    late1 = keyed["record_id"] == "r40-JOBS_COMPUTE-0"
    keyed.loc[late3, "arrival"] += pd.Timedelta(days=3)
    keyed.loc[late1, "arrival"] += pd.Timedelta(days=1)
    out = replay_revisions("cost", keyed, "arrival", CTX["cost"])
    h30, h40 = START + pd.Timedelta(hours=30), START + pd.Timedelta(hours=40)
    revised = out[out["revision"] > 0]
    assert sorted(zip(revised["entity_id"], revised["window_start"], revised["revision"], strict=True)) == [
        ("ws1", h30, 3), ("ws1", h40, 1), ("ws1:JOBS_COMPUTE", h40, 1), ("ws1:SQL_COMPUTE", h30, 3)]
    # revision 0 is the windows as the stream closed them: the replay of the in-time rows
    at_close = out[out["revision"] == 0]
    last = keyed["event_time"].max()
    plain = replay("cost", keyed[~(late3 | late1)], watermark_ms("cost", last), CTX["cost"])
    assert len(at_close) == len(plain)
    merged = plain.merge(at_close, on=["entity_type", "entity_id", "window_start"], suffixes=("", "_0"))
    np.testing.assert_allclose(merged["value"], merged["value_0"], rtol=1e-12)
    # a revision's spend includes its late row
    value = out.set_index(["entity_id", "window_start", "revision"])["value"]
    for row, hour, rev in ((late3, h30, 3), (late1, h40, 1)):
        cost = float(keyed.loc[row & (keyed["entity_type"] == "workspace"), "cost"].iloc[0])
        sku = f"ws1:{keyed.loc[row, 'sku_name'].iloc[0]}"
        for key in ("ws1", sku):
            assert value[(key, hour, rev)] == pytest.approx(value[(key, hour, 0)] + cost, rel=1e-9)


def test_cost_state_kept_as_a_deque_of_hours_goes_on_with_the_same_features() -> None:
    """Cost keys saved before the hourly history became arrays hold it as a deque of
    (start ms, spend): converted on first use, the features are those of a key that never left."""
    from collections import deque

    from health_monitor.streaming.windows.cost import _cost_features

    rng = np.random.default_rng(3)
    start = int(START.value // 1_000_000)
    hours = np.cumsum(rng.choice([1, 1, 2, 7, 24], 900)) * windows.HOUR_MS + start
    kept, old = windows.KeyState("workspace", "ws1"), None
    for i, t in enumerate(hours.tolist()):
        acc = {"cost": float(rng.lognormal(1, 1)), "skus": {}, "jobs": {}}
        if i == 600:  # the same key as older code would have saved it
            old = windows.KeyState.loads(kept.dumps())
            old.history["hourly"] = deque(zip(old.history.pop("hourly_ms").tolist(),
                                              old.history.pop("hourly_usd").tolist(), strict=True))
        got = _cost_features(kept, t, dict(acc), {})
        if old is not None:
            assert repr(_cost_features(old, t, dict(acc), {})) == repr(got)
    assert "hourly" not in old.history and len(old.history["hourly_ms"]) == len(kept.history["hourly_ms"]) > 100
