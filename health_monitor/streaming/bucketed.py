"""The bucketed layout of a domain's stateful operator: one Python call per bucket of keys.

The per-key layout (:func:`~health_monitor.streaming.scoring.make_state_function`) groups the
stream by entity and calls ``applyInPandasWithState`` once per key and micro-batch: 8-16 CPU-ms
of fixed cost per call whatever its rows, and each multivariate key's detector pickled in its own
state (48 KB of river trees). Here the stream is grouped by a bucket of keys
(``pmod(xxhash64(entity_type, entity_id), B)``, B fixed per checkpoint), so one call handles every
key of a bucket in a batch:

0. only the keys the call processes are decoded from the bucket's state (:class:`BucketState`
   keeps each key's record apart and every key's next timeout as an int), so a call costs in
   proportion to the keys it touches, not to the bucket's size;
1. each key's rows go through the one definition of the window features
   (:func:`~health_monitor.streaming.windows.accumulate` / ``close_windows``), key by key;
2. the closed windows of all the bucket's keys are scored at once by the vectorized form of the
   domain's detector (each key's row of its fixed-width arrays kept packed in the key's record,
   the rows of the keys scored stacked for the call):
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
    Detected,
    _detector,
    detect_key,
    emit,
    numeric_frame,
    prior_frame,
    remember_recent,
)

#: Column of the bucketed stream's grouping key.
BUCKET = "_hm_bucket"

Key = tuple[str, str]
#: A key's packed detector row (:meth:`BucketScorer._pack`): ``(header, body)``; plain bytes are
#: the whole-row form of session 9 (read, no longer written).
Packed = tuple[bytes, bytes] | bytes


#: Environment variable setting the bucket count B of *new* checkpoints (``stream start
#: --state-buckets`` sets it too); a checkpoint keeps the B it was made with.
BUCKETS_ENV = "HEALTH_MONITOR_STATE_BUCKETS"


def bucket_count(shuffle_partitions: int, buckets: int | str | None = None) -> int:
    """Buckets of a new checkpoint: ``buckets`` (or :data:`BUCKETS_ENV`) where given, else four per
    state-store partition (each partition then holds a few buckets, whichever way Spark hashes
    them). A call's cost grows with the keys it touches, not with its bucket's size (see
    :class:`BucketState`), so B only trades calls per batch against bytes carried per call."""
    import os

    from health_monitor.errors import HealthMonitorError

    given = buckets if buckets is not None else os.environ.get(BUCKETS_ENV)
    if given is None or str(given).strip() == "":
        return max(1, 4 * int(shuffle_partitions))
    try:
        b = int(given)
    except ValueError:
        b = 0
    if b < 1:
        raise HealthMonitorError(f"invalid bucket count {given!r} (from {BUCKETS_ENV} or --state-buckets): "
                                 "a whole number of at least 1")
    return b


#: First element of a bucket blob of today's form (a plain pickle); a blob of the first bucketed
#: form (a zlib stream over one pickled BucketState holding every key's KeyState) starts with 0x78.
_FORM = "hm-bucket-2"


@dataclass
class BucketState:
    """What a bucket of keys remembers between micro-batches (one state-store row).

    ``blobs``: each key's record (its :class:`~health_monitor.streaming.windows.KeyState` and, for
    a domain with a vectorized detector, its row of the detector's arrays packed (``_pack``);
    zlib-compressed on its own), decoded only when a call processes the key and re-encoded only
    then; ``timeouts``: each key's next event-time timeout (keys with an open window), so finding
    the due keys decodes nothing; ``tag``/``features``: ``name:version`` and features of the
    detector code that learned the rows. A call then costs in proportion to the keys it touches:
    the untouched keys' bytes are only copied (pickle of bytes objects), never unpickled."""

    blobs: dict[Key, bytes] = field(default_factory=dict)
    timeouts: dict[Key, int] = field(default_factory=dict)
    tag: str | None = None
    features: list[str] | None = None
    dicts: list[bytes] = field(default_factory=list)

    def dumps(self) -> bytes:
        """The state store's blob: a plain pickle (the records in it are compressed already)."""
        return pickle.dumps((_FORM, self.blobs, self.timeouts, self.tag, self.features, self.dicts),
                            protocol=pickle.HIGHEST_PROTOCOL)

    def decode(self, key: Key) -> tuple[windows.KeyState, Packed | None]:
        """A key's KeyState and packed detector row (None: a fresh row)."""
        return decode_key(self.blobs[key], self.dicts)

    def encode(self, records: dict[Key, tuple[windows.KeyState, Packed | None]]) -> None:
        """Store these keys' records and their next timeouts, each record compressed on its own against the bucket's newest
        preset dictionary (a raw record of the bucket: the field names, classes and typical
        values every record repeats, so a key's record is a third of what zlib alone makes of
        it). A call whose largest record has grown well past the dictionary adds it as a new
        one (a few at most); a record names the dictionary it was made with."""
        raws = {k: pickle.dumps(v, protocol=pickle.HIGHEST_PROTOCOL) for k, v in records.items()}
        if raws:
            big = max(raws.values(), key=len)
            if not self.dicts or (len(self.dicts) < _MAX_DICTS and len(big) > 1.5 * len(self.dicts[-1])
                                  and len(self.dicts[-1]) < _ZDICT_BYTES):
                self.dicts.append(big[-_ZDICT_BYTES:])
        at = len(self.dicts) - 1
        for k, raw in raws.items():
            self.blobs[k] = encode_raw(raw, self.dicts, at)
            nxt = windows.next_timeout_ms(records[k][0])
            if nxt is None:
                self.timeouts.pop(k, None)
            else:
                self.timeouts[k] = nxt

    @staticmethod
    def loads(blob: bytes) -> BucketState | LegacyBucket:
        """A blob of :meth:`dumps`, or of the first bucketed form (a :class:`LegacyBucket`, which
        :meth:`BucketScorer.load` converts)."""
        raw = bytes(blob)
        if raw[:1] != b"\x80":  # a zlib stream: the first form
            old = pickle.loads(zlib.decompress(raw))  # noqa: S301 - our own state store
            # it pickled a BucketState whose fields were keys/rows/vec/tag: unpickled into
            # today's class they land in its __dict__ as they were
            d = vars(old)
            return LegacyBucket(d["keys"], d["rows"], d["vec"], d["tag"])
        form, *fields = pickle.loads(raw)  # noqa: S301 - our own state store
        if form != _FORM:
            raise ValueError(f"unknown bucket state form {form!r}")
        return BucketState(*fields)


@dataclass
class LegacyBucket:
    """A bucket blob of the first bucketed form: every key's KeyState and one vectorized detector
    (``rows``: a key's row in ``vec``), pickled and compressed whole (read, never written)."""

    keys: dict[Key, windows.KeyState]
    rows: dict[Key, int]
    vec: Any
    tag: str | None


#: A preset dictionary's size (zlib's window) and how many a bucket keeps at most.
_ZDICT_BYTES = 32768
_MAX_DICTS = 8


def encode_raw(raw: bytes, dicts: list[bytes], at: int) -> bytes:
    """A pickled record compressed (zlib level 1) against preset dictionary ``dicts[at]``; its
    first byte names the dictionary."""
    c = zlib.compressobj(1, zlib.DEFLATED, 15, 9, zlib.Z_DEFAULT_STRATEGY, dicts[at])
    return bytes((at,)) + c.compress(raw) + c.flush()


def decode_key(blob: bytes, dicts: list[bytes]) -> tuple[windows.KeyState, Packed | None]:
    """A key's record (:meth:`BucketState.encode`): its KeyState and packed detector row."""
    d = zlib.decompressobj(15, dicts[blob[0]])
    return pickle.loads(d.decompress(blob[1:]) + d.flush())  # noqa: S301 - our own state store


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


def _per_key_arrays(none: Any, one: Any, prefix: str = "") -> list[str]:
    """Paths (``calib_.buf_``) of the arrays holding one row per key in a vectorized detector:
    those with 0 rows in ``none`` (made for 0 keys) and 1 in ``one`` (made for 1 key). Found, not
    listed, so an array added to the detector is carried per key without a change here."""
    out = []
    for name, a in vars(one).items():
        b = getattr(none, name, None)
        if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
            if a.ndim and b.ndim and a.shape[0] == 1 and b.shape[0] == 0 and a.shape[1:] == b.shape[1:]:
                out.append(prefix + name)
        elif hasattr(a, "__dict__") and type(a) is type(b) and type(a).__module__.startswith("health_monitor"):
            out += _per_key_arrays(b, a, f"{prefix}{name}.")
    return out


def _zeros(n: int, size: int) -> np.ndarray:
    """An ``(n, size)`` zeroed uint8 array whose untouched pages stay unallocated: a private
    anonymous map of 4 KB pages. (NumPy asks for 2 MB transparent huge pages on large arrays, so
    a stacked row's empty rings became resident: a cost row is 163 KB, mostly empty rings; 1,250
    cost keys stacked and scored took +230 MB RSS that way, +107 MB like this.)"""
    import mmap

    flags = getattr(mmap, "MAP_PRIVATE", 0) | getattr(mmap, "MAP_ANONYMOUS", 0)
    if n * size < 1 << 22 or not hasattr(mmap, "MAP_ANONYMOUS"):
        return np.zeros((n, size), dtype=np.uint8)
    return np.frombuffer(mmap.mmap(-1, n * size, flags=flags), dtype=np.uint8).reshape(n, size)


def _get(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def _set(obj: Any, path: str, value: Any) -> None:
    *head, last = path.split(".")
    for part in head:
        obj = getattr(obj, part)
    setattr(obj, last, value)


@dataclass
class Scoring:
    """A call's vectorized detector: the rows of the keys it scores (``rows``: a key's row in
    ``vec``), stacked from their records and put back into them after :meth:`BucketScorer.detect`."""

    vec: Any = None
    rows: dict[Key, int] = field(default_factory=dict)


class BucketScorer:
    """Scores the closed windows of a bucket's keys (one instance per state function).

    For a domain with a vectorized detector a key's row of its fixed-width arrays is packed
    (:meth:`_pack`: each array's row bytes cut at its last nonzero word, with their lengths: a
    ring that is not full yet costs only what it holds), so a call stacks only the rows of the
    keys it scores into a detector of that many keys."""

    def __init__(self, domain: str) -> None:
        self.domain = domain
        self.vector = _vector_form(domain)
        if self.vector is not None:
            cls, params = self.vector
            none, one = cls(0, **params), cls(1, **params)
            det = one.proto
            self.known = {f"{det.name}:{v}" for v in (type(det).version, *type(det).continues)}
            self.tag = f"{det.name}:{det.version}"
            self.features = list(params.get("features", ()))
            paths = _per_key_arrays(none, one)
            sizes = {p: _get(one, p)[0].nbytes for p in paths}
            # the largest (calibrator buffer) last: the order of the whole-row form, which is still read
            self.paths = sorted(paths, key=lambda p: (sizes[p], p))
            self.layout = [(p, _get(one, p).dtype, _get(one, p).shape[1:], sizes[p]) for p in self.paths]
            self.width = sum(sizes.values())
            self.offsets = np.cumsum([0] + [sizes[p] for p in self.paths[:-1]]).astype(np.int64)
            self.template = none  # its per-key arrays are replaced in each call's copy
            self.fresh = self._pack(one)[0]

    def _pack(self, vec: Any) -> list[Packed]:
        """Each row of ``vec``'s per-key arrays as one key's packed form: ``(header, body)``, the
        body each array's row bytes cut at its last nonzero word, one after another, the header
        their lengths (uint32). A young key's empty rings then cost nothing, whichever array they
        are (cost's detector has several: history, two calibrators, seasonal slots)."""
        n = vec.keys
        views, ends = [], np.zeros((n, len(self.layout)), dtype=np.uint32)
        for j, (p, _, _, size) in enumerate(self.layout):
            u = np.ascontiguousarray(_get(vec, p)).view(np.uint8).reshape(n, size)
            word = 8 if size % 8 == 0 else 1  # scan 8-byte words where the row is made of them
            nz = u.view(np.uint64) != 0 if word == 8 else u != 0
            if nz.shape[1]:
                ends[:, j] = np.where(nz.any(axis=1), size - word * np.argmax(nz[:, ::-1], axis=1), 0)
            views.append(u)
        out = []
        for i, row in enumerate(ends.tolist()):
            out.append((ends[i].tobytes(), b"".join(u[i, :e].tobytes() for u, e in zip(views, row, strict=True) if e)))
        return out

    def _stack(self, packed: list[Packed | None]) -> Any:
        """A vectorized detector of ``len(packed)`` keys holding these packed rows (None: fresh).
        Each array is allocated zeroed and only its rows' stored bytes are written: the pages of
        empty rings are never touched."""
        import copy

        n = len(packed)
        arrays = [_zeros(n, size) for *_, size in self.layout]
        spans = list(zip(arrays, self.offsets.tolist(), [size for *_, size in self.layout], strict=True))
        for i, r in enumerate(packed):
            r = self.fresh if r is None else r
            if isinstance(r, tuple):
                head, body = r
                at = 0
                for (arr, _, _), e in zip(spans, np.frombuffer(head, dtype=np.uint32).tolist(), strict=True):
                    if e:
                        arr[i, :e] = np.frombuffer(body, dtype=np.uint8, count=e, offset=at)
                        at += e
            else:  # the whole-row form (2026-12-05, session 9): cut once, at its end
                for arr, off, size in spans:
                    part = r[off:off + size]
                    if part:
                        arr[i, :len(part)] = np.frombuffer(part, dtype=np.uint8)
        vec = copy.copy(self.template)
        for name in {p.split(".")[0] for p in self.paths if "." in p}:
            setattr(vec, name, copy.copy(getattr(self.template, name)))
        for (p, dtype, shape, _), arr in zip(self.layout, arrays, strict=True):
            _set(vec, p, arr.view(dtype).reshape(n, *shape))
        vec.keys = n
        return vec

    def prepare(self, bs: BucketState) -> None:
        """Rows of today's detector code in ``bs``: where they were learned by another version or
        judge other features every key's row starts afresh (decoded and re-encoded once)."""
        if self.vector is None:
            return
        if bs.tag in self.known and bs.features == self.features:
            return
        if bs.tag is not None:
            reset = {}
            for k in bs.blobs:
                ks, _ = bs.decode(k)
                ks.history["detector_reset"] = True
                reset[k] = (ks, None)
            bs.encode(reset)
        bs.tag, bs.features = self.tag, list(self.features)

    def load(self, blob: bytes) -> BucketState:
        """A bucket's state from its blob, of today's form or the first bucketed form (each key's
        row taken out of the old detector; rows of detector code we do not know start afresh)."""
        got = BucketState.loads(blob)
        if isinstance(got, BucketState):
            return got
        packed: dict[Key, Packed | None] = {}
        vec = got.vec
        ok = (self.vector is not None and vec is not None and got.tag in self.known
              and list(vec.features) == self.features)
        if ok:
            try:
                rows = self._pack(vec)
                packed = {k: rows[r] for k, r in got.rows.items()}
            except (AttributeError, TypeError, ValueError):
                ok = False  # arrays of older code: relearn, as per key
        bs = BucketState(tag=self.tag if ok else got.tag,
                         features=list(vec.features) if vec is not None else None)
        bs.encode({k: (ks, packed.get(k)) for k, ks in got.keys.items()})
        return bs

    def adopt(self, key: Key, ks: windows.KeyState) -> Packed | None:
        """A key new to the bucket: its packed detector row (None: fresh), holding what the key's
        own detector learned if it brings one (a catch-up's handover)."""
        if self.vector is None:
            return None
        row = None
        if ks.detector is not None:
            det = _detector(self.domain, ks)  # resets a detector of another version, as per key
            if ks.detector is not None:
                one = self._stack([None])
                try:
                    one.load_key(0, det)
                    row = self._pack(one)[0]
                except (AttributeError, KeyError, TypeError, ValueError):
                    # state of older code that lacks what today's needs: relearn, as per key
                    ks.history["detector_reset"] = True
            ks.detector = None
        ks.history["detector_version"] = self.tag
        return row

    def scoring(self, keys: list[Key], packed: dict[Key, Packed | None]) -> Scoring:
        """The detector :meth:`detect` scores ``keys`` with (their rows only)."""
        if self.vector is None:
            return Scoring()
        return Scoring(self._stack([packed[k] for k in keys]), {k: i for i, k in enumerate(keys)})

    def put_back(self, sc: Scoring, packed: dict[Key, Packed | None]) -> None:
        """The scored keys' learned rows back into their packed form."""
        if sc.vec is not None:
            rows = self._pack(sc.vec)
            for k, i in sc.rows.items():
                packed[k] = rows[i]

    def detect(self, sc: Scoring, work: list[tuple[Key, windows.KeyState, list[dict]]]) -> list[Detected]:
        """Score and learn the closed windows of ``work``'s keys (all at once where vectorized, with
        the call's :meth:`scoring` detector)."""
        if self.vector is None:
            return [detect_key(self.domain, ks, closed) for _, ks, closed in work]
        vec = sc.vec
        feats = list(vec.features)
        lengths = np.array([len(closed) for *_, closed in work], dtype=np.int64)
        rows = np.array([sc.rows[k] for k, *_ in work], dtype=np.int64)
        name, version = vec.proto.name, str(vec.proto.version)
        if not feats:  # a univariate detector: each window's value at its start
            width = int(lengths.max())
            t, x = np.full((len(work), width), np.nan), np.full((len(work), width), np.nan)
            for i, (*_, closed) in enumerate(work):
                n = len(closed)
                # epoch seconds as detect_key gives them to the per-key detector (ns as float, / 1e9)
                t[i, :n] = (np.array([c["window_start"] for c in closed], dtype=np.int64) * 1_000_000) / 1e9
                x[i, :n] = np.array([c["value"] for c in closed], dtype=float)
            score, expected, evidence = vec.score_learn(t, x, lengths, rows)
            return [Detected(score[i, :n], expected[i, :n], evidence[i], None, name, version)
                    for i, n in enumerate(lengths.tolist())]
        values = np.full((len(work), int(lengths.max()), len(feats)), np.nan)
        flat = numeric_frame(pd.DataFrame([c["features"] for *_, closed in work for c in closed],
                                          columns=feats)).to_numpy(dtype=float)
        at = 0
        for i, n in enumerate(lengths.tolist()):
            values[i, :n] = flat[at:at + n]
            at += n
        score, expected, evidence, drivers = vec.score_learn(values, lengths, rows)
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
    mask = (1 << _KEY_SHIFT) - 1
    for members in by_type.values():
        # each row's key (its index in members; -1: another entity type's row), then NumPy over rows
        code = np.full(len(rows), -1, dtype=np.int64)
        for i, k in enumerate(members):
            code[at[k]] = i
        states = [keys[k] for k in members]
        mine = np.flatnonzero(code >= 0)  # in arrival order
        c = code[mine]
        if has_ws is not None:
            # a key without a workspace takes its first row's that has one (late rows included)
            need = np.fromiter((ks.workspace_id is None for ks in states), dtype=bool, count=len(states))
            with_ws = mine[has_ws[mine] & need[c]]
            if len(with_ws):
                ws = rows["workspace_id"].to_numpy()
                first_key, first = np.unique(code[with_ws], return_index=True)
                for i, r in zip(first_key.tolist(), with_ws[first].tolist(), strict=True):
                    states[i].workspace_id = str(ws[r])
        # rows behind the key's closed windows: Spark drops them first, this is the belt to its braces
        closed_until = np.fromiter((ks.closed_until_ms for ks in states), dtype=np.int64, count=len(states))
        take = mine[starts[mine] >= closed_until[c]]
        if not len(take):
            continue
        combined = {(i << _KEY_SHIFT) + s: acc for i, ks in enumerate(states) for s, acc in ks.open.items()}
        logic.accumulate(combined, rows.take(take), (code[take] << _KEY_SHIFT) + starts[take])
        for cc, acc in combined.items():
            states[cc >> _KEY_SHIFT].open[cc & mask] = acc


def make_bucket_state_function(domain: str, ctx: dict) -> Callable:
    """The ``applyInPandasWithState`` function of a domain's bucketed layout (grouped by
    :data:`BUCKET`; same output rows as the per-key layout's function)."""
    scorer = BucketScorer(domain)

    def fn(key: tuple, pdfs: Iterator[pd.DataFrame], state) -> Iterator[pd.DataFrame]:  # noqa: ANN001
        bs = scorer.load(state.get[0]) if state.exists else BucketState()
        scorer.prepare(bs)
        rows, data, handed = _split(pdfs)
        wm = state.getCurrentWatermarkMs()
        # The keys Spark would call the per-key function for: rows, a handover, or a timeout.
        due = set(data) | set(handed)
        due.update(k for k, t in bs.timeouts.items() if t < wm)
        order = sorted(due)
        keys: dict[Key, windows.KeyState] = {}
        packed: dict[Key, Packed | None] = {}
        for k in order:  # only these keys are decoded (and re-encoded below)
            if k in bs.blobs:
                keys[k], packed[k] = bs.decode(k)
                if keys[k].detector is not None:  # kept per key (cost's, before 2026-12-05): into a row
                    packed[k] = scorer.adopt(k, keys[k])
            else:
                ks = windows.KeyState.loads(handed[k]) if k in handed else windows.KeyState(*k)
                packed[k] = scorer.adopt(k, ks)
                keys[k] = ks
        if rows is not None:
            accumulate_keys(domain, rows, data, keys)
        work, priors = [], []
        for k in order:
            ks = keys[k]
            closed = windows.close_windows(domain, ks, wm, ctx)
            if closed:
                if ks.recent:
                    priors.extend(ks.recent)
                work.append((k, ks, closed))
        sc = scorer.scoring([k for k, *_ in work], packed)
        parts = list(zip([ks for _, ks, _ in work], [c for *_, c in work],
                         scorer.detect(sc, work) if work else [], strict=True))
        scorer.put_back(sc, packed)
        scored = emit(domain, parts, ctx)
        remember_recent(parts, scored)
        bs.encode({k: (keys[k], packed[k]) for k in order})
        if not bs.blobs:
            return  # only heartbeats so far
        state.update((bs.dumps(),))
        if bs.timeouts:
            state.setTimeoutTimestamp(min(bs.timeouts.values()))
        out = [prior_frame(priors).assign(kind="prior")] if priors else []
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


def new_layout(shuffle_partitions: int, layout: str | None = None, buckets: int | None = None) -> dict:
    """The layout record of a new checkpoint (``layout``: ``per-key`` or ``bucketed``; default
    from :data:`LAYOUT_ENV`, else :data:`DEFAULT_LAYOUT`; ``buckets``: see :func:`bucket_count`)."""
    import os

    from health_monitor.checkpoints.manager import LAYOUTS
    from health_monitor.errors import HealthMonitorError

    layout = layout or os.environ.get(LAYOUT_ENV) or DEFAULT_LAYOUT
    if layout not in LAYOUTS:
        raise HealthMonitorError(f"unknown state layout {layout!r} (from {LAYOUT_ENV}); expected one of "
                                 f"{', '.join(LAYOUTS)}")
    if layout == "per-key":
        return {"layout": layout}
    return {"layout": layout, "buckets": bucket_count(shuffle_partitions, buckets)}


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
