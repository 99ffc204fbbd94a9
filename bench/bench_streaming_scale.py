"""Fair streaming benchmark at estate scale: the engine, the same detectors in plain Python, and river.

Why: ``bench/bench_streaming.py`` compared the engine with a baseline that built a pandas frame
per row (2.6 rows/s), which says nothing about what the work costs. This script measures, in one
run and on rows of the three domains' real shapes (``fact_usage``, ``fact_audit_events``,
``fact_job_run_timeline``):

* ``engine``: the streaming engine end to end per domain, available-now over a backlog of
  ``--engine-rows`` rows in ``--chunks`` Delta commits (one micro-batch each), with a per-batch
  profile: Spark jobs, Delta commits per table, the query's own duration breakdown
  (``addBatch``, ``queryPlanning``, ``walCommit``, ...), seconds per batch;
* ``loop``: the same detectors (``UnivariateDetector`` for cost, ``MultivariateDetector`` for
  security and reliability) fed by a tight plain-Python loop: rows folded into hourly windows in
  dicts (no pandas per row), each key's closed windows scored in one call per key;
* ``vector``: the vectorized forms of the same detectors (``VectorUnivariateDetector``,
  ``VectorMultivariateDetector``, the engine's own) over the same windows without Spark, all
  keys at once; every key's arrays are allocated whole, so at many keys it runs in blocks of
  keys that fit ``--vector-memory-mb`` (the rows split by key into files first, read back
  outside the figures);
* ``hst``: river's Half-Space Trees, ``score_one`` + ``learn_one`` row by row;

for each size in ``--sizes`` (rows) and ``--keys`` (distinct keys). ``--layout`` runs the engine
(and ``--offline-rows``) once per state layout on the same rows: ``per-key`` (one
``applyInPandasWithState`` call per key and batch) and ``bucketed`` (one per bucket of keys,
:mod:`health_monitor.streaming.bucketed`). Every figure carries rows/s,
CPU-seconds per million rows (this process plus its descendants: the Spark JVM and its Python
workers, from /proc, so it is stable on a shared machine where wall time is not) and the load
average at the start and end of the measurement.

Run: ``nice -n 10 .venv/bin/python bench/bench_streaming_scale.py --sizes 100000 1000000 --keys 10000
--engine-rows 100000 --json out.json``. Spark job counts use the driver's status tracker (a local
benchmark, not product code: it needs the classic JVM session, not Spark Connect).
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import itertools
import json
import os
import pickle
import random
import shutil
import tempfile
import threading
import time
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

T0 = datetime(2026, 3, 2)
HOUR_S = 3600
CLK_TCK = os.sysconf("SC_CLK_TCK")
ACTIONS = (("getTable", 0.55), ("login", 0.15), ("runCommand", 0.15), ("downloadResults", 0.05),
           ("updatePermissions", 0.03), ("tokenLogin", 0.05), ("createUser", 0.02))
STATES = (("SUCCEEDED", 0.9), ("FAILED", 0.07), ("TIMED_OUT", 0.03))


# --------------------------------------------------------------------------- CPU accounting
PAGE = os.sysconf("SC_PAGE_SIZE")


def _tree_own_cpu(root: int) -> dict[int, tuple[str, float, int]]:
    """pid -> (kind, own utime + stime in s, resident bytes) for ``root`` and its live descendants."""
    procs: dict[int, tuple[float, int, str, int]] = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                raw = f.read()
        except OSError:
            continue  # exited while we looked
        rest = raw[raw.rfind(")") + 2:].split()
        procs[int(pid)] = ((int(rest[11]) + int(rest[12])) / CLK_TCK, int(rest[1]),
                           raw[raw.find("(") + 1:raw.rfind(")")], int(rest[21]) * PAGE)
    out = {}
    for pid, (c, _, name, rss) in procs.items():
        p = pid
        while p and p != root:
            p = procs[p][1] if p in procs else 0
        if p == root:
            out[pid] = ("driver" if pid == root else "jvm" if name == "java" else "workers", c, rss)
    return out


def _rss_by_kind(tree: dict[int, tuple[str, float, int]]) -> dict[str, int]:
    out = {"driver": 0, "jvm": 0, "workers": 0}
    for kind, _, rss in tree.values():
        out[kind] += rss
    return out


class Meter:
    """Wall seconds, tree CPU seconds and load averages around a block.

    CPU: each process's own CPU, sampled every second by a thread (its own CPU not counted):
    Spark's Python workers and their daemons come and go between queries, and a process that
    exits orphaned is in no live process's reaped-children time (a start/end difference of the
    tree went negative). A process is counted up to its last sample (<= 1 s lost per exit).

    Memory: the peak, over the same 1 s samples, of the resident set of the driver, of the JVM
    and of all Python workers together (issue 16: memory bounded by keys, not by history).
    ``exclude(s)`` takes CPU seconds the driver spent outside the measured work (generating the
    benchmark's rows) out of the driver's figure."""

    def __enter__(self) -> Meter:
        self.load0 = os.getloadavg()[0]
        self.root = os.getpid()
        self.first = _tree_own_cpu(self.root)
        self.last = dict(self.first)
        self.peak_rss = _rss_by_kind(self.first)
        self.sampler_cpu = 0.0
        self.excluded = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        self.t0 = time.perf_counter()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(1.0):
            t0 = time.thread_time()
            tree = _tree_own_cpu(self.root)
            self.last.update(tree)
            self.peak_rss = {k: max(v, self.peak_rss[k]) for k, v in _rss_by_kind(tree).items()}
            self.sampler_cpu += time.thread_time() - t0

    def exclude(self, cpu_s: float) -> None:
        """Take ``cpu_s`` of the driver's CPU out of the figures (work that is not measured)."""
        self.excluded += cpu_s

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.t0
        self._stop.set()
        self._thread.join()
        tree = _tree_own_cpu(self.root)
        self.last.update(tree)
        self.peak_rss = {k: max(v, self.peak_rss[k]) for k, v in _rss_by_kind(tree).items()}
        split = {"driver": 0.0, "jvm": 0.0, "workers": 0.0}
        for pid, (kind, c, _) in self.last.items():
            split[kind] += c - self.first.get(pid, (kind, 0.0, 0))[1]
        split["driver"] -= self.sampler_cpu + self.excluded
        self.split = {k: round(v, 1) for k, v in split.items()}
        self.cpu = sum(split.values())
        self.load1 = os.getloadavg()[0]

    def figures(self, rows: int) -> dict:
        """rows/s (wall), CPU-s per million rows, load at start/end."""
        return {"rows": rows, "wall_s": round(self.wall, 2), "cpu_s": round(self.cpu, 2),
                "rows_per_s": round(rows / self.wall, 1) if self.wall else None,
                "cpu_s_per_m_rows": round(self.cpu / rows * 1e6, 1) if rows else None, "cpu_split_s": self.split,
                "peak_rss_mb": {k: round(v / 2**20) for k, v in self.peak_rss.items()},
                "load": f"{self.load0:.1f}->{self.load1:.1f}"}


# --------------------------------------------------------------------------- row shapes
def _pick(rnd: random.Random, table: tuple) -> str:
    x, acc = rnd.random(), 0.0
    for name, p in table:
        acc += p
        if x < acc:
            return name
    return table[-1][0]


def usage_rows(n: int, keys: int, seed: int = 3) -> list[dict]:
    """``fact_usage`` rows: ``keys`` workspace x SKU series (keys // 3 workspaces), hourly."""
    return list(iter_usage_rows(n, keys, seed))


def iter_usage_rows(n: int, keys: int, seed: int = 3) -> Iterator[dict]:
    """The rows of :func:`usage_rows`, one at a time (memory bounded whatever ``n``)."""
    import bench_streaming  # the same usage shape as the earlier bench

    ws = max(1, keys // 3)
    return itertools.islice(bench_streaming.iter_usage_rows(range(-(-n // (3 * ws))), ws, seed), n)


def audit_rows(n: int, keys: int, seed: int = 5) -> list[dict]:
    """``fact_audit_events`` rows: ``keys`` users, events spread so each user has ~3 per hour."""
    return list(iter_audit_rows(n, keys, seed))


def iter_audit_rows(n: int, keys: int, seed: int = 5) -> Iterator[dict]:
    """The rows of :func:`audit_rows`, one at a time, in event-time order."""
    rnd = random.Random(seed)
    span_s = max(HOUR_S, int(n / keys / 3 * HOUR_S))
    for i in range(n):
        u = rnd.randrange(keys)
        t = T0 + timedelta(seconds=int(i / n * span_s))
        action = _pick(rnd, ACTIONS)
        status = 401 if action.endswith("ogin") and rnd.random() < 0.05 else 200
        yield {"event_id": f"e{i}", "account_id": "acc", "workspace_id": str(1000 + u % 20),
               "event_time": t.isoformat() + "Z", "event_date": t.date().isoformat(),
               "source_ip_address": f"10.{u % 250}.{rnd.randrange(4)}.{rnd.randrange(250)}",
               "user_email": f"user{u}@example.com", "service_name": "unityCatalog" if action == "getTable"
               else "accounts", "action_name": action,
               "request_params": {"full_name_arg": f"main.sales.t{rnd.randrange(50)}"},
               "status_code": status, "is_failed": status >= 400}


def job_run_rows(n: int, keys: int, seed: int = 7) -> list[dict]:
    """Finished ``fact_job_run_timeline`` rows: ``keys`` jobs, ~one run per job per hour."""
    return list(iter_job_run_rows(n, keys, seed))


def iter_job_run_rows(n: int, keys: int, seed: int = 7) -> Iterator[dict]:
    """The rows of :func:`job_run_rows`, one at a time (hour by hour)."""
    rnd = random.Random(seed)
    for i in range(n):
        j = i % keys
        h = i // keys
        dur = int(600 * rnd.uniform(0.8, 1.2) * (5 if rnd.random() < 0.003 else 1))
        start = T0 + timedelta(hours=h, minutes=j % 40)
        end = start + timedelta(seconds=dur)
        state = _pick(rnd, STATES)
        yield {"account_id": "acc", "workspace_id": str(1000 + j % 20), "job_id": str(j),
               "run_id": f"{j}-{h}", "run_name": f"job_{j}", "run_type": "JOB_RUN",
               "trigger_type": "PERIODIC", "is_retry": False,
               "period_start_time": start.isoformat() + "Z", "period_end_time": end.isoformat() + "Z",
               "run_date": start.date().isoformat(), "result_state": state,
               "termination_code": "SUCCESS" if state == "SUCCEEDED" else "RUN_EXECUTION_ERROR",
               "is_success": state == "SUCCEEDED", "is_failure": state != "SUCCEEDED",
               "queue_duration_seconds": 5, "run_duration_seconds": dur, "duration_seconds": dur,
               "period_row_count": 1}


#: domain -> (Gold table, row generator (n, keys) -> iterator of rows).
DOMAIN_ROWS = {"cost": ("fact_usage", iter_usage_rows), "security": ("fact_audit_events", iter_audit_rows),
               "reliability": ("fact_job_run_timeline", iter_job_run_rows)}


def _epoch_s(iso: str) -> float:
    return (datetime.fromisoformat(iso.rstrip("Z")) - datetime(1970, 1, 1)).total_seconds()


#: The baseline's hourly windows close this long after the newest row (the domains' watermarks).
WINDOW_DELAY_S = {"cost": 3 * HOUR_S, "security": HOUR_S, "reliability": HOUR_S}
FEATURES = {"security": ["logins", "failed_logins", "tables_touched"],
            "reliability": ["duration_ratio", "failures", "retries"]}


def fold_windows(domain: str, rows: Iterable[dict], flush_rows: int = 1_000_000,
                 ) -> Iterator[dict[str, list[tuple[float, list[float]]]]]:
    """Fold rows into hourly windows per key with dicts only; every ``flush_rows`` rows yield the
    windows closed so far (key -> [(hour start s, [values])], each key's in time order), the rest
    at the end. A window closes once the newest row is ``WINDOW_DELAY_S`` past its end, so memory
    holds the open windows (bounded by keys), not the history. A row for a window already yielded
    raises: it would have changed that window, and the figures would not be those of one fold."""
    acc: dict[tuple[str, float], list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    delay = WINDOW_DELAY_S[domain]
    newest = closed_below = -float("inf")
    for i, r in enumerate(rows, 1):
        if domain == "cost":
            t = _epoch_s(r["usage_start_time"])
            start = t - t % HOUR_S
            a = acc[(f"{r['workspace_id']}:{r['sku_name']}", start)]
            a[0] += r["list_cost"]
        elif domain == "security":
            t = _epoch_s(r["event_time"])
            start = t - t % HOUR_S
            a = acc[(r["user_email"], start)]
            a[0] += r["action_name"].endswith("ogin")
            a[1] += r["is_failed"]
            a[2] += r["action_name"] == "getTable"
        else:
            t = _epoch_s(r["period_end_time"])
            start = t - t % HOUR_S
            a = acc[(r["job_id"], start)]
            a[0] += r["duration_seconds"] / 600.0
            a[1] += r["is_failure"]
            a[2] += r["is_retry"]
        if start < closed_below:
            raise ValueError(f"{domain} row at {t} behind a window already scored (closed below {closed_below})")
        newest = max(newest, t)
        if i % flush_rows == 0:
            closed_below = newest - delay - HOUR_S  # windows starting before this have ended delay ago
            done = sorted(k for k in acc if k[1] < closed_below)
            yield _by_key(done, acc)
    yield _by_key(sorted(acc), acc)


def _by_key(done: list[tuple[str, float]], acc: dict[tuple[str, float], list[float]],
            ) -> dict[str, list[tuple[float, list[float]]]]:
    """The ``done`` windows (sorted by key, start) moved out of ``acc``, grouped per key."""
    out: dict[str, list[tuple[float, list[float]]]] = defaultdict(list)
    for key, start in done:
        out[key].append((start, acc.pop((key, start))))
    return out


def windows_plain(domain: str, rows: Iterable[dict]) -> dict[str, list[tuple[float, list[float]]]]:
    """All of the rows' hourly windows per key: key -> [(hour start s, [values])] (small inputs)."""
    out: dict[str, list[tuple[float, list[float]]]] = defaultdict(list)
    for part in fold_windows(domain, rows):
        for key, wins in part.items():
            out[key].extend(wins)
    return out


def loop_detectors(domain: str, rows: Iterable[dict], flush_rows: int = 1_000_000) -> int:
    """The domain's detector over every key's windows (a detector per key kept in a dict, fed
    each key's newly closed windows in one call); windows scored."""
    from health_monitor.detectors.multivariate import MultivariateDetector
    from health_monitor.detectors.univariate import UnivariateDetector

    feats = FEATURES.get(domain)
    dets: dict[str, Any] = {}
    n = 0
    for part in fold_windows(domain, rows, flush_rows):
        for key, wins in part.items():
            ts = pd.to_datetime([s for s, _ in wins], unit="s")
            det = dets.get(key)
            if feats is None:
                det = dets[key] = det or UnivariateDetector()
                det.score_learn(pd.DataFrame({"timestamp": ts, "value": [v[0] for _, v in wins]}))
            else:
                det = dets[key] = det or MultivariateDetector(feats)
                frame = pd.DataFrame([v for _, v in wins], columns=feats)
                frame.insert(0, "timestamp", ts)
                det.score_learn(frame)
            n += len(wins)
    return n


def _vector_detector(domain: str) -> Any:
    """The domain's vectorized detector with no keys yet (default parameters, as the loop's)."""
    from health_monitor.detectors.vector_univariate import VectorUnivariateDetector
    from health_monitor.detectors.vectorized import VectorMultivariateDetector

    feats = FEATURES.get(domain)
    return VectorUnivariateDetector(0) if feats is None else VectorMultivariateDetector(0, feats)


def loop_vector(domain: str, rows: Iterable[dict], flush_rows: int = 1_000_000) -> int:
    """The vectorized form of the domain's detector over the same windows: all keys at once
    (one ``score_learn`` per flush of :func:`fold_windows`, keys added as they appear):
    ``VectorMultivariateDetector`` for security and reliability, ``VectorUnivariateDetector``
    (epoch seconds and values) for cost; windows scored."""
    feats = FEATURES.get(domain)
    det = _vector_detector(domain)
    index: dict[str, int] = {}
    n = 0
    for part in fold_windows(domain, rows, flush_rows):
        if not part:
            continue
        new = [k for k in part if k not in index]
        first = det.add_keys(len(new))
        index.update((k, first + i) for i, k in enumerate(new))
        lengths = np.array([len(w) for w in part.values()], dtype=np.int64)
        idx = np.array([index[k] for k in part], dtype=np.int64)
        if feats is None:
            t = np.full((len(lengths), int(lengths.max())), np.nan)
            x = np.full_like(t, np.nan)
            for k, wins in enumerate(part.values()):
                t[k, :len(wins)] = [s for s, _ in wins]
                x[k, :len(wins)] = [v[0] for _, v in wins]
            det.score_learn(t, x, lengths, idx)
        else:
            values = np.full((len(lengths), int(lengths.max()), len(feats)), np.nan)
            for k, wins in enumerate(part.values()):
                values[k, :len(wins)] = [v for _, v in wins]
            det.score_learn(values, lengths, idx)
        n += int(lengths.sum())
    return n


#: Each domain's key of a row (the entity whose windows :func:`fold_windows` folds it into).
ROW_KEY: dict[str, Callable[[dict], Any]] = {
    "cost": lambda r: f"{r['workspace_id']}:{r['sku_name']}",
    "security": lambda r: r["user_email"],
    "reliability": lambda r: r["job_id"],
}


def _array_bytes(obj: Any, seen: set[int] | None = None) -> int:
    """Bytes of the NumPy arrays an object holds (through attributes, lists and dicts)."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        return obj.nbytes
    if isinstance(obj, list | tuple):
        return sum(_array_bytes(x, seen) for x in obj)
    if isinstance(obj, dict):
        return sum(_array_bytes(x, seen) for x in obj.values())
    return sum(_array_bytes(x, seen) for x in vars(obj).values()) if hasattr(obj, "__dict__") else 0


def vector_blocks(domain: str, keys: int, memory_mb: int) -> int:
    """How many blocks of keys the vectorized baseline runs in so its arrays fit ``memory_mb``
    (every key's arrays are allocated whole: 28 KB a key for security, 160 KB for cost, so a
    million keys at once do not fit beside Spark)."""
    det = _vector_detector(domain)
    det.add_keys(10)
    per_key = _array_bytes(det) / 10
    return max(1, -(-int(keys * per_key) // (memory_mb * 2**20)))


def split_by_key(domain: str, rows: Iterable[dict], blocks: int, folder: Path) -> list[Path]:
    """Write ``rows`` to ``blocks`` files by a hash of their key, each file in the rows' order
    (a key's rows all land in one block, so each block's fold and scores are those of the whole)."""
    paths = [folder / f"{domain}-block{b}.pkl" for b in range(blocks)]
    key = ROW_KEY[domain]
    bufs: list[list[dict]] = [[] for _ in range(blocks)]
    with contextlib.ExitStack() as stack:
        files = [stack.enter_context(p.open("wb")) for p in paths]
        for r in rows:
            b = zlib.crc32(str(key(r)).encode()) % blocks
            bufs[b].append(r)
            if len(bufs[b]) >= 2_000:
                pickle.dump(bufs[b], files[b], protocol=pickle.HIGHEST_PROTOCOL)
                bufs[b] = []
        for b, buf in enumerate(bufs):
            if buf:
                pickle.dump(buf, files[b], protocol=pickle.HIGHEST_PROTOCOL)
    return paths


def read_block(path: Path) -> Iterator[dict]:
    """The rows :func:`split_by_key` wrote to one block's file, in order."""
    with path.open("rb") as f:
        while True:
            try:
                yield from pickle.load(f)
            except EOFError:
                return


def loop_hst(domain: str, rows: Iterable[dict]) -> None:
    """river's Half-Space Trees, score then learn, one row at a time (numeric fields of the row)."""
    from river import anomaly

    hst = anomaly.HalfSpaceTrees(n_trees=10, height=6, window_size=64, seed=42)
    for r in rows:
        if domain == "cost":
            x = {"cost": r["list_cost"] / 200.0, "hour": int(r["usage_start_time"][11:13]) / 23}
        elif domain == "security":
            x = {"login": float(r["action_name"].endswith("ogin")), "failed": float(r["is_failed"]),
                 "hour": int(r["event_time"][11:13]) / 23}
        else:
            x = {"dur": min(r["duration_seconds"] / 6000.0, 1.0), "fail": float(r["is_failure"])}
        hst.score_one(x)
        hst.learn_one(x)


def _untimed(rows: Iterable[dict], meter: Meter, block: int = 10_000) -> Iterator[dict]:
    """``rows``, with the CPU spent producing them taken out of ``meter``'s figures (generated
    ``block`` rows at a time, so timing them costs nothing per row)."""
    it = iter(rows)
    while True:
        t0 = time.thread_time()
        part = list(itertools.islice(it, block))
        meter.exclude(time.thread_time() - t0)
        if not part:
            return
        yield from part


# --------------------------------------------------------------------------- offline state function
def keyed_frame(domain: str, rows: list[dict]) -> pd.DataFrame:
    """The stateful operator's input in pandas: the rows as ``streaming/sources.py`` projects and
    keys them (cost: workspace, workspace x SKU and job keys; security: users; reliability: jobs)."""
    df = pd.DataFrame(rows)
    if domain == "cost":
        base = pd.DataFrame({
            "workspace_id": df["workspace_id"], "event_time": pd.to_datetime(df["usage_start_time"].str.rstrip("Z")),
            "cost": df["list_cost"].astype(float), "dbus": df["usage_quantity"].astype(float),
            "sku_name": df["sku_name"], "job_id": df["job_id"], "job_name": df["job_name"],
            "is_tagged": df["is_tagged"], "job_run_id": None, "warehouse_id": None, "cluster_id": None,
            "job_id_source": None, "record_id": df["record_id"], "source_table": "fact_usage"})
        return pd.concat([base.assign(entity_type="workspace", entity_id=base["workspace_id"]),
                          base.assign(entity_type="workspace_sku",
                                      entity_id=base["workspace_id"] + ":" + base["sku_name"]),
                          base.assign(entity_type="job", entity_id=base["job_id"])], ignore_index=True)
    if domain == "security":
        action = df["action_name"]
        login = action.str.endswith("ogin")
        return pd.DataFrame({
            "entity_type": "user", "entity_id": df["user_email"], "workspace_id": df["workspace_id"],
            "event_time": pd.to_datetime(df["event_time"].str.rstrip("Z")), "source": "audit",
            "ip": df["source_ip_address"], "is_login": login, "is_failed": df["is_failed"],
            "is_admin": action.isin(["createUser", "updatePermissions"]), "is_grant": action == "updatePermissions",
            "is_self_grant": False, "is_export": action == "downloadResults", "export_bytes": None,
            "table_name": None, "is_read": None, "is_sensitive": None, "statement_id": None,
            "read_bytes": float("nan"), "source_table": "fact_audit_events"})
    return pd.DataFrame({
        "entity_type": "job", "entity_id": df["job_id"], "workspace_id": df["workspace_id"],
        "event_time": pd.to_datetime(df["period_end_time"].str.rstrip("Z")), "run_id": df["run_id"],
        "job_name": df["run_name"], "result_state": df["result_state"], "is_failure": df["is_failure"],
        "is_retry": df["is_retry"], "duration_s": df["duration_seconds"].astype(float),
        "wait_s": df["queue_duration_seconds"].astype(float), "termination_code": df["termination_code"],
        "source_table": "fact_job_run_timeline"})


class _GroupState:
    """Stand-in for Spark's GroupState: what the state function reads and writes."""

    def __init__(self, blob: bytes | None, watermark_ms: int) -> None:
        self.exists, self.get, self.blob, self.wm = blob is not None, (blob,), blob, watermark_ms

    def getCurrentWatermarkMs(self) -> int:  # noqa: N802 - Spark's name
        return self.wm

    def update(self, row: tuple) -> None:
        self.blob = row[0]

    def setTimeoutTimestamp(self, ms: int) -> None:  # noqa: N802 - Spark's name
        pass


@contextlib.contextmanager
def _timed_parts(cpu: dict[str, float]) -> Iterator[None]:
    """CPU seconds (process_time) in the state function's parts, summed over calls."""
    from health_monitor.streaming import bucketed, scoring, windows

    targets = [(windows, "accumulate"), (windows, "close_windows"), (scoring, "detect_key"), (scoring, "emit"),
               (bucketed.BucketScorer, "detect"), (bucketed, "emit"),
               (windows.KeyState, "dumps"), (windows.KeyState, "loads"),
               (bucketed.BucketState, "dumps"), (bucketed.BucketState, "loads")]
    saved = [(obj, name, obj.__dict__[name]) for obj, name in targets]

    for obj, name, fn in saved:
        raw = fn.__func__ if isinstance(fn, staticmethod) else fn
        w = _timed(raw, name, cpu, time.process_time)
        setattr(obj, name, staticmethod(w) if isinstance(fn, staticmethod) else w)
    try:
        yield
    finally:
        for obj, name, fn in saved:
            setattr(obj, name, fn)


def offline_run(domain: str, n: int, keys: int, chunks: int, layout: str = "per-key") -> dict:
    """The domain's stateful function over ``n`` rows in ``chunks`` micro-batches, without Spark:
    per group (a key, or a bucket of keys) and batch one call with a stand-in GroupState, the
    watermark trailing the previous batch's newest row by the domain's delay, state pickled in
    between (as Spark's state store). Groups without rows are not called (no timeouts here)."""
    import zlib

    from health_monitor.domains import spec
    from health_monitor.streaming.bucketed import bucket_count, make_bucket_state_function
    from health_monitor.streaming.scoring import make_state_function

    keyed = keyed_frame(domain, list(DOMAIN_ROWS[domain][1](n, keys))).sort_values("event_time", kind="stable")
    delay_ms = int(pd.Timedelta(spec(domain).watermark).total_seconds() * 1000)
    if layout == "per-key":
        fn, by = make_state_function(domain, {}), ["entity_type", "entity_id"]
    else:
        fn, by, b = make_bucket_state_function(domain, {}), ["_b"], bucket_count(4)
        keyed["_b"] = [zlib.crc32(f"{t}|{i}".encode()) % b for t, i in zip(keyed["entity_type"], keyed["entity_id"],
                                                                             strict=True)]
    spec(domain).make_detector()  # imports river & co once, as a long-lived Python worker has
    batches = [keyed.iloc[p] for p in _splits(len(keyed), chunks)]
    groups = [[((k,) if layout != "per-key" else k, g) for k, g in b.groupby(by[0] if len(by) == 1 else by)]
              for b in batches]  # Spark's shuffle, not timed
    states: dict[tuple, bytes] = {}
    parts: dict[str, float] = defaultdict(float)
    calls = windows_out = 0
    wm = 0
    t0 = time.process_time()
    with Meter() as m, _timed_parts(parts):
        for b, grouped in zip(batches, groups, strict=True):
            for key, g in grouped:
                st = _GroupState(states.get(key), wm)
                for out in fn(key, iter([g.reset_index(drop=True)]), st):
                    windows_out += int((out["kind"] == "score").sum())
                states[key] = st.blob
                calls += 1
            wm = int(b["event_time"].max().value // 1_000_000) - delay_ms
    total = time.process_time() - t0
    state_bytes = sum(len(v) for v in states.values())
    out = m.figures(n)
    out.update({"domain": domain, "layout": layout, "keys": keys, "state_groups": len(states), "calls": calls,
                "windows": windows_out, "cpu_ms_per_window": round(total / max(windows_out, 1) * 1000, 3),
                "cpu_ms_per_call": round(total / calls * 1000, 3),
                "parts_pct": {k: round(v / total * 100, 1) for k, v in parts.items() if not k.endswith("_calls")},
                "state_bytes_per_key": round(state_bytes / keys)})
    return out


def _splits(n: int, chunks: int) -> list[range]:
    step = -(-n // chunks)
    return [range(i, min(i + step, n)) for i in range(0, n, step)]


# --------------------------------------------------------------------------- engine
def _delta_commits(root: Path) -> dict[str, int]:
    """Delta commits per table under ``root`` (JSON files in each ``_delta_log``)."""
    return {log.parent.name: len(list(log.glob("*.json"))) for log in root.rglob("_delta_log")}


def _timed(fn: Callable, label: str, acc: dict[str, float], clock: Callable[[], float]) -> Callable:
    """``fn`` adding its time by ``clock`` to ``acc[label]`` and its calls to ``acc[label + "_calls"]``."""
    def timed(*a: Any, **kw: Any) -> Any:
        t0 = clock()
        try:
            return fn(*a, **kw)
        finally:
            acc[label] += clock() - t0
            acc[label + "_calls"] += 1
    return timed


@contextlib.contextmanager
def _timed_sink(timings: dict[str, float]) -> Iterator[None]:
    """Wall seconds in the sink's parts, summed over batches (wraps BatchSink's methods)."""
    from health_monitor.alerts import store
    from health_monitor.streaming import engine

    parts = {"sink_total": "_write", "scores_write": "_write_scores", "alerts_rules_merge": "_write_alerts"}
    saved = {name: getattr(engine.BatchSink, name) for name in parts.values()}
    saved_store = store.apply_alerts

    for label, name in parts.items():
        setattr(engine.BatchSink, name, _timed(saved[name], label, timings, time.perf_counter))
    # the alerts' Delta part (fold with the open incidents and the write), within alerts_rules_merge
    store.apply_alerts = _timed(saved_store, "alerts_store", timings, time.perf_counter)
    try:
        yield
    finally:
        for name, fn in saved.items():
            setattr(engine.BatchSink, name, fn)
        store.apply_alerts = saved_store


#: The field of each domain's generated rows that its Gold table splits commits by (``event_time``
#: of the table's contract, as ``recording.append_in_order`` reads it).
SPLIT_FIELD = {"cost": "usage_start_time", "security": "event_time", "reliability": "period_start_time"}


def _epoch_us(iso: str) -> int:
    return (datetime.fromisoformat(iso.rstrip("Z")) - datetime(1970, 1, 1)) // timedelta(microseconds=1)


def chunk_files(domain: str, n: int, keys: int, chunks: int, folder: Path) -> list[Path]:
    """The generated rows as one JSON-lines file per Delta commit, written row by row.

    The same split as ``recording.append_in_order(..., chunks)`` over all rows at once (equal
    event-time spans from the rows' min to max, the same float bounds), so a backlog holds the
    same commits as when every row sat in one list; but memory holds one row, not ``n``. Two
    passes over the generator: the first finds the span."""
    make, field = DOMAIN_ROWS[domain][1], SPLIT_FIELD[domain]
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{domain}-{i:03d}.jsonl" for i in range(max(1, chunks))]
    bounds: list[int] = []
    if chunks > 1:
        lo = hi = None
        for r in make(n, keys):
            us = _epoch_us(r[field])
            lo, hi = (us, us) if lo is None else (min(lo, us), max(hi, us))
        if lo is not None:
            lo_s, hi_s = lo / 1e6, hi / 1e6  # what append_in_order's .timestamp() gives (UTC)
            step = (hi_s - lo_s) / chunks or 1.0
            bounds = [int((lo_s + i * step) * 1e6) for i in range(1, chunks)]
    with contextlib.ExitStack() as stack:
        files = [stack.enter_context(p.open("w")) for p in paths]
        for r in make(n, keys):
            files[bisect.bisect_right(bounds, _epoch_us(r[field])) if bounds else 0].write(json.dumps(r) + "\n")
    return paths


def backlog_lake(domain: str, n: int, keys: int, chunks: int, data_dir: Path, tmp: Path) -> tuple[Any, dict[str, int]]:
    """A lakehouse in ``data_dir`` whose Gold table of ``domain`` holds ``n`` generated rows of
    ``keys`` keys appended in ``chunks`` Delta commits (:func:`chunk_files`, one commit each);
    with the Delta commit count per table."""
    from health_monitor.runtime import Lakehouse, get_spark
    from health_monitor.settings import load_settings
    from health_monitor.streaming import recording

    table = DOMAIN_ROWS[domain][0]
    settings = load_settings(data_dir)
    lake = Lakehouse(settings, get_spark(settings))
    for path in chunk_files(domain, n, keys, chunks, tmp / f"rows-{domain}"):
        recording.append_in_order(lake, table, recording.read_rows(lake, table, path), 1)
        path.unlink()
    return lake, _delta_commits(settings.data_dir)


def _codegen_compiles(spark: Any) -> tuple[int, float]:
    """Spark's count of generated-code compilations so far in this JVM and their mean wall ms
    (``CodegenMetrics``; bench only: the classic session's JVM)."""
    try:
        hist = spark.sparkContext._jvm.org.apache.spark.metrics.source.CodegenMetrics.METRIC_COMPILATION_TIME()
        return int(hist.getCount()), round(float(hist.getSnapshot().getMean()), 1)
    except Exception:  # noqa: BLE001 - a figure of the benchmark, never a reason to fail it
        return 0, 0.0


def engine_run(domain: str, n: int, keys: int, chunks: int, tmp: Path, layout: str = "bucketed") -> dict:
    """Available-now over ``n`` rows in ``chunks`` commits with a new checkpoint of ``layout``
    (per-key or bucketed state); figures and a per-batch profile."""
    from health_monitor.streaming import engine
    from health_monitor.streaming.bucketed import LAYOUT_ENV

    os.environ[LAYOUT_ENV] = layout  # read when the query is built: the new checkpoint records it
    lake, commits0 = backlog_lake(domain, n, keys, chunks, tmp / f"engine-{domain}-{keys}-{layout}", tmp)
    settings = lake.settings
    timings: dict[str, float] = defaultdict(float)
    codegen0 = _codegen_compiles(lake.spark)
    run = engine.start_streams(lake, [domain], available_now=True, max_files_per_trigger=1)
    with Meter() as m, _timed_sink(timings):
        engine.wait(run)
    codegen1 = _codegen_compiles(lake.spark)
    # Streaming runs every job of a query (foreachBatch's too) in the job group of its run id.
    tracker = lake.spark.sparkContext.statusTracker()  # bench only: the classic JVM session
    jobs = len(tracker.getJobIdsForGroup(str(run.queries[domain].runId)))
    prog = [p for p in run.queries[domain].recentProgress if p["numInputRows"] > 0]
    commits = {t: c - commits0.get(t, 0) for t, c in _delta_commits(settings.data_dir).items()
               if c > commits0.get(t, 0)}
    batches = max(1, len(prog))
    durations: dict[str, float] = defaultdict(float)
    for p in prog:
        for k, v in p["durationMs"].items():
            durations[k] += v / batches / 1000
    stats = run.sinks[domain].last.totals
    out = m.figures(n)
    out.update({"domain": domain, "layout": layout, "keys": keys, "batches": len(prog), "windows": stats["windows"],
                "alerts": stats["alerts"],
                "spark_jobs_per_batch": round(jobs / batches, 1),
                # Janino compilations of generated code (a cache miss each; the JIT then compiles
                # the new classes too), per data batch, and their mean wall ms
                "codegen_compiles_per_batch": round((codegen1[0] - codegen0[0]) / batches, 1),
                "codegen_compile_ms_mean": codegen1[1],
                "sink_seconds_per_call": {k: round(v / timings[k + "_calls"], 2) for k, v in timings.items()
                                          if not k.endswith("_calls")},
                "sink_calls": int(timings["sink_total_calls"]),
                "delta_commits_per_batch": {t: round(c / batches, 2) for t, c in commits.items()},
                "seconds_per_batch": {k: round(v, 2) for k, v in sorted(durations.items())},
                "rows_per_batch": [p["numInputRows"] for p in prog]})
    return out


def engine_latency(steps: int, trigger_s: float, interval_s: float, tmp: Path) -> dict:
    """p50/p99 from the commit of a window's enabling rows to its score row (cost domain, live),
    with where the seconds of a live micro-batch go: the query's ``durationMs`` per batch (data
    batches and the no-data batches that close windows apart), the sink's parts, Spark jobs."""
    import bench_streaming  # the live probe is shared with the earlier bench

    from health_monitor.streaming import engine

    runs: list = []
    start = engine.start_streams

    def keep(*a: Any, **kw: Any) -> Any:
        runs.append(start(*a, **kw))
        return runs[-1]

    timings: dict[str, float] = defaultdict(float)
    bench_streaming.engine.start_streams = keep
    try:
        with Meter() as m, _timed_sink(timings):
            lat = bench_streaming.latency(30, steps, trigger_s, interval_s, tmp)
    finally:
        bench_streaming.engine.start_streams = start
    lat.update({"cpu_s": round(m.cpu, 1), "wall_s": round(m.wall, 1), "load": f"{m.load0:.1f}->{m.load1:.1f}"})
    if runs:
        q = runs[0].queries["cost"]
        lat.update(_live_batches(q.recentProgress, timings))
        tracker = runs[0].lake.spark.sparkContext.statusTracker()  # bench only: classic session
        # Per sink call (a micro-batch that ran): progress also lists idle triggers.
        calls = max(1, int(timings.get("sink_total_calls", 0)))
        lat["spark_jobs_per_batch"] = round(len(tracker.getJobIdsForGroup(str(q.runId))) / calls, 1)
    return lat


def _live_batches(progress: list[dict], timings: dict[str, float]) -> dict:
    """Mean seconds per live batch by part (``durationMs``), data and no-data batches apart."""
    out: dict[str, Any] = {}
    for label, keep in (("data", lambda p: p["numInputRows"] > 0), ("no_data", lambda p: p["numInputRows"] == 0)):
        ps = [p for p in progress if keep(p)]
        if not ps:
            continue
        keys = sorted({k for p in ps for k in p["durationMs"]})
        out[f"{label}_batches"] = len(ps)
        out[f"{label}_seconds_per_batch"] = {k: round(sum(p["durationMs"].get(k, 0) for p in ps) / len(ps) / 1000, 2)
                                             for k in keys}
    calls = timings.get("sink_total_calls", 0)
    if calls:
        out["sink_seconds_per_call"] = {k: round(v / max(1, timings[k + "_calls"]), 2) for k, v in timings.items()
                                        if not k.endswith("_calls")}
        out["sink_calls"] = int(calls)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--domains", nargs="+", default=["cost", "security", "reliability"])
    ap.add_argument("--sizes", nargs="+", type=int, default=[100_000])
    ap.add_argument("--keys", nargs="+", type=int, default=[10_000])
    ap.add_argument("--hst-sizes", nargs="+", type=int, default=[], help="extra sizes for river HST only")
    ap.add_argument("--engine-rows", nargs="+", type=int, default=[100_000],
                    help="backlog sizes of the engine (0 skips it): every size at the first --engine-keys, "
                         "the first size at the other key counts")
    ap.add_argument("--engine-keys", nargs="+", type=int, default=[1_000])
    ap.add_argument("--offline-rows", type=int, default=0,
                    help="the state function without Spark over this many rows (0 skips; keys: --engine-keys)")
    ap.add_argument("--chunks", type=int, default=4)
    ap.add_argument("--batch-rows", type=int, default=0,
                    help="rows per commit (one micro-batch each) instead of --chunks: larger backlogs get more "
                         "batches of the same size rather than larger batches")
    ap.add_argument("--latency-steps", type=int, default=0, help="0 skips the live latency probe")
    ap.add_argument("--trigger", type=float, default=5.0)
    ap.add_argument("--interval", type=float, default=10.0)
    ap.add_argument("--layout", nargs="+", choices=("per-key", "bucketed"), default=["per-key", "bucketed"],
                    help="state layouts the engine (and --offline-rows) run, each on the same rows")
    ap.add_argument("--baselines", nargs="*", choices=("loop", "vector", "hst"), default=["loop", "vector", "hst"],
                    help="which baselines run at --sizes (--hst-sizes always runs hst)")
    ap.add_argument("--loop-max-rows", type=int, default=0,
                    help="skip the plain-Python loop above this many rows (0: no limit); at 10k keys it costs "
                         "~1,000 CPU-s per million rows for security, the longest part of a run")
    ap.add_argument("--other-keys-max-rows", type=int, default=0,
                    help="at the key counts after the first, run the baselines only up to this many rows (0: all)")
    ap.add_argument("--vector-memory-mb", type=int, default=2_000,
                    help="the vectorized baseline runs keys in blocks whose arrays fit this (a pass per block)")
    ap.add_argument("--engine-big-domains", nargs="*", default=[],
                    help="only these domains run the --engine-rows sizes above the first (empty: all)")
    ap.add_argument("--flush-rows", type=int, default=1_000_000,
                    help="the baselines score the windows closed so far every this many rows")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    if args.hst_sizes:
        args.baselines = sorted({*args.baselines, "hst"})
    os.environ.setdefault("HEALTH_MONITOR_DRIVER_MEMORY", "2g")
    results: dict = {"when": datetime.now().strftime("%Y-%m-%d %H:%M"), "cores": os.cpu_count(),
                     "loop": [], "vector": [], "hst": [], "offline": [], "engine": []}

    def emit(kind: str, rec: dict) -> None:
        results[kind].append(rec)
        print(kind, json.dumps(rec), flush=True)
        if args.json:
            args.json.write_text(json.dumps(results, indent=1))

    def baselines(keys: list[int], hst_sizes: list[int]) -> None:
        # Rows are generated as each baseline consumes them (memory bounded by a row, not by n);
        # the generator's CPU is taken out of the figure (before, the rows sat in a list).
        def measured(kind: str, domain: str, n: int, k: int, fn: Callable[[str, Iterable[dict]], Any]) -> None:
            if kind not in args.baselines or (kind == "loop" and 0 < args.loop_max_rows < n):
                return
            blocks = vector_blocks(domain, k, args.vector_memory_mb) if kind == "vector" else 1
            if blocks > 1:
                # Rows split by key into files before the meter starts; reading them back is
                # taken out like generating them.
                folder = Path(tempfile.mkdtemp(prefix="hm-bench-blocks-"))
                try:
                    paths = split_by_key(domain, DOMAIN_ROWS[domain][1](n, k), blocks, folder)
                    with Meter() as m:
                        wins = sum(fn(domain, _untimed(read_block(p), m)) for p in paths)
                finally:
                    shutil.rmtree(folder, ignore_errors=True)
            else:
                with Meter() as m:
                    wins = fn(domain, _untimed(DOMAIN_ROWS[domain][1](n, k), m))
            emit(kind, {"domain": domain, "keys": k, **({"windows": wins} if kind != "hst" else {}),
                        **({"key_blocks": blocks} if blocks > 1 else {}), **m.figures(n)})

        for domain in args.domains:
            for n in args.sizes:
                for k in keys:
                    if k > n or (k != args.keys[0] and 0 < args.other_keys_max_rows < n):
                        continue
                    measured("loop", domain, n, k, lambda d, rows: loop_detectors(d, rows, args.flush_rows))
                    measured("vector", domain, n, k, lambda d, rows: loop_vector(d, rows, args.flush_rows))
                    measured("hst", domain, n, k, loop_hst)
            for n in hst_sizes:
                measured("hst", domain, n, args.keys[0], loop_hst)

    if args.offline_rows:
        for domain in args.domains:
            for k in args.engine_keys:
                for layout in args.layout:
                    emit("offline", offline_run(domain, args.offline_rows, k, args.chunks, layout))
    # Order: the baselines and the engine at the first key count, the live probe, then the other
    # key counts and sizes (on a shared machine a run cut short keeps what matters most).
    tmp = Path(tempfile.mkdtemp(prefix="hm-bench-scale-"))
    try:
        sizes = [n for n in args.engine_rows if n > 0]
        engine_keys = args.engine_keys if sizes else []

        def chunks(n: int) -> int:
            return max(1, -(-n // args.batch_rows)) if args.batch_rows else args.chunks

        baselines(args.keys[:1], [])
        for domain in args.domains:
            for k in engine_keys[:1]:
                for layout in args.layout:
                    emit("engine", engine_run(domain, sizes[0], k, chunks(sizes[0]), tmp, layout))
        if args.latency_steps:
            results["latency"] = engine_latency(args.latency_steps, args.trigger, args.interval, tmp)
            print("latency", json.dumps(results["latency"]), flush=True)
        baselines(args.keys[1:], args.hst_sizes)
        for k in engine_keys[1:]:
            for domain in args.domains:
                for layout in args.layout:
                    emit("engine", engine_run(domain, sizes[0], k, chunks(sizes[0]), tmp, layout))
        # Larger backlogs last: they take the longest, and a run cut short keeps the rest.
        for n in sizes[1:]:
            for domain in args.domains:
                if n > sizes[0] and args.engine_big_domains and domain not in args.engine_big_domains:
                    continue
                for k in engine_keys[:1]:
                    for layout in args.layout:
                        emit("engine", engine_run(domain, n, k, chunks(n), tmp, layout))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
