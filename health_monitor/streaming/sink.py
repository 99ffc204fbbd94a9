"""The ``foreachBatch`` sink of a domain's query: idempotent writes of one micro-batch.

With the checkpoint this makes the whole query exactly-once: scores and late rows are appended
with Delta's ``txnAppId``/``txnVersion`` (a replayed batch adds nothing) and alerts go through
:func:`health_monitor.alerts.store.apply_alerts`, which does the same. A batch replayed after a
crash therefore leaves every table as a single run would.

Rows behind the watermark are dropped by Spark's stateful operator (counted in the query progress
as ``numRowsDroppedByWatermark``); the union branch brings the batch's raw rows to the sink, which
writes the ones at or below the batch's late-event watermark (read from the offset log) to
``monitor.late_rows``, so they are never silently lost.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from health_monitor import checkpoints
from health_monitor.runtime import Lakehouse, is_connect
from health_monitor.streaming.query import RAW_ROW, query_name
from health_monitor.streaming.tables import ANOMALY_SCORES, LATE_ROWS, STREAM_BATCHES

try:  # pandas' C JSON decoder (what pd.read_json uses); json.loads where it is missing
    from pandas._libs.json import ujson_loads as _ujson_loads
except ImportError:  # pragma: no cover - another pandas
    _ujson_loads = None

# Queries of one process share the monitor tables; their sinks take turns (Delta commits to one
# table from two threads would conflict).
_SINK_LOCK = threading.Lock()


def _as_ts(ms: int) -> pd.Timestamp:
    return pd.Timestamp(ms, unit="ms")


@dataclass
class BatchStats:
    """What one micro-batch did, for progress lines and ``stream status``."""

    batch_id: int = -1
    windows: int = 0
    late_rows: int = 0
    alerts: int = 0
    max_score: float = 0.0
    late_watermark: str | None = None
    seconds: float = 0.0
    finished_at: str | None = None
    newest_window: str | None = None  # latest window_start scored in the batch (latency probes)
    totals: dict = field(default_factory=lambda: {"windows": 0, "late_rows": 0, "alerts": 0, "batches": 0})


def expand_scored(pdf: pd.DataFrame, features: list[dict] | pd.DataFrame | None = None,
                  evidence: bool = True) -> pd.DataFrame:
    """Scored rows with their features JSON spread into columns and evidence as lists.

    ``features``: the rows' features already parsed (the sink parses each window's JSON once),
    as dicts or as their frame (:func:`feature_frame`, not modified);
    ``evidence=False`` leaves the evidence JSON unparsed (the sink parses it for alerting rows only).
    """
    if pdf.empty:
        return pdf.assign(evidence=[])
    if features is None:
        features = parse_features(pdf["features"])
    feats = features.set_axis(pdf.index) if isinstance(features, pd.DataFrame) else feature_frame(features, pdf.index)
    base = pdf.drop(columns=["features", "evidence", "kind", "event_time", "source_table", "row_json"],
                    errors="ignore")
    feats = feats[[c for c in feats.columns if c not in base.columns]]
    for c in feats.columns:
        # JSON null (NaN) leaves a numeric feature as object; ids stay strings (they are quoted).
        # (Checked on the column's distinct types: a value's isinstance, once per type.)
        if feats[c].dtype == object and all(t is type(None) or issubclass(t, int | float)
                                            for t in set(map(type, feats[c].to_numpy()))):
            feats[c] = pd.to_numeric(feats[c], errors="coerce").astype(float)
    out = pd.concat([base, feats], axis=1)
    out["evidence"] = parse_evidence(pdf["evidence"]) if evidence else pdf["evidence"].to_numpy()
    return out


def parse_features(features: Any) -> list[dict]:
    """Each window's features JSON as a dict (``{}`` for none), the values ``json.loads`` gives.

    Through pandas' ujson decoder with exact float parsing where it gives the same values
    (about twice as fast as ``json.loads``: half of the sink's driver time per window was this
    parse): it reads ``NaN`` as None and drops lone surrogates silently, so a text with ``NaN``
    or a ``\\u`` escape goes to ``json.loads``, and so does one it refuses (a number out of
    double range, denormals, integers past 64 bits).
    """
    if _ujson_loads is None:
        return [json.loads(f) if f else {} for f in features]
    return [_loads_exact(f) if f else {} for f in features]


def _loads_exact(text: str) -> Any:
    if "NaN" in text or "\\u" in text:
        return json.loads(text)
    try:
        return _ujson_loads(text, precise_float=True)
    except ValueError:
        return json.loads(text)


def feature_frame(features: list[dict], index: Any = None) -> pd.DataFrame:
    """The parsed features as a frame, one column per feature name (missing ones NaN)."""
    return pd.DataFrame(features, index=index)


def parse_evidence(evidence: Any) -> list[list]:
    """Each window's evidence JSON as a list (``[]`` for none)."""
    return [json.loads(e) if e else [] for e in evidence]


class BatchSink:
    """The ``foreachBatch`` function of one domain's query: idempotent writes of one micro-batch."""

    def __init__(self, lake: Lakehouse, domain: str, rules: Any = None) -> None:
        self.lake = lake
        self.domain = domain
        self.name = query_name(domain)
        self.location = checkpoints.checkpoint_location(lake.settings, self.name)
        self.app_id = checkpoints.app_id(lake.settings, self.name)
        self.rules = rules
        self.last = BatchStats()
        #: Rows at or behind this event time (epoch ms) are late even before the query has a
        #: watermark: a catch-up's backlog watermark (streaming/catchup.py).
        self.late_floor_ms = 0

    def __call__(self, batch_df: DataFrame, batch_id: int) -> None:
        t0 = time.monotonic()
        # No persist: _write runs exactly one Spark action on batch_df (the stateful plan must not
        # run twice), so caching the whole union (every raw row's JSON included) only cost CPU.
        with _SINK_LOCK:
            stats = self._write(batch_df, int(batch_id))
        stats.seconds = round(time.monotonic() - t0, 2)
        stats.finished_at = datetime.now(UTC).isoformat()
        totals = dict(self.last.totals)
        for k in ("windows", "late_rows", "alerts"):
            totals[k] += getattr(stats, k)
        totals["batches"] += 1
        stats.totals = totals
        self.last = stats
        if is_connect(batch_df.sparkSession):
            self._publish(stats)

    def _publish(self, stats: BatchStats) -> None:
        """Record the batch's stats in ``monitor.stream_batches`` (idempotent per batch).

        Under Spark Connect this object lives in a server-side Python worker: ``self.last``
        never reaches the process that started the query, which reads this table instead.
        """
        row = self.lake.spark.createDataFrame(
            [(self.name, stats.batch_id, json.dumps(vars(stats)), datetime.now(UTC).replace(tzinfo=None))],
            STREAM_BATCHES.schema)
        self.lake.ensure_table(STREAM_BATCHES.name, STREAM_BATCHES.schema, "monitor")
        self.lake.write(row, STREAM_BATCHES.name, "monitor", mode="append",
                        options={"txnAppId": self.app_id, "txnVersion": str(stats.batch_id)})

    def current(self) -> BatchStats:
        """The latest batch's stats, wherever the function ran (see :meth:`_publish`)."""
        if not is_connect(self.lake.spark) or not self.lake.exists(STREAM_BATCHES.name, "monitor"):
            return self.last
        row = (self.lake.read(STREAM_BATCHES.name, "monitor").filter(F.col("query_name") == self.name)
               .orderBy(F.col("batch_id").desc()).select("stats").first())
        return BatchStats(**json.loads(row["stats"])) if row else self.last

    def _write(self, batch_df: DataFrame, batch_id: int) -> BatchStats:
        lake = self.lake
        stats = BatchStats(batch_id=batch_id)
        late_wm = max(checkpoints.late_event_watermark_ms(self.location, batch_id), self.late_floor_ms)
        if late_wm > 0:
            stats.late_watermark = _as_ts(late_wm).isoformat()
        # The late-row audit rides in the same action as the scores (the stateful plan runs once).
        out = wanted_rows(batch_df, late_wm).toPandas()
        is_raw = (out["kind"] == "raw").to_numpy()
        late = out[is_raw]
        stats.late_rows = len(late)
        if stats.late_rows:
            lake.ensure_table(LATE_ROWS.name, LATE_ROWS.schema, "monitor")
            rows = late_frame(late, self.name, _as_ts(late_wm), datetime.now(UTC).replace(tzinfo=None))
            # txnAppId/txnVersion: Delta skips this append if the batch was already written.
            lake.write(lake.spark.createDataFrame(rows, LATE_ROWS.schema), LATE_ROWS.name, "monitor",
                       mode="append", options={"txnAppId": self.app_id, "txnVersion": str(batch_id)})
        # Scored windows and the earlier ones sent along (priors), ordered for ``for: N`` rules;
        # each window's features JSON is parsed once, for the scores table and the rules alike.
        ordered = out[~is_raw].sort_values(["entity_type", "entity_id", "window_start"], kind="stable")
        ordered = ordered.reset_index(drop=True)
        current = (ordered["kind"] == "score").to_numpy()
        stats.windows = int(current.sum())
        if not stats.windows:
            return stats
        # One frame of the features (a column per feature) serves the scores' maps and the rules.
        features = feature_frame(parse_features(ordered["features"]), ordered.index)
        scored = ordered[current]
        stats.max_score = float(scored["score"].max())
        stats.newest_window = pd.Timestamp(scored["window_start"].max()).isoformat()
        self._write_scores(scored, batch_id, features[current])
        stats.alerts = self._write_alerts(ordered, features, current, batch_id)
        return stats

    def _write_scores(self, scored: pd.DataFrame, batch_id: int, features: pd.DataFrame) -> None:
        lake = self.lake
        # One Arrow table built column-wise, features map included: no Python object per score
        # (a tuple per row, then a dict per row for the map, cost more than the Delta append).
        df = lake.spark.createDataFrame(score_table(scored, datetime.now(UTC).replace(tzinfo=None), features),
                                        ANOMALY_SCORES.schema)
        lake.ensure_table(ANOMALY_SCORES.name, ANOMALY_SCORES.schema, "monitor")
        # txnAppId/txnVersion: Delta skips the append when this batch already committed it, so a
        # batch replayed after a crash adds nothing (cheaper than a MERGE on every batch).
        lake.write(df, ANOMALY_SCORES.name, "monitor", mode="append",
                   options={"txnAppId": self.app_id, "txnVersion": str(batch_id)})

    def _write_alerts(self, ordered: pd.DataFrame, features: list[dict] | pd.DataFrame, current: np.ndarray,
                      batch_id: int) -> int:
        from health_monitor.alerts.build import make_alerts
        from health_monitor.alerts.store import apply_alerts

        new, hits = alert_rows(ordered, features, current, self.rules, self.domain)
        alerts = make_alerts(new, hits, self.domain)
        return apply_alerts(self.lake, alerts, batch_id, self.app_id)


def alert_rows(ordered: pd.DataFrame, features: list[dict] | pd.DataFrame, current: np.ndarray, rules: Any,
               domain: str) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The rows of a batch that can make an alert, and the rule hits on them (``row`` = position).

    ``ordered``: the batch's scored windows and the earlier ones sent along (priors), by entity
    and window start, with their parsed ``features`` (dicts or :func:`feature_frame`); ``current``
    marks the scored ones. Rules
    run on all of them (``for: N`` rules see a run) but only new windows alert: those a rule hit
    or whose score alerts alone. ``make_alerts`` makes nothing of any other row, and its per-row
    work (a record per row, the evidence JSON) was most of the driver's CPU per window.
    """
    from health_monitor.alerts.policy import DETECTOR_MIN_SCORE

    frame = expand_scored(ordered, features, evidence=False)  # rules never read evidence
    hits = rules.evaluate(domain, frame) if rules is not None else None
    alerting = current & (frame["score"].to_numpy(dtype=float) >= DETECTOR_MIN_SCORE)
    if hits is not None and not hits.empty:
        hits = hits[current[hits["row"].to_numpy()]]
        alerting[hits["row"].to_numpy()] = True
    rows = np.flatnonzero(alerting)
    if hits is not None and not hits.empty:
        remap = {old: new for new, old in enumerate(rows)}
        hits = hits.assign(row=hits["row"].map(remap)).reset_index(drop=True)
    new = frame.iloc[rows].reset_index(drop=True)
    new["evidence"] = parse_evidence(new["evidence"])
    return new, hits


def wanted_rows(batch_df: DataFrame, late_wm_ms: int) -> DataFrame:
    """The rows of a micro-batch the sink writes: scored windows, their priors, and the raw rows
    at or behind the late-event watermark (none while there is no watermark), with ``row_json``.

    The query's raw branch carries each input row as a struct (``query.RAW_ROW``): the filter
    runs first, so only late rows are serialized to JSON. A frame without that column (the
    catch-up's backlog) already has ``row_json``.
    """
    wanted = F.col("kind").isin("score", "prior")
    if late_wm_ms > 0:
        wanted = wanted | ((F.col("kind") == "raw")
                           & (F.col("event_time") <= F.expr(f"timestamp_millis({int(late_wm_ms)})")))
    out = batch_df.filter(wanted)
    if RAW_ROW in out.columns:
        out = out.withColumn("row_json", F.when(F.col("kind") == "raw", F.to_json(F.col(RAW_ROW)))
                             .otherwise(F.col("row_json"))).drop(RAW_ROW)
    return out


def _numeric_features(features: str | dict | None) -> dict[str, float]:
    """The finite numbers of a window's features (JSON or parsed): flags and ids are not scores' features."""
    feats = json.loads(features) if isinstance(features, str) else features or {}
    # exact types: JSON gives int, float, bool, str, None, list, dict (bool is an int subclass)
    return {k: float(v) for k, v in feats.items() if type(v) in (int, float) and math.isfinite(v)}


def score_frame(scored: pd.DataFrame, scored_at: datetime, features: list[dict] | None = None) -> pd.DataFrame:
    """Rows of ``monitor.anomaly_scores`` for a batch's scored windows, built column-wise.

    ``features``: the windows' features already parsed (else read from the JSON column)."""
    ids = _score_ids(scored["model_name"], scored["entity_type"], scored["entity_id"], scored["window_start"])
    out = pd.DataFrame({
        "score_id": ids,
        **{c: scored[c].to_numpy() for c in ("domain", "entity_type", "entity_id", "workspace_id")},
        "window_start": pd.to_datetime(scored["window_start"]).to_numpy(),
        "window_end": pd.to_datetime(scored["window_end"]).to_numpy(),
        # NaN and None both become null in Arrow, as _float did per row
        "value": pd.to_numeric(scored["value"], errors="coerce").to_numpy(dtype=float),
        "expected": pd.to_numeric(scored["expected"], errors="coerce").to_numpy(dtype=float),
        "score": scored["score"].to_numpy(dtype=float),
        "model_name": scored["model_name"].to_numpy(), "model_version": scored["model_version"].to_numpy(),
        "features": [_numeric_features(f) for f in (scored["features"] if features is None else features)],
    })
    out["scored_at"] = pd.Timestamp(scored_at)
    return out


def score_table(scored: pd.DataFrame, scored_at: datetime, features: pd.DataFrame) -> pa.Table:
    """:func:`score_frame`'s rows as an Arrow table, the features map built from whole columns.

    ``features``: the windows' :func:`feature_frame` (same rows, same order). The rows are those
    of :func:`score_frame` (a test holds them equal through Spark); only the order of a map's
    entries may differ, as the frame's column order instead of each window's JSON order.
    """
    n = len(scored)

    def text(col: str) -> pa.Array:
        return pa.array(scored[col].to_numpy(dtype=object), type=pa.string(), from_pandas=True)

    def num(values: Any) -> pa.Array:
        # NaN and None both become null, as on the pandas path
        return pa.array(pd.to_numeric(values, errors="coerce").to_numpy(dtype=float), from_pandas=True)

    ids = _score_ids(scored["model_name"], scored["entity_type"], scored["entity_id"], scored["window_start"])
    columns = {
        "score_id": pa.array(ids, type=pa.string()),
        **{c: text(c) for c in ("domain", "entity_type", "entity_id", "workspace_id")},
        "window_start": pa.array(pd.to_datetime(scored["window_start"]).to_numpy(dtype="datetime64[ns]")),
        "window_end": pa.array(pd.to_datetime(scored["window_end"]).to_numpy(dtype="datetime64[ns]")),
        "value": num(scored["value"]), "expected": num(scored["expected"]), "score": num(scored["score"]),
        "model_name": text("model_name"), "model_version": text("model_version"),
        "features": numeric_feature_maps(features),
        "scored_at": pa.array(np.full(n, np.datetime64(pd.Timestamp(scored_at).to_datetime64(), "ns"))),
    }
    return pa.table(columns)


def numeric_feature_maps(features: pd.DataFrame) -> pa.MapArray:
    """:func:`_numeric_features` of every row of a :func:`feature_frame`, as one Arrow map array.

    Column by column: a float column's finite values, an int column's values, never a bool
    column; a column of mixed Python values (object) is checked value by value as before.
    """
    n = len(features)
    names, masks, values = [], [], []
    for name in features.columns:
        col = features[name]
        kind = col.dtype.kind
        if kind == "b":
            continue  # flags are not scores' features
        if kind in "iuf":
            v = col.to_numpy(dtype=float)
            m = np.isfinite(v)
        else:
            raw = col.to_numpy(dtype=object)
            # exact types (bool is not int here), tested without a Python frame per value
            m = np.fromiter(map(_NUMBER_TYPES.__contains__, map(type, raw)), bool, n)
            v = np.zeros(n)
            v[m] = [float(x) for x in raw[m]]
            m &= np.isfinite(v)
        names.append(str(name))
        masks.append(m)
        values.append(v)
    if not names:
        offsets = np.zeros(n + 1, dtype=np.int32)
        return pa.MapArray.from_arrays(offsets, pa.array([], pa.string()), pa.array([], pa.float64()))
    mask = np.column_stack(masks)  # rows x features: row-major order keeps each row's entries together
    offsets = np.concatenate([[0], np.cumsum(mask.sum(axis=1))]).astype(np.int32)
    keys = np.broadcast_to(np.array(names, dtype=object), mask.shape)[mask]
    items = np.column_stack(values)[mask]
    return pa.MapArray.from_arrays(offsets, pa.array(keys, type=pa.string()), pa.array(items, type=pa.float64()))


_NUMBER_TYPES = frozenset({int, float})


def late_frame(late: pd.DataFrame, query: str, watermark: pd.Timestamp, received_at: datetime) -> pd.DataFrame:
    """Rows of ``monitor.late_rows`` for a batch's raw rows behind the watermark, column-wise."""
    return pd.DataFrame({
        "query_name": query,
        "source_table": late["source_table"].to_numpy(),
        "entity_id": late["entity_id"].to_numpy(),
        "event_time": pd.to_datetime(late["event_time"]).to_numpy(),
        "watermark": watermark,
        "received_at": pd.Timestamp(received_at),
        "row_json": late["row_json"].to_numpy(),
    }, index=range(len(late)))[LATE_ROWS.column_names]


def _score_ids(models: Any, entity_types: Any, entity_ids: Any, window_starts: Any) -> list[str]:
    """:func:`_score_id` of each row; window starts turned into ISO text for all rows at once."""
    starts = pd.to_datetime(pd.Series(window_starts)).to_numpy(dtype="datetime64[ns]")
    whole = (starts.astype(np.int64) % 1_000_000_000) == 0
    # Whole seconds (hourly windows): numpy's ISO text is pd.Timestamp.isoformat()'s; else per row.
    iso = np.where(whole, np.datetime_as_string(starts, unit="s"), "").tolist()
    for i in np.flatnonzero(~whole):
        iso[i] = pd.Timestamp(starts[i]).isoformat()
    return [_hash_id(m, t, e, w) for m, t, e, w in zip(models, entity_types, entity_ids, iso, strict=True)]


def _score_id(model: str, entity_type: str, entity_id: str, window_start: pd.Timestamp) -> str:
    return _hash_id(model, entity_type, entity_id, pd.Timestamp(window_start).isoformat())


def _hash_id(model: str, entity_type: str, entity_id: str, window_start_iso: str) -> str:
    """A score's id: the one hash of model, entity and window start (ISO text)."""
    return hashlib.sha256(f"{model}|{entity_type}|{entity_id}|{window_start_iso}".encode()).hexdigest()[:32]
