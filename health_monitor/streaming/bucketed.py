"""The bucketed layout of a domain's stateful operator: one Python call per bucket of keys.

The per-key layout (:func:`~health_monitor.streaming.scoring.make_state_function`) groups the
stream by entity and calls ``applyInPandasWithState`` once per key and micro-batch: 8-16 CPU-ms
of fixed cost per call whatever its rows, and each multivariate key's detector pickled in its own
state (48 KB of river trees). Here the stream is grouped by a bucket of keys
(``pmod(xxhash64(entity_type, entity_id), B)``, B fixed per checkpoint), so one call handles every
key of a bucket in a batch:

1. each key's rows go through the one definition of the window features
   (:func:`~health_monitor.streaming.windows.accumulate` / ``close_windows``), key by key;
2. the closed windows of all the bucket's keys are scored at once by the vectorized form of the
   domain's detector (state as arrays, one row per key, keys appended as they appear):
   :class:`~health_monitor.detectors.vectorized.VectorMultivariateDetector` (security,
   reliability), :class:`~health_monitor.detectors.vector_univariate.VectorUnivariateDetector`
   (cost); a detector without one would be scored key by key through its public interface;
3. one frame comes out (:func:`~health_monitor.streaming.scoring.emit`: the same rows as the
   per-key layout).

A key is processed in a call when it has rows, a catch-up handed its state over, or its event-time
timeout (its oldest open window's end) is behind the watermark: exactly when Spark would call the
per-key function for it, so both layouts close the same windows in the same batches. The bucket's
timeout is the earliest of its keys'.
"""

from __future__ import annotations

import pickle
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from health_monitor.domains import spec
from health_monitor.streaming import windows
from health_monitor.streaming.catchup import HANDOVER
from health_monitor.streaming.scoring import (
    HEARTBEAT,
    OUTPUT_COLUMNS,
    Detected,
    _detector,
    detect_key,
    emit,
    numeric_frame,
    remember_recent,
)

#: Column of the bucketed stream's grouping key.
BUCKET = "_hm_bucket"

Key = tuple[str, str]


def bucket_count(shuffle_partitions: int) -> int:
    """Buckets of a new checkpoint: four per state-store partition (each partition then holds a
    few buckets, whichever way Spark hashes them, and a bucket's state stays a few MB at 10k keys)."""
    return max(1, 4 * int(shuffle_partitions))


@dataclass
class BucketState:
    """What a bucket of keys remembers between micro-batches (one state-store row).

    ``keys``: each key's :class:`~health_monitor.streaming.windows.KeyState` (its ``detector``
    bytes unused where ``vec`` holds the detector); ``rows``: a key's row in ``vec``;
    ``tag``: ``name:version`` of the detector code that learned ``vec``."""

    keys: dict[Key, windows.KeyState] = field(default_factory=dict)
    rows: dict[Key, int] = field(default_factory=dict)
    vec: Any = None
    tag: str | None = None

    def dumps(self) -> bytes:
        """The state store's blob (zlib level 1 over the pickle, as a key's state)."""
        return zlib.compress(pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL), 1)

    @staticmethod
    def loads(blob: bytes) -> BucketState:
        """A blob of :meth:`dumps`."""
        return pickle.loads(zlib.decompress(bytes(blob)))  # noqa: S301 - our own state store


def _vector_form(domain: str) -> tuple[type, dict] | None:
    """The vectorized detector class and parameters of a domain whose online detector has one
    (None: its detector is scored key by key inside the call, through its public interface)."""
    from health_monitor.detectors.multivariate import MultivariateDetector
    from health_monitor.detectors.univariate import UnivariateDetector
    from health_monitor.detectors.vector_univariate import VectorUnivariateDetector
    from health_monitor.detectors.vectorized import VectorMultivariateDetector

    proto = spec(domain).make_detector()
    params = {k: v for k, v in vars(proto).items()
              if not k.endswith("_") and not k.startswith("_") and k != "features"}
    if type(proto) is MultivariateDetector:
        return VectorMultivariateDetector, {"features": proto.features, **params}
    if type(proto) is UnivariateDetector:
        return VectorUnivariateDetector, params
    return None


class BucketScorer:
    """Scores the closed windows of a bucket's keys (one instance per state function)."""

    def __init__(self, domain: str) -> None:
        self.domain = domain
        self.vector = _vector_form(domain)
        if self.vector is not None:
            cls, params = self.vector
            probe = cls(0, **params)
            det = probe.proto
            self.known = {f"{det.name}:{v}" for v in (type(det).version, *type(det).continues)}
            self.tag = f"{det.name}:{det.version}"

    def prepare(self, bs: BucketState) -> None:
        """Give ``bs`` a vectorized detector of today's code (a fresh one, every key's row reset,
        where it was learned by another version or judges other features), with a row for each
        of its keys."""
        if self.vector is None:
            return
        cls, params = self.vector
        if not (bs.vec is not None and bs.tag in self.known and type(bs.vec) is cls
                and list(bs.vec.features) == list(params.get("features", ()))):
            if bs.vec is not None:
                for ks in bs.keys.values():
                    ks.history["detector_reset"] = True
            bs.vec = cls(len(bs.rows), **params)
            bs.tag = self.tag
        # keys of a bucket written while their detector had no vectorized form (cost's, before
        # 2026-12-05) kept it per key: each takes a row holding what it learned
        for key in [k for k in bs.keys if k not in bs.rows]:
            self.adopt(bs, key, bs.keys[key])

    def adopt(self, bs: BucketState, key: Key, ks: windows.KeyState) -> None:
        """A key new to the bucket: a row of the vectorized detector, holding what the key's own
        detector learned if it brings one (a catch-up's handover)."""
        bs.keys[key] = ks
        if self.vector is None:
            return
        row = bs.rows[key] = bs.vec.add_keys(1)
        if ks.detector is not None:
            det = _detector(self.domain, ks)  # resets a detector of another version, as per key
            if ks.detector is not None:
                try:
                    bs.vec.load_key(row, det)
                except (AttributeError, KeyError, TypeError, ValueError):
                    # state of older code that lacks what today's needs: relearn, as per key
                    bs.vec.reset_key(row)
                    ks.history["detector_reset"] = True
            ks.detector = None
        ks.history["detector_version"] = self.tag

    def detect(self, bs: BucketState, work: list[tuple[Key, windows.KeyState, list[dict]]]) -> list[Detected]:
        """Score and learn the closed windows of ``work``'s keys (all at once where vectorized)."""
        if self.vector is None:
            return [detect_key(self.domain, ks, closed) for _, ks, closed in work]
        vec = bs.vec
        lengths = np.array([len(closed) for *_, closed in work], dtype=np.int64)
        rows = np.array([bs.rows[k] for k, *_ in work], dtype=np.int64)
        if not vec.features:  # a univariate detector: each window's value at its start
            width = int(lengths.max())
            t, x = np.full((len(work), width), np.nan), np.full((len(work), width), np.nan)
            for i, (*_, closed) in enumerate(work):
                n = len(closed)
                # epoch seconds as the per-key detector computes them (ns as float, / 1e9)
                t[i, :n] = (np.array([c["window_start"] for c in closed], dtype=np.int64) * 1_000_000) / 1e9
                x[i, :n] = np.array([c["value"] for c in closed], dtype=float)
            score, expected, evidence = vec.score_learn(t, x, lengths, rows)
            name, version = vec.name, str(vec.version)
            return [Detected(score[i, :n], expected[i, :n], evidence[i], None, name, version)
                    for i, n in enumerate(lengths.tolist())]
        feats = list(vec.features)
        values = np.full((len(work), int(lengths.max()), len(feats)), np.nan)
        flat = numeric_frame(pd.DataFrame([c["features"] for *_, closed in work for c in closed],
                                          columns=feats)).to_numpy(dtype=float)
        at = 0
        for i, n in enumerate(lengths.tolist()):
            values[i, :n] = flat[at:at + n]
            at += n
        score, expected, evidence, drivers = vec.score_learn(values, lengths, rows)
        name, version = vec.proto.name, str(vec.proto.version)
        return [Detected(score[i, :n], expected[i, :n], evidence[i], drivers[i], name, version)
                for i, n in enumerate(lengths.tolist())]


def _split(pdfs: Iterator[pd.DataFrame]) -> tuple[pd.DataFrame | None, dict[Key, np.ndarray], dict[Key, bytes]]:
    """A bucket's input: its data rows, each key's positions among them (arrival order), and
    the states a catch-up handed over (the first per key); heartbeat rows dropped."""
    frames = [p for p in pdfs if not p.empty]
    if not frames:
        return None, {}, {}
    pdf = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    et = pdf["entity_type"].to_numpy()
    pdf = pdf.loc[et != HEARTBEAT] if (et == HEARTBEAT).any() else pdf
    handed: dict[Key, bytes] = {}
    if HANDOVER in pdf.columns:
        mark = pdf[HANDOVER].notna().to_numpy()
        for k_t, k_id, blob in zip(pdf["entity_type"].to_numpy()[mark].tolist(),
                                   pdf["entity_id"].to_numpy()[mark].tolist(),
                                   pdf[HANDOVER].to_numpy()[mark].tolist(), strict=True):
            handed.setdefault((str(k_t), str(k_id)), blob)
        pdf = pdf.loc[~mark].drop(columns=[HANDOVER, BUCKET], errors="ignore")
    else:
        pdf = pdf.drop(columns=[BUCKET], errors="ignore")
    if pdf.empty:
        return None, {}, handed
    pdf = pdf.reset_index(drop=True)
    # dropna=False: a key with a null id is a key, as Spark's groupBy has it
    groups = pdf.groupby(["entity_type", "entity_id"], sort=False, dropna=False).indices
    return pdf, {(str(k[0]), str(k[1])): at for k, at in groups.items()}, handed


#: A key's index in the upper bits of a window start (epoch ms < 2**42, the year 2109).
_KEY_SHIFT = 42


def accumulate_keys(domain: str, rows: pd.DataFrame, at: dict[Key, np.ndarray], keys: dict[Key, windows.KeyState],
                    window_ms: int = windows.HOUR_MS) -> None:
    """:func:`~health_monitor.streaming.windows.accumulate` for many keys in one accumulator call
    per entity type: each row's window is told apart by its key's index in the upper bits of the
    window start, so the domain's accumulator (the one definition of the window aggregates) folds
    every key's rows into that key's own windows, in the rows' order, as one call per key does."""
    logic = windows._logic(domain)
    ms = windows._ms(rows["event_time"])
    starts = (ms // window_ms) * window_ms
    has_ws = rows["workspace_id"].notna().to_numpy() if "workspace_id" in rows else None
    by_type: dict[str, list[Key]] = {}
    for k in at:
        by_type.setdefault(k[0], []).append(k)
    for members in by_type.values():
        code = np.empty(len(rows), dtype=np.int64)
        pos, states, combined = [], [], {}
        for i, k in enumerate(members):
            ks, p = keys[k], at[k]
            if ks.workspace_id is None and has_ws is not None and has_ws[p].any():
                ks.workspace_id = str(rows["workspace_id"].to_numpy()[p[has_ws[p]][0]])
            # rows behind the key's closed windows: Spark drops them first, this is the belt to its braces
            keep = p[starts[p] >= ks.closed_until_ms]
            code[keep] = i
            pos.append(keep)
            states.append(ks)
            combined.update({(i << _KEY_SHIFT) + s: acc for s, acc in ks.open.items()})
        take = np.sort(np.concatenate(pos)) if pos else np.zeros(0, dtype=np.int64)
        if not len(take):
            continue
        logic.accumulate(combined, rows.take(take), (code[take] << _KEY_SHIFT) + starts[take])
        mask = (1 << _KEY_SHIFT) - 1
        for c, acc in combined.items():
            states[c >> _KEY_SHIFT].open[c & mask] = acc


def make_bucket_state_function(domain: str, ctx: dict) -> Callable:
    """The ``applyInPandasWithState`` function of a domain's bucketed layout (grouped by
    :data:`BUCKET`; same output rows as the per-key layout's function)."""
    scorer = BucketScorer(domain)

    def fn(key: tuple, pdfs: Iterator[pd.DataFrame], state) -> Iterator[pd.DataFrame]:  # noqa: ANN001
        bs = BucketState.loads(state.get[0]) if state.exists else BucketState()
        scorer.prepare(bs)
        rows, data, handed = _split(pdfs)
        wm = state.getCurrentWatermarkMs()
        # The keys Spark would call the per-key function for: rows, a handover, or a timeout.
        due = set(data) | set(handed)
        for k, ks in bs.keys.items():
            nxt = windows.next_timeout_ms(ks)
            if nxt is not None and nxt < wm:
                due.add(k)
        order = sorted(due)
        for k in order:
            if k not in bs.keys:
                scorer.adopt(bs, k, windows.KeyState.loads(handed[k]) if k in handed else windows.KeyState(*k))
        if rows is not None:
            accumulate_keys(domain, rows, data, bs.keys)
        work, priors = [], []
        for k in order:
            ks = bs.keys[k]
            closed = windows.close_windows(domain, ks, wm, ctx)
            if closed:
                if ks.recent:
                    priors.extend(ks.recent)
                work.append((k, ks, closed))
        parts = list(zip([ks for _, ks, _ in work], [c for *_, c in work],
                         scorer.detect(bs, work) if work else [], strict=True))
        scored = emit(domain, parts, ctx)
        remember_recent(parts, scored)
        if not bs.keys:
            return  # only heartbeats so far
        state.update((bs.dumps(),))
        nxt = [t for t in map(windows.next_timeout_ms, bs.keys.values()) if t is not None]
        if nxt:
            state.setTimeoutTimestamp(min(nxt))
        out = [pd.DataFrame(priors, columns=OUTPUT_COLUMNS).assign(kind="prior")] if priors else []
        if not scored.empty:
            out.append(scored)
        if out:
            yield out[0] if len(out) == 1 else pd.concat(out, ignore_index=True)

    return fn


#: Environment variable choosing the state layout of *new* checkpoints (``per-key`` or
#: ``bucketed``); a checkpoint keeps the layout it was made with.
LAYOUT_ENV = "HEALTH_MONITOR_STATE_LAYOUT"
#: Layout of new checkpoints when the variable is unset.
DEFAULT_LAYOUT = "bucketed"


def new_layout(shuffle_partitions: int, layout: str | None = None) -> dict:
    """The layout record of a new checkpoint (``layout``: ``per-key`` or ``bucketed``; default
    from :data:`LAYOUT_ENV`, else :data:`DEFAULT_LAYOUT`)."""
    import os

    from health_monitor.checkpoints.manager import LAYOUTS
    from health_monitor.errors import HealthMonitorError

    layout = layout or os.environ.get(LAYOUT_ENV) or DEFAULT_LAYOUT
    if layout not in LAYOUTS:
        raise HealthMonitorError(f"unknown state layout {layout!r} (from {LAYOUT_ENV}); expected one of "
                                 f"{', '.join(LAYOUTS)}")
    if layout == "per-key":
        return {"layout": layout}
    return {"layout": layout, "buckets": bucket_count(shuffle_partitions)}


def score_stream(lake: Any, domain: str, watermarked: Any, ctx: dict) -> Any:
    """The scored windows of a domain's watermarked keyed rows, with the checkpoint's layout
    (recorded on its first start: :func:`~health_monitor.checkpoints.state_layout`)."""
    from pyspark.sql import functions as F
    from pyspark.sql.streaming.state import GroupStateTimeout

    from health_monitor import checkpoints
    from health_monitor.streaming.query import query_name
    from health_monitor.streaming.scoring import OUTPUT_SCHEMA, STATE_SCHEMA, make_state_function

    loc = checkpoints.checkpoint_location(lake.settings, query_name(domain))
    rec = checkpoints.state_layout(loc, new_layout(int(lake.spark.conf.get("spark.sql.shuffle.partitions"))))
    if rec["layout"] == "per-key":
        return (watermarked.groupBy("entity_type", "entity_id")
                .applyInPandasWithState(make_state_function(domain, ctx), OUTPUT_SCHEMA, STATE_SCHEMA,
                                        "append", GroupStateTimeout.EventTimeTimeout))
    bucket = F.pmod(F.xxhash64("entity_type", "entity_id"), F.lit(int(rec["buckets"]))).cast("int")
    return (watermarked.withColumn(BUCKET, bucket).groupBy(BUCKET)
            .applyInPandasWithState(make_bucket_state_function(domain, ctx), OUTPUT_SCHEMA, STATE_SCHEMA,
                                    "append", GroupStateTimeout.EventTimeTimeout))
