"""The bucketed layout writes what the per-key layout writes, on the same rows.

Both state functions run for real (pandas only), micro-batch by micro-batch, with
:class:`~health_monitor.streaming.catchup.BacklogState` as the GroupState: state pickled in
between, each function called when Spark would call it (a group with rows, or one whose
event-time timeout is behind the watermark), the watermark trailing the newest row of the
previous batch by the domain's delay.
"""

from __future__ import annotations

import pickle
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from health_monitor.detectors.multivariate import MultivariateDetector
from health_monitor.detectors.vectorized import VectorMultivariateDetector
from health_monitor.domains import spec
from health_monitor.streaming import bucketed, windows
from health_monitor.streaming.bucketed import BucketScorer, decode_key, make_bucket_state_function, new_layout
from health_monitor.streaming.catchup import HANDOVER, BacklogState, score_backlog_key
from health_monitor.streaming.scoring import HEARTBEAT, make_state_function

START = pd.Timestamp("2026-10-05 00:00")  # a Monday
BUCKETS = 3
DATA = Path(__file__).parents[1] / "data" / "bucketed"


def _cost_rows(days: int = 6, seed: int = 5) -> pd.DataFrame:
    """Usage rows of two workspaces keyed as workspace, workspace x SKU and job (runs)."""
    rng = np.random.default_rng(seed)
    rows = []
    for h in range(days * 24):
        for ws in ("ws1", "ws2"):
            for sku, base in (("JOBS_COMPUTE", 6.0), ("SQL_COMPUTE", 2.0)):
                cost = base * (1 + 0.4 * np.sin(2 * np.pi * h / 24)) * rng.uniform(0.8, 1.2)
                if h in (80, 120) and sku == "SQL_COMPUTE":
                    cost *= 15
                job = f"{ws}-j{h % 2}" if sku == "JOBS_COMPUTE" else None
                rows.append({"workspace_id": ws, "event_time": START + pd.Timedelta(hours=h, minutes=int(rng.integers(60))),
                             "cost": cost, "dbus": cost * 2, "sku_name": sku, "job_id": job,
                             "job_name": f"etl_{job}" if job else None, "job_run_id": f"{job}-{h // 5}" if job else None,
                             "is_tagged": bool(rng.random() < 0.7), "record_id": f"r{h}-{ws}-{sku}",
                             "source_table": "fact_usage"})
    base = pd.DataFrame(rows)
    parts = [base.assign(entity_type="workspace", entity_id=base["workspace_id"]),
             base.assign(entity_type="workspace_sku", entity_id=base["workspace_id"] + ":" + base["sku_name"])]
    jobs = base[base["job_id"].notna()]
    parts.append(jobs.assign(entity_type="job", entity_id=jobs["job_id"]))
    return pd.concat(parts, ignore_index=True)


#: What a lineage row of the security input carries besides its user, time, table and statement.
LINEAGE = {"source": "lineage", "ip": None, "export_bytes": None, "is_read": True, "source_table": "fact_table_lineage",
           **dict.fromkeys(("is_login", "is_failed", "is_admin", "is_grant", "is_self_grant", "is_export"), False)}


def _security_rows(users: int = 7, days: int = 9, seed: int = 7) -> pd.DataFrame:
    """Audit and lineage rows of a few users over enough hours for the detector's warm-up, its
    trees' first windows and its calibrator's tail (bursts late in the run)."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(users):
        user = f"user{u}@corp.com" if u % 3 else f"{u}d1c0e7a-service"
        for h in range(days * 24):
            if rng.random() < 0.15:
                continue
            t = START + pd.Timedelta(hours=h, minutes=int(rng.integers(0, 58)))
            burst = h > 150 and (h + u) % 29 == 0
            for i in range(1 + int(rng.poisson(2)) + (25 if burst else 0)):
                rows.append({"entity_id": user, "workspace_id": f"ws{u % 2}", "event_time": t, "source": "audit",
                             "ip": f"10.{u}.{h // 40}.{i % 5}", "is_login": i % 2 == 0,
                             "is_failed": bool(rng.random() < (0.6 if burst else 0.05)),
                             "is_admin": (h + i) % 11 == 0, "is_grant": h % 13 == 0 and i == 0,
                             "is_self_grant": burst and i == 0, "is_export": (h + i) % 9 == 0 or burst,
                             "export_bytes": float(rng.integers(1, 5)) * (1e10 if burst else 1e7),
                             "table_name": None, "is_read": None, "is_sensitive": None, "statement_id": None,
                             "read_bytes": None, "source_table": "fact_audit_events"})
            rows.append({**LINEAGE, "entity_id": user, "workspace_id": f"ws{u % 2}",
                         "event_time": t + pd.Timedelta(minutes=1), "is_sensitive": h % 6 == 0,
                         "table_name": "main.hr.employees_pii" if h % 6 == 0 else f"main.sales.t{h % 4}",
                         "statement_id": f"s{u}-{h}", "read_bytes": float(rng.integers(1, 50)) * 1e6})
    return pd.DataFrame(rows).assign(entity_type="user")


def _reliability_rows(jobs: int = 6, days: int = 9, seed: int = 3) -> pd.DataFrame:
    """Finished runs of a few jobs, hourly, with failure streaks, retries and slow runs."""
    rng = np.random.default_rng(seed)
    rows = []
    for j in range(jobs):
        for h in range(days * 24):
            if rng.random() < 0.1:
                continue
            fail = rng.random() < 0.08 or (h > 160 and (h + j) % 37 < 3)
            dur = 600 * (1 + j) * rng.lognormal(0, 0.15) * (6 if (h + j) % 53 == 0 else 1)
            rows.append({"entity_id": f"job{j}", "workspace_id": f"ws{j % 2}",
                         "event_time": START + pd.Timedelta(hours=h, minutes=int(rng.integers(0, 58))),
                         "run_id": f"run{j}-{h}", "job_name": f"nightly_{j}",
                         "result_state": "FAILED" if fail else "SUCCEEDED", "is_failure": bool(fail),
                         "is_retry": bool(fail and rng.random() < 0.3), "duration_s": dur,
                         "wait_s": float(rng.integers(0, 60)), "termination_code": "RUN_EXECUTION_ERROR" if fail else None,
                         "source_table": "fact_job_run_timeline"})
    return pd.DataFrame(rows).assign(entity_type="job")


ROWS = {"cost": _cost_rows, "security": _security_rows, "reliability": _reliability_rows}
CTX = {"cost": {"budgets": {"ws1": 4000.0}}, "security": {}, "reliability": {"sla": {("ws0", "job0"): 700.0}}}


def _bucket(key: tuple) -> int:
    return zlib.crc32(f"{key[0]}|{key[1]}".encode()) % BUCKETS


def _play(fn, group_of, batches: list[tuple[pd.DataFrame | None, int]], states: dict | None = None) -> pd.DataFrame:  # noqa: ANN001
    """Micro-batches through a state function, grouped by ``group_of(key)``; a group is called
    when it has rows or its timeout is behind the batch's watermark (as Spark calls it).
    ``states``: each group's :class:`BacklogState`, to start from and left as the play ends."""
    states = {} if states is None else states
    out = []
    for rows, wm in batches:
        groups: dict = {}
        if rows is not None:
            for key, g in rows.groupby(["entity_type", "entity_id"], sort=True):
                groups.setdefault(group_of(key), []).append(g)
        due = set(groups) | {g for g, st in states.items() if st.timeout_ms is not None and st.timeout_ms < wm}
        for g in sorted(due, key=str):
            st = states.setdefault(g, BacklogState(wm))
            st.watermark_ms = wm
            st.timeout_ms = None  # each call sets it again (or leaves none)
            key = g if isinstance(g, tuple) else (g,)
            chunk = pd.concat(groups[g], ignore_index=True) if g in groups else None
            out += [f for f in fn(key, iter([] if chunk is None else [chunk]), st) if f is not None and not f.empty]
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


def _batches(keyed: pd.DataFrame, domain: str, n: int) -> list[tuple[pd.DataFrame | None, int]]:
    """Rows in event-time order cut into ``n`` micro-batches, then a no-data batch."""
    delay = pd.Timedelta(spec(domain).watermark)
    keyed = keyed.sort_values("event_time", kind="stable").reset_index(drop=True)
    out, wm = [], 0
    for part in np.array_split(np.arange(len(keyed)), n):
        rows = keyed.iloc[part]
        out.append((rows, wm))
        wm = int((rows["event_time"].max() - delay).value // 1_000_000)
    out.append((None, wm))
    return out


def _by_window(frame: pd.DataFrame, kind: str) -> pd.DataFrame:
    f = frame[frame["kind"] == kind].copy()
    return f.sort_values(["entity_type", "entity_id", "window_start", "window_end"], kind="stable").reset_index(drop=True)


def _assert_same(got: pd.DataFrame, want: pd.DataFrame) -> None:
    for kind in ("score", "prior"):
        g, w = _by_window(got, kind), _by_window(want, kind)
        assert len(g) == len(w), kind
        np.testing.assert_allclose(g["score"].to_numpy(float), w["score"].to_numpy(float), rtol=0, atol=1e-9)
        np.testing.assert_allclose(g["expected"].to_numpy(float), w["expected"].to_numpy(float), rtol=1e-9,
                                   equal_nan=True)
        for c in ("entity_type", "entity_id", "workspace_id", "window_start", "window_end", "model_name",
                  "model_version", "features", "evidence", "domain"):
            assert g[c].tolist() == w[c].tolist(), (kind, c)


@pytest.mark.parametrize("domain", ["cost", "security", "reliability"])
def test_bucketed_layout_writes_the_per_key_windows_scores_evidence_and_priors(domain: str) -> None:
    keyed = ROWS[domain]()
    batches = _batches(keyed, domain, 7)
    per_key = _play(make_state_function(domain, CTX[domain]), lambda k: k, batches)
    bucketed = _play(make_bucket_state_function(domain, CTX[domain]), _bucket, batches)
    _assert_same(bucketed, per_key)
    scores = per_key.loc[per_key["kind"] == "score", "score"]
    assert len(scores) > 200 and scores.max() >= 0.8, "the comparison must reach the detectors' alarm tail"
    assert (per_key["kind"] == "prior").any()


def _decoded(domain: str, blob: bytes) -> tuple:
    """A bucket blob's state, every key decoded, and the detector rows of its keys stacked."""
    scorer = BucketScorer(domain)
    bs = scorer.load(blob)
    keys, packed = {}, {}
    for k, b in bs.blobs.items():
        keys[k], packed[k] = decode_key(b, bs.dicts)
    return bs, keys, scorer.scoring(sorted(keys), packed)


def test_a_bucket_keeps_each_key_apart_and_its_detector_row_as_packed_arrays() -> None:
    keyed = _security_rows(users=5, days=3)
    st = BacklogState(0)
    fn = make_bucket_state_function("security", CTX["security"])
    list(fn((0,), iter([keyed]), st))
    wm = int((keyed["event_time"].max() - pd.Timedelta(hours=1)).value // 1_000_000)
    st.watermark_ms = wm
    list(fn((0,), iter([]), st))
    bs, keys, sc = _decoded("security", st.blob)
    assert isinstance(sc.vec, VectorMultivariateDetector) and sc.vec.keys == 5 and len(bs.blobs) == 5
    assert all(ks.detector is None for ks in keys.values())  # no per-key pickled trees
    assert bs.timeouts == {k: windows.next_timeout_ms(ks) for k, ks in keys.items()}
    assert st.timeout_ms == min(bs.timeouts.values())
    assert (sc.vec.n_ > 24).all()


def test_a_call_decodes_and_rewrites_only_the_keys_it_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cost of a call follows the keys it touches: a bucket-mate with no rows, handover or due
    timeout stays as its bytes, neither unpickled nor re-encoded."""
    keyed = _security_rows(users=6, days=2)
    first = keyed[keyed["event_time"] < START + pd.Timedelta(days=1)]
    st = BacklogState(0)
    fn = make_bucket_state_function("security", CTX["security"])
    list(fn((0,), iter([first]), st))
    before = BucketScorer("security").load(st.blob)
    user = first["entity_id"].iloc[0]
    # one user's next rows; the watermark stays where nobody's window can close
    later = keyed[(keyed["entity_id"] == user) & (keyed["event_time"] >= START + pd.Timedelta(days=1))].head(3)
    calls = []
    real = bucketed.decode_key
    monkeypatch.setattr(bucketed, "decode_key", lambda b, d: calls.append(b) or real(b, d))
    list(fn((0,), iter([later]), st))
    after = BucketScorer("security").load(st.blob)
    assert len(calls) == 1
    changed = {k for k in after.blobs if after.blobs[k] != before.blobs[k]}
    assert changed == {("user", user)}
    assert len(after.blobs) == 6


def _per_key_after_four(domain: str) -> tuple[list, pd.DataFrame]:
    """The 7 micro-batches of the bucket fixtures, and what the per-key layout writes for the last 3
    after playing the first 4 (the fixtures hold their buckets at that point)."""
    batches = _batches(ROWS[domain](), domain, 7)
    per_key_fn = make_state_function(domain, CTX[domain])
    per_key: dict = {}
    _play(per_key_fn, lambda k: k, batches[:4], per_key)
    return batches, _play(per_key_fn, lambda k: k, batches[4:], per_key)


@pytest.mark.parametrize("domain", ["security", "cost"])
def test_a_checkpoint_of_the_first_bucketed_form_goes_on_as_the_per_key_layout_would(domain: str) -> None:
    """Bucket blobs written by the first bucketed form (main at e594273: every key's KeyState and
    one vectorized detector pickled and compressed whole; tests/data/bucketed/first_form.pkl holds
    its buckets after 4 of these 7 micro-batches) are read, each key's row taken out of the old
    detector, and written back in today's form; the windows, scores and priors that follow are
    the per-key layout's."""
    with open(DATA / "first_form.pkl", "rb") as f:
        first = pickle.load(f)[domain]  # noqa: S301 - the repository's own fixture
    batches, want = _per_key_after_four(domain)
    states = {}
    for g, (blob, timeout) in first.items():
        assert blob[:1] == b"\x78"  # the first form: a zlib stream
        states[g] = BacklogState(0)
        states[g].blob, states[g].timeout_ms = blob, timeout
    got = _play(make_bucket_state_function(domain, CTX[domain]), _bucket, batches[4:], states)
    _assert_same(got, want)
    assert (want["kind"] == "score").sum() > 20
    assert all(st.blob[:1] == b"\x80" for st in states.values())  # today's form from then on
    if domain == "security":
        _, keys, sc = _decoded(domain, states[0].blob)
        assert (sc.vec.n_ > 50).all(), "the old detector's learning was carried over, not restarted"


def test_heartbeats_alone_leave_no_bucket_state() -> None:
    st = BacklogState(0)
    beat = pd.DataFrame({"entity_type": [HEARTBEAT], "entity_id": [HEARTBEAT], "event_time": [START]})
    assert list(make_bucket_state_function("security", {})((1,), iter([beat]), st)) == []
    assert st.blob is None


@pytest.mark.parametrize("domain", ["security", "cost"])
def test_a_catch_ups_per_key_states_hand_over_into_buckets(domain: str) -> None:
    """The catch-up's batch path writes per-key states; the bucketed stream adopts them (the
    multivariate detector's learned state copied into the key's row) and goes on exactly as
    a per-key stream would."""
    keyed = ROWS[domain]()
    seam = keyed["event_time"].min() + pd.Timedelta(days=5, hours=3)
    backlog, after = keyed[keyed["event_time"] < seam], keyed[keyed["event_time"] >= seam]
    delay = pd.Timedelta(spec(domain).watermark)
    w_backlog = int((backlog["event_time"].max() - delay).value // 1_000_000)
    per_key_fn = make_state_function(domain, CTX[domain])
    handed = []
    for key, rows in backlog.groupby(["entity_type", "entity_id"]):
        done = score_backlog_key(per_key_fn, key, rows, w_backlog)
        handed.append({"entity_type": key[0], "entity_id": key[1], "event_time": backlog["event_time"].max(),
                       HANDOVER: done.loc[done["kind"] == "state", "state"].iloc[0]})
    later = _batches(after, domain, 3)
    # the stream's first batch: its first rows after the seam and every handed-over state
    plays = [(pd.concat([later[0][0].assign(**{HANDOVER: None}), pd.DataFrame(handed)], ignore_index=True), 0),
             *later[1:]]
    want = _play(per_key_fn, lambda k: k, plays)
    got = _play(make_bucket_state_function(domain, CTX[domain]), _bucket, plays)
    _assert_same(got, want)
    assert (want["kind"] == "score").sum() > 50


def test_vectorized_rows_loaded_from_per_key_detectors_score_as_they_would() -> None:
    feats = ["a", "b"]
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"timestamp": pd.date_range("2026-01-01", periods=400, freq="h"),
                          "a": rng.poisson(4, 400).astype(float), "b": rng.lognormal(0, 1, 400)})
    frame.loc[350, "a"] = 60.0
    det = MultivariateDetector(feats, log_features=("b",))
    det.score_learn(frame.iloc[:300])  # past the trees' windows and the calibrator's first fits
    vec = VectorMultivariateDetector(0, feats, log_features=("b",))
    row = vec.add_keys(2)
    vec.load_key(row + 1, det)
    want = det.score_learn(frame.iloc[300:].reset_index(drop=True))
    values = frame.iloc[300:][feats].to_numpy(float)[None]
    s, e, ev, dr = vec.score_learn(values, np.array([100]), np.array([row + 1]))
    np.testing.assert_allclose(s[0], want.score, rtol=0, atol=1e-9)
    np.testing.assert_allclose(e[0], want.expected, rtol=1e-12, equal_nan=True)
    assert ev[0] == want.evidence and dr[0] == want.drivers
    assert want.score.max() >= 0.8
    assert vec.n_[row] == 0  # the other new row is untouched


def test_an_unknown_detector_version_in_a_bucket_starts_its_rows_afresh() -> None:
    keyed = _security_rows(users=2, days=2)
    st = BacklogState(0)
    fn = make_bucket_state_function("security", CTX["security"])
    list(fn((0,), iter([keyed]), st))
    st.watermark_ms = int((keyed["event_time"].max() - pd.Timedelta(hours=1)).value // 1_000_000)
    list(fn((0,), iter([]), st))
    bs = BucketScorer("security").load(st.blob)
    assert (_decoded("security", st.blob)[2].vec.n_ > 0).all()
    bs.tag = "multivariate_robust_hst:0"
    st.blob = bs.dumps()
    list(fn((0,), iter([]), st))
    again, keys, sc = _decoded("security", st.blob)
    assert again.tag == f"{MultivariateDetector.name}:{MultivariateDetector.version}"
    assert (sc.vec.n_ == 0).all() and all(ks.history.get("detector_reset") for ks in keys.values())


def test_new_checkpoints_get_the_bucketed_layout_unless_asked_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    from health_monitor.errors import HealthMonitorError

    monkeypatch.delenv("HEALTH_MONITOR_STATE_LAYOUT", raising=False)
    assert new_layout(4) == {"layout": "bucketed", "buckets": 16}
    monkeypatch.setenv("HEALTH_MONITOR_STATE_LAYOUT", "per-key")
    assert new_layout(4) == {"layout": "per-key"}
    monkeypatch.setenv("HEALTH_MONITOR_STATE_LAYOUT", "sharded")
    with pytest.raises(HealthMonitorError, match="unknown state layout 'sharded'"):
        new_layout(4)
    monkeypatch.delenv("HEALTH_MONITOR_STATE_LAYOUT")
    monkeypatch.setenv("HEALTH_MONITOR_STATE_BUCKETS", "64")
    assert new_layout(4) == {"layout": "bucketed", "buckets": 64}
    assert new_layout(4, buckets=8) == {"layout": "bucketed", "buckets": 8}  # stream start --state-buckets
    monkeypatch.setenv("HEALTH_MONITOR_STATE_BUCKETS", "0")
    with pytest.raises(HealthMonitorError, match="invalid bucket count '0'"):
        new_layout(4)


def test_a_checkpoint_keeps_its_layout_and_one_from_before_layouts_is_per_key(tmp_path) -> None:  # noqa: ANN001
    from health_monitor import checkpoints

    fresh = tmp_path / "hm_security"
    assert checkpoints.read_layout(fresh) is None
    assert checkpoints.state_layout(fresh, {"layout": "bucketed", "buckets": 8}) == {"layout": "bucketed", "buckets": 8}
    # recorded: a later start with other defaults keeps it
    assert checkpoints.state_layout(fresh, {"layout": "per-key"})["buckets"] == 8
    old = tmp_path / "hm_cost"
    (old / "offsets").mkdir(parents=True)
    (old / "offsets" / "0").write_text("v1")
    assert checkpoints.read_layout(old)["layout"] == "per-key"
    assert checkpoints.state_layout(old, {"layout": "bucketed", "buckets": 8}) == {"layout": "per-key"}
    assert checkpoints.read_layout(old) == {"layout": "per-key"}


def test_a_window_whose_end_the_watermark_reaches_closes_in_that_batch_without_rows_of_its_key() -> None:
    """Spark calls a key without rows only once its timeout is *behind* the watermark; the
    timeout is one ms before the oldest open window's end, so a window closes in the batch whose
    watermark reaches its end (not a batch later), and a bucket-mate's rows close it no earlier."""
    keyed = _reliability_rows(jobs=2, days=1)
    hour = (keyed["event_time"] - START) // pd.Timedelta(hours=1)
    # job0 has one open window, ending at `end`; job1 has rows in every batch
    first = keyed[((keyed["entity_id"] == "job0") & (hour == 2)) | ((keyed["entity_id"] == "job1") & (hour < 3))]
    assert (first["entity_id"] == "job0").any()
    end = int((START + pd.Timedelta(hours=3)).value // 1_000_000)  # a window end
    job1 = keyed[(keyed["entity_id"] == "job1") & (keyed["event_time"] >= START + pd.Timedelta(hours=4))].head(1)
    plays = [(first, 0), (job1, end - 1), (None, end)]
    want = _play(make_state_function("reliability", {}), lambda k: k, plays)
    got = _play(make_bucket_state_function("reliability", {}), lambda k: 0, plays)
    _assert_same(got, want)
    last = START + pd.Timedelta(hours=3)
    job0 = (want["entity_id"] == "job0") & (want["kind"] == "score")
    assert (want.loc[job0, "window_end"] == last).sum() == 1
    for fn, group_of in ((make_state_function("reliability", {}), lambda k: k),
                         (make_bucket_state_function("reliability", {}), lambda k: 0)):
        two = _play(fn, group_of, plays[:2])
        assert not ((two["entity_id"] == "job0") & (two["kind"] == "score")).any(), "job0's window waits"
        assert ((two["entity_id"] == "job1") & (two["kind"] == "score")).any()
        states: dict = {}
        _play(fn, group_of, plays[:2], states)
        three = _play(fn, group_of, plays[2:], states)  # the no-data batch at watermark = end
        assert ((three["entity_id"] == "job0") & (three["kind"] == "score") & (three["window_end"] == last)).any()


def test_a_handed_over_detector_that_cannot_be_loaded_relearns_as_per_key() -> None:
    keyed = _security_rows(users=1, days=3)
    key = ("user", keyed["entity_id"].iloc[0])
    ks = windows.KeyState(*key)
    det = spec("security").make_detector()
    det.score_learn(pd.DataFrame({"timestamp": pd.date_range(START, periods=150, freq="h"),
                                  **{f: np.arange(150.0) % 7 for f in det.features}}))
    del det.__dict__["spread_"]  # state of code that kept no spread
    ks.detector = det.get_state()
    ks.history["detector_version"] = f"{det.name}:{det.version}"
    st = BacklogState(0)
    fn = make_bucket_state_function("security", {})
    beat = pd.DataFrame([{"entity_type": key[0], "entity_id": key[1], "event_time": START, HANDOVER: ks.dumps()}])
    list(fn((0,), iter([beat]), st))
    _, keys, sc = _decoded("security", st.blob)
    assert keys[key].history["detector_reset"] is True
    assert sc.vec.n_[sc.rows[key]] == 0 and np.isnan(sc.vec.center_[sc.rows[key]]).all()


def test_stream_start_state_buckets_sets_the_count_of_new_checkpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    from health_monitor.cli import build_parser
    from health_monitor.errors import HealthMonitorError

    class Stop(Exception):
        pass

    class Ctx:
        @property
        def lake(self) -> None:
            raise Stop  # the option is applied before the stream starts: no need to start one

    monkeypatch.delenv("HEALTH_MONITOR_STATE_LAYOUT", raising=False)
    monkeypatch.setenv("HEALTH_MONITOR_STATE_BUCKETS", "")
    args = build_parser().parse_args(["stream", "start", "--state-buckets", "48"])
    with pytest.raises(Stop):
        args.func(args, Ctx())
    assert new_layout(4) == {"layout": "bucketed", "buckets": 48}
    args = build_parser().parse_args(["stream", "start", "--state-buckets", "-1"])
    with pytest.raises(HealthMonitorError, match="invalid bucket count"):
        args.func(args, Ctx())


@pytest.mark.parametrize("domain", ["cost", "security"])
def test_a_bucket_of_mains_second_form_goes_on_as_the_per_key_layout_would(domain: str) -> None:
    """Bucket blobs of today's form written by main at d3f7385 (tests/data/bucketed/second_form.pkl:
    its buckets after 4 of these 7 micro-batches) go on as the per-key layout would: cost's keys
    kept their UnivariateDetector pickled in the KeyState (scored key by key then), and each
    becomes a packed row of the vectorized detector when a call first touches it; security's
    packed rows of the whole-row form are read and rewritten per array."""
    with open(DATA / "second_form.pkl", "rb") as f:
        old = pickle.load(f)[domain]  # noqa: S301 - the repository's own fixture
    batches, want = _per_key_after_four(domain)
    states = {}
    for g, (blob, timeout) in old.items():
        bs = BucketScorer(domain).load(blob)
        records = [decode_key(b, bs.dicts) for b in bs.blobs.values()]
        if domain == "cost":
            assert bs.tag is None and all(ks.detector is not None and row is None for ks, row in records)
        else:
            assert all(isinstance(row, bytes) for _, row in records)
        states[g] = BacklogState(0)
        states[g].blob, states[g].timeout_ms = blob, timeout
    got = _play(make_bucket_state_function(domain, CTX[domain]), _bucket, batches[4:], states)
    _assert_same(got, want)
    assert (want["kind"] == "score").sum() > 20
    for st in states.values():
        bs, keys, sc = _decoded(domain, st.blob)
        assert bs.tag == BucketScorer(domain).tag
        assert all(ks.detector is None for ks in keys.values())
        assert all(isinstance(decode_key(b, bs.dicts)[1], tuple) for b in bs.blobs.values())
        assert (sc.vec.n_ > 50).all(), "what the keys had learned was carried over, not restarted"
