"""The vectorized window accumulators fold rows exactly as the per-window form they replaced.

``windows.accumulate`` used to run the domain's accumulator once per key-hour on a pandas frame
of that hour's rows (a groupby per window); it now folds all of a call's rows, all hours at once.
The per-window form is kept here, verbatim, as the reference: on generated rows of each domain
(many rows per window, nulls, ties, restated runs, rows arriving over several calls, late rows),
the accumulators, their key order and value types, and the closed windows' features must be the
same, bit for bit, and so must the pickled state's layout (checkpoints written by the old form
keep restoring and adding up).
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pandas as pd
import pytest

from health_monitor.streaming import windows
from health_monitor.streaming.windows.state import _flag, _ms, _nan, _str

START = pd.Timestamp("2026-11-06 12:00")  # a Friday: the windows span a weekend


# --------------------------------------------------------------------------- the per-window form
def _old_cost(acc: dict, g: pd.DataFrame) -> None:
    acc["cost"] = acc.get("cost", 0.0) + float(g["cost"].sum())
    acc["dbus"] = acc.get("dbus", 0.0) + float(g["dbus"].sum())
    acc["untagged"] = acc.get("untagged", 0.0) + float(g.loc[~_flag(g["is_tagged"]), "cost"].sum())
    skus = acc.setdefault("skus", {})
    for sku, c in g.groupby("sku_name", dropna=True)["cost"].sum().items():
        skus[sku] = skus.get(sku, 0.0) + float(c)
    jobs = acc.setdefault("jobs", {})
    with_job = g[g["job_id"].notna()]
    for (jid, jname), c in with_job.groupby(["job_id", with_job["job_name"].fillna("")])["cost"].sum().items():
        jobs[(jid, jname)] = jobs.get((jid, jname), 0.0) + float(c)
    if "job_run_id" in g.columns and "entity_type" in g.columns and g["entity_type"].iloc[0] == "job":
        runs = acc.setdefault("runs", {})
        for rid, c in g[g["job_run_id"].notna()].groupby("job_run_id")["cost"].sum().items():
            runs[str(rid)] = runs.get(str(rid), 0.0) + float(c)


def _old_sec(acc: dict, g: pd.DataFrame) -> None:
    audit = g[g["source"] == "audit"]
    lineage = g[g["source"] == "lineage"]
    hours = pd.to_datetime(g["event_time"]).dt.hour
    off = (hours < 6) | (hours >= 22)
    dow = pd.to_datetime(g["event_time"]).dt.dayofweek
    for k, v in {
        "events": len(audit),
        "logins": int(audit["is_login"].sum()),
        "failed_logins": int((audit["is_login"] & audit["is_failed"]).sum()),
        "off_hours_events": int(off[audit.index].sum()) if len(audit) else 0,
        "weekend_events": int((dow[audit.index] >= 5).sum()) if len(audit) else 0,
        "admin_actions": int(audit["is_admin"].sum()),
        "off_hours_admin_actions": int((audit["is_admin"] & off[audit.index]).sum()) if len(audit) else 0,
        "grants": int(audit["is_grant"].sum()),
        "self_grants": int(audit["is_self_grant"].sum()),
        "export_count": int(audit["is_export"].sum()),
        "export_bytes": float(audit.loc[audit["is_export"], "export_bytes"].fillna(0).sum()),
    }.items():
        acc[k] = acc.get(k, 0) + v
    acc.setdefault("ips", set()).update(audit["ip"].dropna().tolist())
    acc.setdefault("tables", set()).update(lineage["table_name"].dropna().tolist())
    reads = lineage[_flag(lineage["is_sensitive"]) & _flag(lineage["is_read"])]
    acc["sensitive_reads"] = acc.get("sensitive_reads", 0) + len(reads)
    acc.setdefault("sensitive_tables", set()).update(reads["table_name"].dropna().tolist())
    stm = acc.setdefault("statements", {})
    for sid, b in lineage[lineage["statement_id"].notna()][["statement_id", "read_bytes"]].itertuples(
            index=False):
        stm[sid] = max(stm.get(sid, 0.0), 0.0 if b is None or b != b else float(b))
    wss = acc.setdefault("workspaces", {})
    for ws, n in g["workspace_id"].value_counts().items():
        wss[ws] = wss.get(ws, 0) + int(n)


def _old_rel(acc: dict, g: pd.DataFrame) -> None:
    runs = acc.setdefault("runs", {})
    cols = ["run_id", "event_time", "job_name", "result_state", "is_failure", "is_retry", "duration_s"]
    more = [g[c] if c in g.columns else pd.Series(None, index=g.index, dtype=object)
            for c in ("wait_s", "termination_code")]
    for (run_id, t, name, state, fail, retry, dur), wait, code in zip(
            g[cols].itertuples(index=False), *more, strict=True):
        runs[run_id] = (int(pd.Timestamp(t).value // 1_000_000), name, state, bool(fail),
                        bool(retry), _nan(dur), _nan(wait), _str(code))


OLD = {"cost": _old_cost, "security": _old_sec, "reliability": _old_rel}


def _old_accumulate(domain: str, ks: windows.KeyState, pdf: pd.DataFrame) -> int:
    if pdf.empty:
        return 0
    if ks.workspace_id is None and "workspace_id" in pdf and pdf["workspace_id"].notna().any():
        ks.workspace_id = str(pdf["workspace_id"].dropna().iloc[0])
    starts = (_ms(pdf["event_time"]) // windows.HOUR_MS) * windows.HOUR_MS
    late = starts < ks.closed_until_ms
    for start, g in pdf[~late].groupby(starts[~late]):
        OLD[domain](ks.open.setdefault(int(start), {}), g)
    return int(late.sum())


# --------------------------------------------------------------------------- generated rows
def _times(rng: np.random.Generator, n: int, hours: int) -> pd.Series:
    # several rows per hour, many in some (NumPy sums 8+ values pairwise, pandas' groupby Kahan-style)
    h = rng.integers(0, hours, n)
    h[: n // 4] = rng.integers(0, 3, n // 4)
    return pd.Series(START + pd.to_timedelta(h * 3600 + rng.integers(0, 3600, n), unit="s"))


def _cost_rows(rng: np.random.Generator, n: int, hours: int, entity_type: str) -> pd.DataFrame:
    cost = rng.lognormal(0, 2, n)
    cost[rng.random(n) < 0.05] = np.nan
    job = np.array([f"j{i}" for i in rng.integers(0, 4, n)], dtype=object)
    job[rng.random(n) < 0.3] = None
    name = np.array([f"etl_{j}" if j else None for j in job], dtype=object)
    name[rng.random(n) < 0.3] = None
    sku = np.array(["JOBS", "SQL", "DLT"], dtype=object)[rng.integers(0, 3, n)]
    sku[rng.random(n) < 0.1] = None
    run = np.array([f"r{i}" for i in rng.integers(0, 6, n)], dtype=object)
    run[rng.random(n) < 0.2] = None
    tagged = np.array([True, False, None], dtype=object)[rng.integers(0, 3, n)]
    return pd.DataFrame({"entity_type": entity_type, "entity_id": "k", "workspace_id": "ws1",
                         "event_time": _times(rng, n, hours), "cost": cost, "dbus": rng.random(n) * 7,
                         "sku_name": sku, "job_id": job, "job_name": name, "is_tagged": tagged,
                         "job_run_id": run, "source_table": "fact_usage"})


def _security_rows(rng: np.random.Generator, n: int, hours: int, entity_type: str) -> pd.DataFrame:
    audit = rng.random(n) < 0.6

    def flags(p: float) -> np.ndarray:
        f = np.where(rng.random(n) < p, True, False).astype(object)
        f[rng.random(n) < 0.05] = None  # a null action: the flag is null
        return np.where(audit, f, False)

    tables = np.array(["main.hr.pii_people", "main.sales.t1", "main.sales.t2", None], dtype=object)[
        rng.integers(0, 4, n)]
    sid = np.array([f"s{i}" for i in rng.integers(0, 8, n)], dtype=object)
    sid[rng.random(n) < 0.2] = None
    read_bytes = rng.integers(1, 10**9, n).astype(float)
    read_bytes[rng.random(n) < 0.2] = np.nan
    sens = np.array([True, False, None], dtype=object)[rng.integers(0, 3, n)]
    return pd.DataFrame({
        "entity_type": entity_type, "entity_id": "ann@corp.com",
        "workspace_id": np.array(["ws1", "ws2", "ws3", None], dtype=object)[rng.integers(0, 4, n)],
        "event_time": _times(rng, n, hours), "source": np.where(audit, "audit", "lineage"),
        "ip": np.where(audit & (rng.random(n) < 0.9), [f"10.0.{i}.1" for i in rng.integers(0, 5, n)], None),
        "is_login": flags(0.3), "is_failed": flags(0.2), "is_admin": flags(0.1), "is_grant": flags(0.05),
        "is_self_grant": flags(0.03), "is_export": np.where(audit, rng.random(n) < 0.1, False),
        "export_bytes": np.where(audit & (rng.random(n) < 0.8), rng.random(n) * 1e9, np.nan),
        "table_name": np.where(audit, None, tables), "is_read": np.where(audit, None, rng.random(n) < 0.8),
        "is_sensitive": np.where(audit, None, sens), "statement_id": np.where(audit, None, sid),
        "read_bytes": np.where(audit, np.nan, read_bytes), "source_table": "fact_audit_events"})


def _reliability_rows(rng: np.random.Generator, n: int, hours: int, entity_type: str) -> pd.DataFrame:
    dur = rng.lognormal(6, 0.5, n)
    dur[rng.random(n) < 0.05] = np.nan
    code = np.array(["SUCCESS", "RUN_EXECUTION_ERROR", None], dtype=object)[rng.integers(0, 3, n)]
    frame = pd.DataFrame({
        "entity_type": entity_type, "entity_id": "j1", "workspace_id": "ws1", "event_time": _times(rng, n, hours),
        # some runs restated: the same run id delivered twice
        "run_id": [f"r{i}" for i in rng.integers(0, n * 2 // 3, n)], "job_name": "nightly",
        "result_state": np.array(["SUCCEEDED", "FAILED"], dtype=object)[rng.integers(0, 2, n)],
        "is_failure": rng.random(n) < 0.2, "is_retry": rng.random(n) < 0.1, "duration_s": dur,
        "wait_s": rng.random(n) * 30, "termination_code": code, "source_table": "fact_job_run_timeline"})
    return frame


ROWS = {"cost": _cost_rows, "security": _security_rows, "reliability": _reliability_rows}
ENTITIES = {"cost": ["workspace", "job"], "security": ["user"], "reliability": ["job"]}


def _canon(x: object) -> object:
    """A value's full shape: dict key order, container and scalar types, floats bit for bit."""
    if isinstance(x, dict):
        return ["dict", [(_canon(k), _canon(v)) for k, v in x.items()]]
    if isinstance(x, set | frozenset):
        return ["set", sorted(repr(_canon(v)) for v in x)]
    if isinstance(x, list | tuple):
        return [type(x).__name__, [_canon(v) for v in x]]
    if isinstance(x, float):
        return ["float", "nan" if math.isnan(x) else x.hex()]
    return [type(x).__name__, repr(x)]


def _fold(domain: str, entity_type: str, seed: int, accumulate) -> tuple[list, list]:  # noqa: ANN001
    """Rows in shuffled calls of varying size, windows closed in between (some rows then late);
    returns each call's state and closed windows."""
    rng = np.random.default_rng(seed)
    rows = ROWS[domain](rng, 600, 30, entity_type)
    # rows arrive roughly in time order (some hours late: behind the watermark), shuffled in a call
    arrival = rows["event_time"] + pd.to_timedelta(rng.integers(0, 5 * 3600, len(rows)), unit="s")
    rows = rows.iloc[np.argsort(arrival.to_numpy(), kind="stable")].reset_index(drop=True)
    cuts = np.sort(rng.choice(np.arange(1, len(rows)), 7, replace=False))
    ks = windows.KeyState(entity_type, "k")
    states, closed = [], []
    for part in np.split(np.arange(len(rows)), cuts):
        pdf = rows.iloc[rng.permutation(part)].reset_index(drop=True)
        late = accumulate(domain, ks, pdf)
        states.append(_canon(copy.deepcopy(ks.open)))
        wm = int(_ms(pdf["event_time"]).max()) - 3 * windows.HOUR_MS
        out = windows.close_windows(domain, ks, wm, {"budgets": {"ws1": 1000.0}})
        closed.append((late, _canon(out), _canon(ks.history)))
    return states, closed


CASES = [(d, e, seed) for d in ROWS for e in ENTITIES[d] for seed in (1, 2, 3)]


@pytest.mark.parametrize(("domain", "entity_type", "seed"), CASES)
def test_vectorized_accumulate_equals_the_per_window_form(domain: str, entity_type: str, seed: int) -> None:
    old_states, old_closed = _fold(domain, entity_type, seed, _old_accumulate)
    new_states, new_closed = _fold(domain, entity_type, seed, windows.accumulate)
    assert sum(c[0] for c in old_closed) > 0, "no late rows: the late-row path is not exercised"
    for i, (a, b) in enumerate(zip(old_states, new_states, strict=True)):
        assert a == b, f"{domain}/{entity_type}: accumulators differ after call {i}"
    for i, (a, b) in enumerate(zip(old_closed, new_closed, strict=True)):
        assert a == b, f"{domain}/{entity_type}: closed windows differ after call {i}"


@pytest.mark.parametrize("domain", list(ROWS))
def test_state_folded_by_the_per_window_form_keeps_adding_up(domain: str) -> None:
    """A checkpoint written by the old form (pickled KeyState with open windows) restores, and the
    new form adds the next rows to its windows exactly as the old form would have."""
    rng = np.random.default_rng(9)
    rows = ROWS[domain](rng, 400, 6, ENTITIES[domain][-1]).sort_values("event_time", kind="stable")
    first, second = rows.iloc[:200].reset_index(drop=True), rows.iloc[200:].reset_index(drop=True)
    ks = windows.KeyState(ENTITIES[domain][-1], "k")
    _old_accumulate(domain, ks, first)
    blob = ks.dumps()
    old, new = windows.KeyState.loads(blob), windows.KeyState.loads(blob)
    _old_accumulate(domain, old, second)
    windows.accumulate(domain, new, second)
    assert len(new.open) >= 3
    assert _canon(old.open) == _canon(new.open)
    assert old.dumps() == new.dumps() or _canon(vars(old)) == _canon(vars(new))


def test_state_blobs_are_compressed_and_old_plain_pickles_still_load() -> None:
    import pickle

    rng = np.random.default_rng(4)
    ks = windows.KeyState("user", "ann@corp.com")
    windows.accumulate("security", ks, _security_rows(rng, 300, 48, "user"))
    windows.close_windows("security", ks, int(_ms(pd.Series([START])).max()) + 24 * windows.HOUR_MS, {})
    blob = ks.dumps()
    plain = pickle.dumps(ks, protocol=pickle.HIGHEST_PROTOCOL)  # what checkpoints before hold
    assert len(blob) < len(plain) / 2
    for b in (blob, plain, bytearray(blob)):
        back = windows.KeyState.loads(b)
        assert _canon(vars(back)) == _canon(vars(ks))
