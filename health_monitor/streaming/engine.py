"""The streaming engine: one Structured Streaming query per domain, scored per key, written once.

Per domain the query is::

    readStream(Gold facts) -> project (sources.py)
        -> withWatermark(event_time) -> groupBy(entity) -> applyInPandasWithState   [scored windows]
        union  the projected rows themselves                                          [late-row audit]
        -> foreachBatch(sink)

The stateful function (:func:`make_state_function`) keeps each entity's open hourly windows,
rolling baselines and online detector in the state store, inside the query's checkpoint, so
what the detectors learned survives restarts and is always consistent with the committed
offsets. Registered champion models (MLflow) are blended in when they exist.

The sink (:class:`BatchSink`) is idempotent per micro-batch, which with the checkpoint makes the
whole query exactly-once: scores are MERGEd on their deterministic ``score_id``, late rows are
appended with Delta's ``txnAppId``/``txnVersion`` and alerts go through
:func:`health_monitor.streaming.alerts.apply_alerts`, which does the same. A batch replayed after
a crash therefore leaves every table as a single run would.

Rows behind the watermark are dropped by Spark's stateful operator (counted in the query
progress as ``numRowsDroppedByWatermark``); the union branch brings the batch's raw rows to the
sink, which writes the ones at or below the batch's late-event watermark (read from the offset
log) to ``monitor.late_rows``, so they are never silently lost.
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery
from pyspark.sql.streaming.state import GroupStateTimeout

from health_monitor import checkpoints, progress
from health_monitor.errors import HealthMonitorError
from health_monitor.runtime import Lakehouse
from health_monitor.streaming import windows
from health_monitor.streaming.registered import DOMAIN_MODELS, domain_champions
from health_monitor.streaming.sources import INPUTS, SOURCE_TABLES
from health_monitor.streaming.tables import ANOMALY_SCORES, LATE_ROWS

# Spark's Arrow serializer warns when an output frame has an all-null column (the late-row
# columns of scored rows): expected here, and noise in every worker's stderr.
warnings.filterwarnings("ignore", message="The behavior of DataFrame concatenation with empty")

DOMAINS = ("cost", "security", "reliability")

#: How far behind the newest event time a row may arrive and still count (usage records are
#: restated for hours; audit and run rows arrive within minutes).
WATERMARK_DELAY = {"cost": "3 hours", "security": "1 hour", "reliability": "1 hour"}

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

# Queries of one process share the monitor tables; their sinks take turns (Delta commits to one
# table from two threads would conflict).
_SINK_LOCK = threading.Lock()


def query_name(domain: str) -> str:
    """Stable name of a domain's query (also its checkpoint folder)."""
    return f"hm_{domain}"


# ------------------------------------------------------------------------------- scoring
def _detector(domain: str, ks: windows.KeyState):  # noqa: ANN202 - StreamingDetector
    from health_monitor.detectors.base import StreamingDetector

    if ks.detector is not None:
        try:
            det = StreamingDetector.from_state(ks.detector)
            # The class attribute comes from today's code; the saved tag from the code that learned.
            if ks.history.get("detector_version") == f"{det.name}:{type(det).version}":
                return det
        except Exception:  # noqa: BLE001 - state of a detector class that no longer loads
            pass
        # State written by another version of the detector: start it afresh, say so in evidence.
        ks.detector = None
        ks.history["detector_reset"] = True
    logic = windows.LOGIC[domain]
    feats = logic.detector_features
    if feats:
        from health_monitor.detectors.multivariate import MultivariateDetector

        return MultivariateDetector(list(feats), log_features=logic.detector_log_features,
                                    min_scale=dict(logic.detector_min_scale) or 1e-6)
    from health_monitor.detectors.univariate import UnivariateDetector

    return UnivariateDetector()


def _jsonable(v: Any) -> Any:
    if isinstance(v, float | np.floating):
        return None if math.isnan(v) else float(v)
    if isinstance(v, np.integer):
        return int(v)
    return v


def score_windows(domain: str, ks: windows.KeyState, closed: list[dict], ctx: dict) -> pd.DataFrame:
    """Score a key's newly closed windows (oldest first) with its online detector, learning them,
    then blend in registered champions; returns rows in :data:`OUTPUT_SCHEMA` (kind ``score``)."""
    if not closed:
        return pd.DataFrame(columns=OUTPUT_COLUMNS)
    feats = pd.DataFrame([c["features"] for c in closed])
    ts = pd.to_datetime([c["window_start"] for c in closed], unit="ms")
    values = np.array([c["value"] for c in closed], dtype=float)
    det = _detector(domain, ks)
    dfeats = windows.LOGIC[domain].detector_features
    if dfeats:
        frame = feats[list(dfeats)].apply(pd.to_numeric, errors="coerce").astype(float)
        frame.insert(0, "timestamp", ts)
    else:
        frame = pd.DataFrame({"timestamp": ts, "value": values})
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
    score = np.clip(np.nan_to_num(np.asarray(sc.score, dtype=float), nan=0.0), 0.0, 1.0)
    expected = np.asarray(sc.expected, dtype=float)
    model_name, model_version = det.name, str(det.version)
    evidence = [list(e) for e in sc.evidence]
    for champ in domain_champions(ctx.get("registry_uri"), list(ctx.get("models", ()))):
        s = champ.score(feats)
        if s is None:
            continue
        # The online model knows this entity; the champion knows the whole estate: both count.
        score = 0.6 * score + 0.4 * s
        model_name += f"+{champ.name}"
        model_version += f"+{champ.version}"
        for i, v in enumerate(s):
            evidence[i].append(f"{champ.name} v{champ.version} score {v:.2f}")
    feats["recent_high_windows"] = _recent_high(ks, score)
    if domain == "cost":
        feats["cost_usd_at_risk"] = np.where(np.isnan(expected), np.nan, np.maximum(values - expected, 0.0))
    ws = feats.pop("_workspace_id") if "_workspace_id" in feats else pd.Series([ks.workspace_id] * len(feats))
    out = pd.DataFrame({
        "kind": "score", "domain": domain, "entity_type": ks.entity_type, "entity_id": ks.entity_id,
        "workspace_id": ws.astype(object).where(ws.notna(), ks.workspace_id).values,
        "window_start": ts, "window_end": pd.to_datetime([c["window_end"] for c in closed], unit="ms"),
        "value": values, "expected": expected, "score": score,
        "model_name": model_name, "model_version": model_version,
        "features": [json.dumps({k: _jsonable(v) for k, v in r.items()}) for r in feats.to_dict("records")],
        "evidence": [json.dumps(e) for e in evidence],
        "event_time": pd.NaT, "source_table": None, "row_json": None,
    })
    return out[OUTPUT_COLUMNS]


#: How many of a key's latest windows :func:`_recent_high` looks at.
RECENT_WINDOWS = 3


def _recent_high(ks: windows.KeyState, score: np.ndarray) -> list[float]:
    """Per window: how many of the key's last :data:`RECENT_WINDOWS` windows (this one included)
    scored at or above the detector's alert threshold. Kept in the key's state, so it spans
    micro-batches; alerts use it to ask for a sustained deviation before the detector alerts alone."""
    from health_monitor.streaming.alerts import DETECTOR_MIN_SCORE

    last: list = ks.history.setdefault("recent_scores", [])
    out = []
    for s in score:
        last.append(float(s))
        del last[:-RECENT_WINDOWS]
        out.append(float(sum(v >= DETECTOR_MIN_SCORE for v in last)))
    return out


def make_state_function(domain: str, ctx: dict) -> Callable:
    """The ``applyInPandasWithState`` function of a domain (``ctx``: static lookups, registry)."""

    def fn(key: tuple, pdfs: Iterator[pd.DataFrame], state) -> Iterator[pd.DataFrame]:  # noqa: ANN001
        entity_type, entity_id = key
        if entity_type == HEARTBEAT:
            return  # only there to move the watermark
        if state.exists:
            ks = windows.KeyState.loads(state.get[0])
        else:
            ks = windows.KeyState(str(entity_type), str(entity_id))
        for pdf in pdfs:
            windows.accumulate(domain, ks, pdf)
        closed = windows.close_windows(domain, ks, state.getCurrentWatermarkMs(), ctx)
        scored = score_windows(domain, ks, closed, ctx)
        prior = pd.DataFrame(list(ks.recent), columns=OUTPUT_COLUMNS) if closed and ks.recent else None
        if not scored.empty:
            ks.recent.extend(scored.to_dict("records"))
            while len(ks.recent) > PRIOR_WINDOWS:
                ks.recent.pop(0)
        state.update((ks.dumps(),))
        nxt = windows.next_timeout_ms(ks)
        if nxt is not None:
            state.setTimeoutTimestamp(nxt)
        if prior is not None:
            yield prior.assign(kind="prior")
        yield scored

    return fn


# ---------------------------------------------------------------------------------- query
def _static_context(lake: Lakehouse, domain: str) -> dict:
    """Small lookups the scorer needs on every executor: budgets and SLAs, and the registry."""
    ctx: dict[str, Any] = {"models": DOMAIN_MODELS.get(domain, ()),
                           "registry_uri": lake.settings.registry_uri}
    if domain == "cost" and lake.exists("commit_configurations"):
        rows = lake.read("commit_configurations").where("workspace_id IS NOT NULL").collect()
        # The latest commit year per workspace, spread evenly over twelve months.
        latest: dict[str, tuple[int, float]] = {}
        for r in rows:
            if r.workspace_id not in latest or r.commit_year > latest[r.workspace_id][0]:
                latest[r.workspace_id] = (r.commit_year, float(r.commit_amount) / 12.0)
        ctx["budgets"] = {ws: v for ws, (_, v) in latest.items()}
    if domain == "reliability" and lake.exists("sla_definitions"):
        rows = lake.read("sla_definitions").where("sla_type = 'MAX_DURATION'").collect()
        ctx["sla"] = {(r.workspace_id, r.job_id): float(r.max_duration_minutes) * 60
                      for r in rows if r.max_duration_minutes is not None}
    return ctx


HEARTBEAT = "__heartbeat__"


def build_stream(lake: Lakehouse, domain: str, max_files: int | None = None,
                 heartbeat_dir: Path | None = None) -> DataFrame:
    """The streaming DataFrame of a domain: scored windows unioned with the raw rows.

    ``heartbeat_dir``: a folder of JSON files ``{"event_time": ...}`` streamed alongside the Gold
    rows. A heartbeat only moves the watermark (the scorer ignores it): a finite recording uses
    one to say "the recording ends here", so its last windows close as they would in a live
    estate where other entities' events move the watermark on.
    """
    if domain not in INPUTS:
        raise HealthMonitorError(f"unknown stream domain {domain!r}; expected one of {', '.join(DOMAINS)}")
    inp = INPUTS[domain](lake, max_files)
    ctx = _static_context(lake, domain)
    keyed = inp.keyed
    if heartbeat_dir is not None:
        beats = lake.spark.readStream.schema("event_time timestamp").json(str(heartbeat_dir))
        keyed = keyed.unionByName(beats.select(*[
            F.col("event_time") if f.name == "event_time"
            else F.lit(HEARTBEAT).alias(f.name) if f.name in ("entity_type", "entity_id")
            else F.lit(None).cast(f.dataType).alias(f.name)
            for f in keyed.schema.fields]))
    scored = (keyed.withWatermark("event_time", WATERMARK_DELAY[domain])
              .groupBy("entity_type", "entity_id")
              .applyInPandasWithState(make_state_function(domain, ctx), OUTPUT_SCHEMA, STATE_SCHEMA,
                                      "append", GroupStateTimeout.EventTimeTimeout))
    data_cols = [c for c in inp.rows.columns if c not in ("source_table",)]
    raw = inp.rows.select(
        F.lit("raw").alias("kind"), F.lit(domain).alias("domain"), F.lit(None).cast("string").alias("entity_type"),
        F.col("entity_id").cast("string").alias("entity_id"), F.col("workspace_id").cast("string").alias("workspace_id"),
        *[F.lit(None).cast(t).alias(c) for c, t in (
            ("window_start", "timestamp"), ("window_end", "timestamp"), ("value", "double"),
            ("expected", "double"), ("score", "double"), ("model_name", "string"),
            ("model_version", "string"), ("features", "string"), ("evidence", "string"))],
        F.col("event_time"), F.col("source_table"),
        F.to_json(F.struct(*[F.col(c) for c in data_cols])).alias("row_json"),
    )
    return scored.unionByName(raw)


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


def expand_scored(pdf: pd.DataFrame) -> pd.DataFrame:
    """Scored rows with their features JSON spread into columns and evidence as lists."""
    if pdf.empty:
        return pdf.assign(evidence=[])
    feats = pd.DataFrame([json.loads(f) if f else {} for f in pdf["features"]], index=pdf.index)
    base = pdf.drop(columns=["features", "evidence", "kind", "event_time", "source_table", "row_json"],
                    errors="ignore")
    feats = feats[[c for c in feats.columns if c not in base.columns]]
    for c in feats.columns:
        # JSON null (NaN) leaves a numeric feature as object; ids stay strings (they are quoted).
        if feats[c].dtype == object and all(v is None or isinstance(v, int | float) for v in feats[c]):
            feats[c] = pd.to_numeric(feats[c], errors="coerce").astype(float)
    out = pd.concat([base, feats], axis=1)
    out["evidence"] = [json.loads(e) if e else [] for e in pdf["evidence"]]
    return out


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

    def __call__(self, batch_df: DataFrame, batch_id: int) -> None:
        t0 = time.monotonic()
        batch_df.persist()
        try:
            with _SINK_LOCK:
                stats = self._write(batch_df, int(batch_id))
        finally:
            batch_df.unpersist()
        stats.seconds = round(time.monotonic() - t0, 2)
        stats.finished_at = datetime.now(UTC).isoformat()
        totals = dict(self.last.totals)
        for k in ("windows", "late_rows", "alerts"):
            totals[k] += getattr(stats, k)
        totals["batches"] += 1
        stats.totals = totals
        self.last = stats

    def _write(self, batch_df: DataFrame, batch_id: int) -> BatchStats:
        lake = self.lake
        stats = BatchStats(batch_id=batch_id)
        out = batch_df.filter(F.col("kind").isin("score", "prior")).toPandas()
        late_wm = checkpoints.late_event_watermark_ms(self.location, batch_id)
        if late_wm > 0:
            stats.late_watermark = _as_ts(late_wm).isoformat()
            late = (batch_df.filter((F.col("kind") == "raw") & (F.col("event_time") <= F.expr(f"timestamp_millis({late_wm})")))
                    .select(F.lit(self.name).alias("query_name"), "source_table", "entity_id", "event_time",
                            F.expr(f"timestamp_millis({late_wm})").alias("watermark"),
                            F.current_timestamp().alias("received_at"), "row_json"))
            stats.late_rows = late.count()
            if stats.late_rows:
                lake.ensure_table(LATE_ROWS.name, LATE_ROWS.schema, "monitor")
                # txnAppId/txnVersion: Delta skips this append if the batch was already written.
                lake.write(late.select(*LATE_ROWS.column_names), LATE_ROWS.name, "monitor", mode="append",
                           options={"txnAppId": self.app_id, "txnVersion": str(batch_id)})
        scored = out[out["kind"] == "score"]
        stats.windows = len(scored)
        if scored.empty:
            return stats
        stats.max_score = float(scored["score"].max())
        stats.newest_window = pd.Timestamp(scored["window_start"].max()).isoformat()
        self._write_scores(scored, batch_id)
        stats.alerts = self._write_alerts(out, batch_id)
        return stats

    def _write_scores(self, scored: pd.DataFrame, batch_id: int) -> None:
        lake = self.lake
        now = datetime.now(UTC).replace(tzinfo=None)
        rows = []
        for r in scored.itertuples(index=False):
            feats = json.loads(r.features) if r.features else {}
            rows.append((
                _score_id(r.model_name, r.entity_type, r.entity_id, r.window_start),
                r.domain, r.entity_type, r.entity_id, r.workspace_id,
                r.window_start.to_pydatetime(), r.window_end.to_pydatetime(),
                _float(r.value), _float(r.expected), float(r.score), r.model_name, r.model_version,
                {k: float(v) for k, v in feats.items()
                 if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)},
                now,
            ))
        df = lake.spark.createDataFrame(rows, ANOMALY_SCORES.schema)
        lake.ensure_table(ANOMALY_SCORES.name, ANOMALY_SCORES.schema, "monitor")
        # txnAppId/txnVersion: Delta skips the append when this batch already committed it, so a
        # batch replayed after a crash adds nothing (cheaper than a MERGE on every batch).
        lake.write(df, ANOMALY_SCORES.name, "monitor", mode="append",
                   options={"txnAppId": self.app_id, "txnVersion": str(batch_id)})

    def _write_alerts(self, out: pd.DataFrame, batch_id: int) -> int:
        from health_monitor.streaming.alerts import apply_alerts, make_alerts

        ordered = out.sort_values(["entity_type", "entity_id", "window_start"], kind="stable")
        ordered = ordered.reset_index(drop=True)
        # Earlier windows came along only so ``for: N`` rules see a run; alert on new windows only.
        current = (ordered["kind"] == "score").to_numpy()
        frame = expand_scored(ordered)
        hits = self.rules.evaluate(self.domain, frame) if self.rules is not None else None
        if hits is not None and not hits.empty:
            hits = hits[current[hits["row"].to_numpy()]]
            keep = np.flatnonzero(current)
            remap = {old: new for new, old in enumerate(keep)}
            hits = hits.assign(row=hits["row"].map(remap)).reset_index(drop=True)
        new = frame[current].reset_index(drop=True)
        alerts = make_alerts(new, hits, self.domain)
        return apply_alerts(self.lake, alerts, batch_id, self.app_id)


def _float(v: Any) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def _score_id(model: str, entity_type: str, entity_id: str, window_start: pd.Timestamp) -> str:
    import hashlib

    key = f"{model}|{entity_type}|{entity_id}|{pd.Timestamp(window_start).isoformat()}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]


# ------------------------------------------------------------------------------ running
@dataclass
class StreamRun:
    """The queries one ``stream start`` runs, with their sinks (for progress and status)."""

    lake: Lakehouse
    queries: dict[str, StreamingQuery]
    sinks: dict[str, BatchSink]
    seen_batches: dict[str, int] = field(default_factory=dict)

    def active(self) -> bool:
        return any(q.isActive for q in self.queries.values())

    def check(self) -> None:
        """Raise the first query failure as a one-line error (after stopping the others)."""
        for name, q in self.queries.items():
            exc = q.exception()
            if exc is not None:
                self.stop()
                msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise HealthMonitorError(f"stream query {name} failed: {msg}")

    def report(self) -> None:
        """Print a progress line per finished micro-batch and refresh each query's status file."""
        for domain, q in self.queries.items():
            sink = self.sinks[domain]
            stats = sink.last
            if stats.batch_id < 0 or self.seen_batches.get(domain) == stats.batch_id:
                continue
            prog = _progress_for(q, stats.batch_id)
            if prog.get("batchId") != stats.batch_id and q.isActive:
                continue  # Spark posts the batch's progress just after the sink returns
            self.seen_batches[domain] = stats.batch_id
            dropped = sum(int(op.get("numRowsDroppedByWatermark", 0)) for op in prog.get("stateOperators", []))
            progress.info(
                f"{domain} batch {stats.batch_id}: {prog.get('numInputRows', 0):,} rows in, "
                f"{stats.windows} windows scored (max score {stats.max_score:.2f}), "
                f"{stats.late_rows} late ({dropped} dropped by watermark), {stats.alerts} alert rows, "
                f"{stats.seconds:.1f}s")
            self.write_status(domain, prog)

    def write_status(self, domain: str, prog: dict | None = None) -> None:
        q, sink = self.queries[domain], self.sinks[domain]
        prog = prog if prog is not None else (q.lastProgress or {})
        checkpoints.write_status(sink.location, {
            "query": sink.name, "domain": domain, "run_id": str(q.runId), "active": q.isActive,
            "last_batch": vars(sink.last) | {"totals": sink.last.totals},
            "progress": {k: prog.get(k) for k in ("batchId", "timestamp", "numInputRows",
                                                  "inputRowsPerSecond", "processedRowsPerSecond",
                                                  "eventTime", "sources")},
            "dropped_by_watermark": sum(int(op.get("numRowsDroppedByWatermark", 0))
                                        for op in prog.get("stateOperators", [])),
            "updated_at": datetime.now(UTC).isoformat(),
        })

    def stop(self, drain_s: float = 0.0) -> None:
        """Stop every query; with ``drain_s`` first let a running micro-batch finish (up to that long).

        Stopping mid-batch is safe (the sinks are idempotent and the batch reruns on restart);
        draining just avoids redoing the work.
        """
        deadline = time.monotonic() + drain_s
        while drain_s and time.monotonic() < deadline and any(
                q.isActive and q.status.get("isTriggerActive") for q in self.queries.values()):
            time.sleep(0.2)
        for q in self.queries.values():
            with contextlib.suppress(Exception):  # already stopped or failed: nothing to stop
                q.stop()


def _progress_for(q: StreamingQuery, batch_id: int) -> dict:
    for p in reversed(q.recentProgress or []):
        if p.get("batchId") == batch_id:
            return p
    return q.lastProgress or {}


def available_domains(lake: Lakehouse, domains: list[str] | tuple[str, ...] = DOMAINS) -> list[str]:
    """The requested domains whose source tables exist."""
    return [d for d in domains if any(lake.exists(t) for t in SOURCE_TABLES[d])]


def start_streams(lake: Lakehouse, domains: list[str] | tuple[str, ...] = DOMAINS,
                  trigger: str | None = "30 seconds", available_now: bool = False,
                  max_files_per_trigger: int | None = None, rules: Any = None,
                  shuffle_partitions: int | None = None, heartbeat_dir: Path | None = None) -> StreamRun:
    """Start one query per domain (those with source tables) and return them running.

    Args:
        lake: the lakehouse (Gold tables in, monitor tables out).
        domains: subset of :data:`DOMAINS`.
        trigger: processing-time trigger interval (``"30 seconds"``) when not ``available_now``.
        available_now: process everything available in as many batches as needed, then stop.
        max_files_per_trigger: Delta source rate limit (smaller batches; replay and tests use it).
        rules: a :class:`~health_monitor.rules.RuleSet`; loaded from the settings when None.
        shuffle_partitions: state-store partitions of a *new* checkpoint (default: the session's);
            small replays run faster on one (fewer Python workers to start).
        heartbeat_dir: watermark heartbeats for finite recordings (see :func:`build_stream`).
    """
    bad = [d for d in domains if d not in DOMAINS]
    if bad:
        raise HealthMonitorError(f"unknown stream domain(s) {', '.join(bad)}; expected {', '.join(DOMAINS)}")
    todo = available_domains(lake, domains)
    if not todo:
        raise HealthMonitorError(
            f"no Gold source tables for {', '.join(domains)} in {lake.settings.data_dir}: "
            "run 'health-monitor simulate' (or ingest and build) first")
    if rules is None:
        from health_monitor.rules import load_rules

        rules = load_rules(lake.settings)
    queries, sinks = {}, {}
    conf = lake.spark.conf
    previous = conf.get("spark.sql.shuffle.partitions")
    if shuffle_partitions:
        # Each query clones the session conf when it starts; the checkpoint then keeps the value.
        conf.set("spark.sql.shuffle.partitions", str(shuffle_partitions))
    try:
        for domain in todo:
            sink = BatchSink(lake, domain, rules)
            writer = (build_stream(lake, domain, max_files_per_trigger, heartbeat_dir).writeStream
                      .queryName(sink.name)
                      .option("checkpointLocation", str(sink.location))
                      .outputMode("append")
                      .foreachBatch(sink))
            writer = writer.trigger(availableNow=True) if available_now else writer.trigger(
                processingTime=trigger or "30 seconds")
            queries[domain] = writer.start()
            sinks[domain] = sink
    except Exception:
        for q in queries.values():
            q.stop()
        raise
    finally:
        conf.set("spark.sql.shuffle.partitions", previous)
    return StreamRun(lake, queries, sinks)


def wait(run: StreamRun, stop_event: threading.Event | None = None, poll_s: float = 0.5) -> None:
    """Report progress until every query has finished (availableNow) or ``stop_event`` is set."""
    try:
        while run.active():
            run.check()
            run.report()
            if stop_event is not None and stop_event.is_set():
                progress.info("stopping: letting the running micro-batch finish ...")
                run.stop(drain_s=120.0)
                break
            time.sleep(poll_s)
        run.check()
        run.report()
    finally:
        for domain in run.queries:
            run.write_status(domain)


def run_available_now(lake: Lakehouse, domains: list[str] | tuple[str, ...] = DOMAINS,
                      max_files_per_trigger: int | None = None, rules: Any = None,
                      shuffle_partitions: int | None = None,
                      heartbeat_dir: Path | None = None) -> dict[str, BatchStats]:
    """Process everything the Gold tables hold now, then return each domain's last batch stats."""
    run = start_streams(lake, domains, available_now=True, max_files_per_trigger=max_files_per_trigger,
                        rules=rules, shuffle_partitions=shuffle_partitions, heartbeat_dir=heartbeat_dir)
    wait(run)
    return {d: s.last for d, s in run.sinks.items()}


def pid_file(lake: Lakehouse) -> Path:
    """Where ``stream start`` records its process id (``stream stop`` signals it)."""
    return lake.settings.data_dir / "stream.pid"


def reset_stream(lake: Lakehouse, domain: str) -> str:
    """Forget a domain's stream: checkpoint (offsets, state, learned models), its anomaly scores
    and late rows; returns the new txnAppId. Alerts stay (people may have acknowledged them): the
    rerun folds into the same alert ids. Run it while the stream is stopped."""
    name = query_name(domain)
    new_app = checkpoints.reset_checkpoint(lake.settings, name)
    for table, cond in ((ANOMALY_SCORES.name, f"domain = '{domain}'"), (LATE_ROWS.name, f"query_name = '{name}'")):
        if lake.exists(table, "monitor"):
            with lake.writer_lock(table, "monitor"):
                lake.spark.sql(f"DELETE FROM {lake.table_name(table, 'monitor')} WHERE {cond}")
    return new_app
