"""Scoring a key's closed windows: the ``applyInPandasWithState`` function of a domain's query.

The stateful function (:func:`make_state_function`) keeps each entity's open hourly windows,
rolling baselines and online detector in the state store, inside the query's checkpoint, so what
the detectors learned survives restarts and is always consistent with the committed offsets.
Registered champion models (MLflow) are blended in when they exist.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from health_monitor.alerts.policy import recent_high
from health_monitor.domains import spec
from health_monitor.streaming import windows
from health_monitor.streaming.catchup import take_handover
from health_monitor.streaming.registered import blend_scores, domain_champions

# Spark's Arrow serializer warns when an output frame has an all-null column (the late-row
# columns of scored rows): expected here, and noise in every worker's stderr.
warnings.filterwarnings("ignore", message="The behavior of DataFrame concatenation with empty")

OUTPUT_SCHEMA = (
    "kind string, domain string, entity_type string, entity_id string, workspace_id string, "
    "window_start timestamp, window_end timestamp, value double, expected double, score double, "
    "model_name string, model_version string, features string, evidence string, "
    "event_time timestamp, source_table string, row_json string"
)
OUTPUT_COLUMNS = [c.strip().split(" ")[0] for c in OUTPUT_SCHEMA.split(",")]
STATE_SCHEMA = "blob binary"

#: Earlier windows of an entity sent along with its new ones, so rules with ``for: N`` see runs.
PRIOR_WINDOWS = 5


#: Key of the heartbeat rows that only move the watermark (see query.build_stream).
HEARTBEAT = "__heartbeat__"


def _detector(domain: str, ks: windows.KeyState):  # noqa: ANN202 - StreamingDetector
    """The key's online detector: restored from its state, or a fresh one from the domain's spec."""
    from health_monitor.detectors.base import StreamingDetector

    if ks.detector is not None:
        try:
            det = StreamingDetector.from_state(ks.detector)
            # The class attribute comes from today's code; the saved tag from the code that learned.
            # ...and the features it judges must still be the domain's (a spec may swap one)
            known = {f"{det.name}:{v}" for v in (type(det).version, *type(det).continues)}
            if (ks.history.get("detector_version") in known
                    and list(getattr(det, "features", ())) == list(spec(domain).detector_features)):
                return det
        except Exception:  # noqa: BLE001 - state of a detector class that no longer loads
            pass
        # State written by another version of the detector: start it afresh, say so in evidence.
        ks.detector = None
        ks.history["detector_reset"] = True
    return spec(domain).make_detector()


def _jsonable(v: Any) -> Any:
    """A feature value as JSON takes it: NumPy scalars as Python values, NaN as null."""
    v = _native(v)
    return None if isinstance(v, float) and math.isnan(v) else v


def features_json(features: dict) -> str:
    """A window's features as the ``features`` column's JSON (:func:`_jsonable` per value). Most
    values are Python floats: those are judged inline (two calls per value were most of it)."""
    return json.dumps({k: (v if v == v else None) if type(v) is float else _jsonable(v)
                       for k, v in features.items()})


def records(frame: pd.DataFrame) -> list[dict]:
    """``frame.to_dict("records")``: the same values and types (Python scalars, Timestamps, objects
    as stored), one conversion per dtype block instead of pandas' per-column Series, which cost
    milliseconds per call on the wide feature frames (about 0.15 ms per column)."""
    cols = frame.columns.tolist()
    return [dict(zip(cols, map(_native, row), strict=True)) for row in frame.to_numpy(dtype=object).tolist()]


def numeric_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns as float, anything non-numeric NaN (``apply(pd.to_numeric, errors="coerce")``);
    a frame of numeric columns only is cast directly (the apply costs ~7 ms per call)."""
    if all(dt.kind in "fiub" for dt in frame.dtypes):
        return frame.astype(float)
    return frame.apply(pd.to_numeric, errors="coerce").astype(float)


def _native(v: Any) -> Any:
    """A NumPy scalar inside an object column as its Python value (as ``to_dict`` boxes it)."""
    return v.item() if isinstance(v, np.generic) else v


@dataclass
class Detected:
    """A key's online detector on its newly closed windows (one entry per window)."""

    score: np.ndarray
    expected: np.ndarray
    evidence: list
    drivers: list | None  # None: a univariate detector (no ``detector_drivers`` feature)
    model_name: str
    model_version: str


def detect_key(domain: str, ks: windows.KeyState, closed: list[dict]) -> Detected:
    """Score a key's newly closed windows (oldest first) with its own online detector, learning
    them (the detector's state goes back into ``ks``)."""
    dom = spec(domain)
    det = _detector(domain, ks)
    dfeats = dom.detector_features
    ts = pd.to_datetime([c["window_start"] for c in closed], unit="ms")
    if dfeats:
        frame = numeric_frame(pd.DataFrame([c["features"] for c in closed], columns=list(dfeats)))
        frame.insert(0, "timestamp", ts)
    else:
        frame = pd.DataFrame({"timestamp": ts, "value": np.array([c["value"] for c in closed], dtype=float)})
    try:
        sc = det.score_learn(frame.reset_index(drop=True))
    except (AttributeError, KeyError, TypeError):
        if ks.detector is None:
            raise
        # Restored state from older code lacks what the new code needs (a detector upgraded
        # under a running checkpoint without a version bump): relearn rather than stop the stream.
        ks.detector = None
        ks.history["detector_reset"] = True
        det = _detector(domain, ks)
        sc = det.score_learn(frame.reset_index(drop=True))
    ks.detector = det.get_state()
    ks.history["detector_version"] = f"{det.name}:{det.version}"
    return Detected(np.asarray(sc.score, dtype=float), np.asarray(sc.expected, dtype=float),
                    [list(e) for e in sc.evidence], [list(d) for d in sc.drivers] if dfeats else None,
                    det.name, str(det.version))


def emit(domain: str, parts: list[tuple[windows.KeyState, list[dict], Detected]], ctx: dict) -> pd.DataFrame:
    """The ``score`` rows (:data:`OUTPUT_SCHEMA`) of keys' closed windows and their detectors'
    scores: registered champions blended in, the recent-high count kept in each key's history,
    features and evidence as JSON. One definition for the per-key and the bucketed layouts: each
    window's features JSON is made from its own dict (never from a frame whose column types
    depend on which windows share a call), so both layouts write the same rows."""
    parts = [p for p in parts if p[1]]
    if not parts:
        return pd.DataFrame(columns=OUTPUT_COLUMNS)
    dom = spec(domain)
    rows = [dict(c["features"]) for _, closed, _ in parts for c in closed]
    score = np.clip(np.nan_to_num(np.concatenate([d.score for *_, d in parts]), nan=0.0), 0.0, 1.0)
    expected = np.concatenate([d.expected for *_, d in parts])
    values = np.array([c["value"] for _, closed, _ in parts for c in closed], dtype=float)
    evidence = [list(e) for *_, d in parts for e in d.evidence]
    names = [d.model_name for _, closed, d in parts for _ in closed]
    versions = [d.model_version for _, closed, d in parts for _ in closed]
    champions = domain_champions(ctx.get("registry_uri"), list(ctx.get("models", ())))
    if champions:
        # A champion scores rows on their own; keys with the same feature columns share one call
        # (its input coverage is judged on the columns, as it was key by key).
        groups: dict[tuple, list[int]] = {}
        for i, r in enumerate(rows):
            groups.setdefault(tuple(r), []).append(i)
        for champ in champions:
            for cols, at in groups.items():
                s = champ.score(pd.DataFrame([rows[i] for i in at], columns=list(cols)))
                if s is None:
                    continue
                # The champion adds its evidence; it cannot veto the online model's alarm (blend_scores).
                score[at] = blend_scores(score[at], s)
                for i, v in zip(at, s, strict=True):
                    names[i] += f"+{champ.name}"
                    versions[i] += f"+{champ.version}"
                    evidence[i].append(f"{champ.name} v{champ.version} score {v:.2f}")
    at = 0
    for ks, closed, d in parts:
        high = recent_high(ks.history, score[at:at + len(closed)])
        for j, r in enumerate(rows[at:at + len(closed)]):
            r["recent_high_windows"] = high[j]
            if d.drivers is not None:
                # which features back the score (alert severity weighs how many, and which)
                r["detector_drivers"] = ",".join(d.drivers[j])
        at += len(closed)
    if dom.value_is_money:
        risk = np.where(np.isnan(expected), np.nan, np.maximum(values - expected, 0.0))
        for r, v in zip(rows, risk.tolist(), strict=True):
            r["cost_usd_at_risk"] = v
    ks_of = [ks for ks, closed, _ in parts for _ in closed]
    ws = []
    for r, ks in zip(rows, ks_of, strict=True):
        w = r.pop("_workspace_id", None)
        ws.append(ks.workspace_id if w is None or (isinstance(w, float) and math.isnan(w)) else w)
    out = pd.DataFrame({
        "kind": "score", "domain": domain, "entity_type": [ks.entity_type for ks in ks_of],
        "entity_id": [ks.entity_id for ks in ks_of], "workspace_id": ws,
        "window_start": pd.to_datetime([c["window_start"] for _, closed, _ in parts for c in closed], unit="ms"),
        "window_end": pd.to_datetime([c["window_end"] for _, closed, _ in parts for c in closed], unit="ms"),
        "value": values, "expected": expected, "score": score,
        "model_name": names, "model_version": versions,
        "features": [features_json(r) for r in rows],
        "evidence": [json.dumps(e) for e in evidence],
        "event_time": pd.NaT, "source_table": None, "row_json": None,
    })
    return out[OUTPUT_COLUMNS]


#: Columns a prior row keeps in a key's state as epoch nanoseconds (None: NaT), not Timestamps:
#: pickling and unpickling a Timestamp costs microseconds, and a key keeps 15 of them.
_TIME_COLUMNS = ("window_start", "window_end", "event_time")
_TIME_AT = tuple(OUTPUT_COLUMNS.index(c) for c in _TIME_COLUMNS)
_NAT = np.iinfo(np.int64).min  # NaT's int64


def prior_row(row: dict | tuple) -> tuple:
    """A prior row in the form a key's ``recent`` keeps (a tuple of :data:`OUTPUT_COLUMNS`' values,
    times as epoch ns): a row of state written before (a dict of Timestamps) converted."""
    if type(row) is tuple:
        return row
    vals = [row.get(c) for c in OUTPUT_COLUMNS]
    for i in _TIME_AT:
        v = vals[i]
        vals[i] = None if v is None or pd.isna(v) else int(pd.Timestamp(v).value)
    return tuple(vals)


def prior_frame(recent: list) -> pd.DataFrame:
    """Keys' kept rows (:func:`remember_recent`) as a frame of :data:`OUTPUT_COLUMNS` (the same
    frame, types included, that their dicts of Timestamps made)."""
    rows = [r if type(r) is tuple else prior_row(r) for r in recent]
    frame = pd.DataFrame(rows, columns=OUTPUT_COLUMNS)
    for c, i in zip(_TIME_COLUMNS, _TIME_AT, strict=True):
        frame[c] = np.array([_NAT if r[i] is None else r[i] for r in rows], dtype=np.int64).view("M8[ns]")
    return frame


def remember_recent(parts: list[tuple[windows.KeyState, list[dict], Detected]], scored: pd.DataFrame) -> None:
    """Keep each key's newest :data:`PRIOR_WINDOWS` scored rows (``scored``: :func:`emit`'s rows,
    in ``parts`` order; kept as :func:`prior_row` tuples), for the ``prior`` rows sent along with
    its next windows."""
    # Only each key's newest PRIOR_WINDOWS rows are kept: those rows of every key are converted
    # at once, column by column (a records() call per key cost ~0.3 ms of pandas slicing, most of
    # a window's cost when keys close one window a call), then handed out key by key.
    take, spans, at = [], [], 0
    for ks, closed, _ in parts:
        n = len(closed)
        if n:
            lo = max(at, at + n - PRIOR_WINDOWS)
            spans.append((ks, len(take), len(take) + at + n - lo))
            take.extend(range(lo, at + n))
        at += n
    if not take:
        return
    sub = scored.iloc[take] if len(take) < len(scored) else scored
    cols = []
    for c in OUTPUT_COLUMNS:
        if c in _TIME_COLUMNS:
            ns = sub[c].to_numpy(dtype="M8[ns]").view(np.int64).tolist()
            cols.append([None if v == _NAT else v for v in ns])
        else:  # the values records() gives (Python scalars, objects as stored)
            cols.append([_native(v) for v in sub[c].to_numpy(dtype=object).tolist()])
    recs = list(zip(*cols, strict=True))
    for ks, lo, hi in spans:
        if any(type(r) is not tuple for r in ks.recent):
            ks.recent[:] = [prior_row(r) for r in ks.recent]  # state written before
        ks.recent.extend(recs[lo:hi])
        del ks.recent[:-PRIOR_WINDOWS]


def score_windows(domain: str, ks: windows.KeyState, closed: list[dict], ctx: dict) -> pd.DataFrame:
    """Score a key's newly closed windows (oldest first) with its online detector, learning them,
    then blend in registered champions; returns rows in :data:`OUTPUT_SCHEMA` (kind ``score``)."""
    if not closed:
        return pd.DataFrame(columns=OUTPUT_COLUMNS)
    return emit(domain, [(ks, closed, detect_key(domain, ks, closed))], ctx)


def make_state_function(domain: str, ctx: dict) -> Callable:
    """The ``applyInPandasWithState`` function of a domain (``ctx``: static lookups, registry)."""

    def fn(key: tuple, pdfs: Iterator[pd.DataFrame], state) -> Iterator[pd.DataFrame]:  # noqa: ANN001
        entity_type, entity_id = key
        if entity_type == HEARTBEAT:
            return  # only there to move the watermark
        handed, pdfs = take_handover(pdfs)  # a catch-up's state for the key (catchup.py), if any
        if state.exists:
            ks = windows.KeyState.loads(state.get[0])
        elif handed is not None:
            ks = handed
        else:
            ks = windows.KeyState(str(entity_type), str(entity_id))
        for pdf in pdfs:
            windows.accumulate(domain, ks, pdf)
        closed = windows.close_windows(domain, ks, state.getCurrentWatermarkMs(), ctx)
        prior = prior_frame(ks.recent) if closed and ks.recent else None
        parts = [(ks, closed, detect_key(domain, ks, closed))] if closed else []
        scored = emit(domain, parts, ctx)
        remember_recent(parts, scored)
        state.update((ks.dumps(),))
        nxt = windows.next_timeout_ms(ks)
        if nxt is not None:
            state.setTimeoutTimestamp(nxt)
        if prior is not None:
            yield prior.assign(kind="prior")
        yield scored

    return fn

