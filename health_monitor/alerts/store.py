"""Storing alerts: candidates folded into ``monitor.alerts``, exactly once.

A continuing incident (same entity and alert type, windows within :func:`suppression_gap`)
updates one row instead of opening a new one. The write carries Delta's idempotent-write options
(txnAppId = the query's app id, txnVersion = the micro-batch id), so replaying a batch after a
crash is skipped by Delta itself and the table ends exactly as after one application.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from health_monitor.alerts.build import _evidence_list, _naive, _num, severity_level
from health_monitor.alerts.policy import detector_alert_type
from health_monitor.domains import SPECS
from health_monitor.streaming.tables import ALERTS

if TYPE_CHECKING:
    from health_monitor.runtime import Lakehouse

LAYER = "monitor"
#: Windows of one entity and alert type closer than this belong to the same incident.
SUPPRESSION_GAP = pd.Timedelta(hours=6)
#: Longer gaps per entity type. A job's windows exist only where it ran: a daily job that fails
#: or overruns again the next day is the same continuing incident, not a new one.
SUPPRESSION_GAP_BY_ENTITY = {"job": pd.Timedelta(hours=30)}
#: Longer gaps per alert type. A budget overrun or a workspace's untagged spend is a state, not an
#: event: a rate hovering around its threshold, or an untagged cluster that is material only in
#: the busy hours of each day, must not open a new alert each time it crosses the line (one
#: simulated untagged cluster opened nine alerts in ten days with the 6-hour gap).
SUPPRESSION_GAP_BY_TYPE = {"budget_burn": pd.Timedelta(days=7), "untagged_spend": pd.Timedelta(days=7)}


def suppression_gap(entity_type: str | None, alert_type: str | None = None) -> pd.Timedelta:
    """How far apart two windows of one entity and alert type may be and still be one incident."""
    return SUPPRESSION_GAP_BY_TYPE.get(str(alert_type),
                                       SUPPRESSION_GAP_BY_ENTITY.get(str(entity_type), SUPPRESSION_GAP))


MAX_SUPPRESSION_GAP = max([SUPPRESSION_GAP, *SUPPRESSION_GAP_BY_ENTITY.values(), *SUPPRESSION_GAP_BY_TYPE.values()])
# One process may run several streaming queries whose foreachBatch threads all write alerts:
# Delta would reject concurrent overwrites of one table, so they take turns.
_APPLY_LOCK = threading.Lock()


def fold_alerts(existing: pd.DataFrame, candidates: pd.DataFrame,
                gap: pd.Timedelta | None = None) -> pd.DataFrame:
    """The rows to upsert: candidates folded into open incidents (pure, deterministic).

    ``existing`` holds the table's current rows for the candidates' entities. Candidates are
    applied in window order; one within ``gap`` (default: :func:`suppression_gap` of the
    candidate's entity type) of an incident's windows extends it (window_end,
    last_seen_at, max score and severity, occurrences for each later window, evidence union),
    otherwise it opens a new incident whose alert_id comes from its own first window.
    """
    if candidates.empty:
        return candidates.iloc[0:0]
    keys = ["entity_type", "entity_id", "alert_type"]
    incidents: dict[tuple, list[dict[str, Any]]] = {}
    for rec in existing.to_dict("records") if not existing.empty else []:
        incidents.setdefault(tuple(rec[k] for k in keys), []).append(rec)
    touched: dict[str, dict[str, Any]] = {}
    # Window order per entity, rule-typed candidates before detector-only ones of the same window,
    # so the detector's window can join the rule's incident.
    generic = {detector_alert_type(d.name) for d in SPECS}
    cands = candidates.assign(_ws=candidates["window_start"].map(_naive),
                              _generic=candidates["alert_type"].isin(generic)).sort_values(
        ["entity_type", "entity_id", "_ws", "_generic", "alert_type", "window_end", "alert_id"], kind="stable")
    for cand in cands.drop(columns=["_ws", "_generic"]).to_dict("records"):
        key = tuple(cand[k] for k in keys)
        start, end = _naive(cand["window_start"]), _naive(cand["window_end"])
        cand_gap = gap if gap is not None else suppression_gap(cand["entity_type"], cand["alert_type"])
        match = _find_incident(incidents.get(key, []), start, end, cand_gap)
        if match is None and cand["alert_type"] == detector_alert_type(str(cand["domain"])):
            # A detector-only window inside a rule-typed incident of the same entity (the spike's
            # tail, below the rule's threshold but still anomalous) continues that incident.
            related = [inc for k, incs in incidents.items() if k[:2] == key[:2]
                       for inc in incs if inc["domain"] == cand["domain"]]
            match = _find_incident(related, start, end, cand_gap)
        if match is None:
            new = dict(cand)
            new["evidence"] = list(cand["evidence"] or [])
            incidents.setdefault(key, []).append(new)
            touched[new["alert_id"]] = new
            continue
        inc = match
        if end > _naive(inc["window_end"]):
            inc["occurrences"] = int(inc.get("occurrences") or 1) + 1
            inc["window_end"] = end
        inc["window_start"] = min(_naive(inc["window_start"]), start)
        inc["last_seen_at"] = max(_naive(inc.get("last_seen_at") or inc["window_end"]), end)
        if float(cand["score"]) > float(inc["score"]):
            for k in ("score", "summary", "deviation_pct", "model_name", "model_version"):
                inc[k] = cand[k]
        if severity_level(cand["severity"]) > severity_level(inc["severity"]):
            inc["severity"] = cand["severity"]
            inc["summary"] = cand["summary"]  # it says why this severity (detector-only alerts)
        impacts = [v for v in (_num(inc.get("impact_usd")), _num(cand.get("impact_usd"))) if v is not None]
        inc["impact_usd"] = max(impacts) if impacts else None
        old_ev = inc.get("evidence")
        old_ev = old_ev.tolist() if isinstance(old_ev, np.ndarray) else list(old_ev or [])
        inc["evidence"] = _evidence_list(old_ev, cand["evidence"])
        inc["updated_at"] = cand["updated_at"]
        touched[inc["alert_id"]] = inc
    rows = pd.DataFrame(list(touched.values()))
    return rows[ALERTS.column_names].sort_values("alert_id", ignore_index=True)


def _find_incident(incidents: list[dict[str, Any]], start: pd.Timestamp, end: pd.Timestamp,
                   gap: pd.Timedelta) -> dict[str, Any] | None:
    """The latest incident whose windows lie within ``gap`` of [start, end], if any."""
    for inc in sorted(incidents, key=lambda r: (_naive(r["window_end"]), r["alert_id"]), reverse=True):
        if start <= _naive(inc["window_end"]) + gap and end >= _naive(inc["window_start"]) - gap:
            return inc
    return None


def apply_alerts(lake: Lakehouse, alerts_pdf: pd.DataFrame, batch_id: int, app_id: str) -> int:
    """Fold one micro-batch's candidate alerts into ``monitor.alerts``, exactly once.

    The folded rows replace the table's rows with the same alert ids in one Delta commit
    (``replaceWhere`` on those ids: an upsert; a plain append when every row is a new incident),
    written with the DataFrameWriter options
    ``txnAppId`` / ``txnVersion`` (``app_id`` / ``batch_id``): a batch that already committed is
    skipped by Delta when the stream replays it after a crash. Writer options, not session confs,
    so it works on Spark Connect and serverless, and concurrent queries cannot see each other's.

    Returns:
        The number of alert rows inserted or updated (0 when the batch was already applied).
    """
    if alerts_pdf is None or alerts_pdf.empty:
        return 0
    with _APPLY_LOCK, lake.writer_lock(ALERTS.name, LAYER):
        lake.ensure_table(ALERTS.name, ALERTS.schema, LAYER)
        before = _table_version(lake)
        existing = _existing_for(lake, alerts_pdf, before)
        rows = fold_alerts(existing, alerts_pdf)
        if rows.empty:
            return 0
        ids = sorted(set(rows["alert_id"]))
        bad = [i for i in ids if not _ALERT_ID.fullmatch(str(i))]
        if bad:  # ids are sha256 prefixes (alert_id_for): anything else would not be safe to inline
            raise ValueError(f"unexpected alert id {bad[0]!r}")
        df = lake.spark.createDataFrame(_to_arrow(rows), ALERTS.schema)
        txn = {"txnAppId": app_id, "txnVersion": str(int(batch_id))}
        if existing.empty or not rows["alert_id"].isin(set(existing["alert_id"])).any():
            # Only new incidents: an append, which skips replaceWhere's scan of the table for rows
            # to replace (an id is its incident's first window, so a stored row with one of these
            # ids would be among `existing`, which holds the candidates' entities back to the gap).
            lake.write(df, ALERTS.name, LAYER, mode="append", options=txn)
        else:
            # Every written row's id is in the predicate by construction: Delta's check that it
            # is (generated code for an unoptimized IN of every id, evaluated per row) is skipped.
            with _replace_where_unchecked(lake.spark):
                lake.write(df, ALERTS.name, LAYER, mode="overwrite", options={
                    "replaceWhere": f"alert_id IN ({', '.join(repr(str(i)) for i in ids)})", **txn})
        after = _table_version(lake)
        _cache_commit(lake, before, after, rows)
        # Delta skips a write whose (txnAppId, txnVersion) it has already committed.
        return len(rows) if after > before else 0


_ALERT_ID = re.compile(r"[0-9a-f]{8,64}")
#: Delta's check that every row a ``replaceWhere`` write brings matches the predicate (a session
#: conf: Delta has no writer option for it).
_CONSTRAINT_CHECK = "spark.databricks.delta.replaceWhere.constraintCheck.enabled"


@contextmanager
def _replace_where_unchecked(spark: Any) -> Iterator[None]:
    """Turn Delta's replaceWhere constraint check off for one write, then restore the conf.

    With an ``alert_id IN (...)`` of a batch's ~4,700 ids the check was most of the write's cost:
    Delta builds it without the optimizer, so it stays a linear ``In`` of every literal, compiled
    anew each batch (its code changes with the ids) and evaluated on each row. The rows written
    are exactly the ids of the predicate, so the check cannot fail. Only the check changes:
    exactly-once still rests on the writer options ``txnAppId``/``txnVersion``. Another write of
    the same session meanwhile (callers hold ``_APPLY_LOCK``; no other code uses replaceWhere)
    could at most skip that same check. Where the conf cannot be set (a platform that restricts
    session confs) the write runs with the check.
    """
    try:
        before = spark.conf.get(_CONSTRAINT_CHECK, None)
        spark.conf.set(_CONSTRAINT_CHECK, "false")
    except Exception:  # noqa: BLE001 - a conf the platform refuses: write with the check
        yield
        return
    try:
        yield
    finally:
        if before is None:
            spark.conf.unset(_CONSTRAINT_CHECK)
        else:
            spark.conf.set(_CONSTRAINT_CHECK, before)


# The stream process is the only writer of monitor.alerts, so it can keep the recent incidents in
# memory between micro-batches instead of re-reading them: valid while the table's version is the
# one the cache was built at (anything else, e.g. a reset, shows up as a different version or a
# recreated log and the next batch reads the table again). Local only: on Databricks the version
# lookup would cost as much as the read.
@dataclass
class _IncidentCache:
    identity: tuple
    version: int
    horizon: pd.Timestamp  # holds every row whose window_end >= horizon
    rows: pd.DataFrame


_CACHE: dict[str, _IncidentCache] = {}
#: How much older than the batch's earliest window the cache reaches back (late data).
CACHE_REACH = pd.Timedelta(days=2)


def _table_identity(lake: Lakehouse) -> tuple | None:
    """Identifies one incarnation of the local table (a deleted and recreated table differs)."""
    if lake.settings.is_databricks:
        return None
    first = lake.location(ALERTS.name, LAYER) / "_delta_log" / f"{0:020d}.json"
    try:
        st = first.stat()
    except OSError:
        return None
    return (str(first), st.st_ino, st.st_mtime_ns)


def _cache_commit(lake: Lakehouse, before: int, after: int, rows: pd.DataFrame) -> None:
    """Fold the rows just merged into the cache (or drop it when the versions do not line up)."""
    identity = _table_identity(lake)
    cache = _CACHE.get(str(identity[0])) if identity else None
    if cache is None:
        return
    if after == before:
        return  # skipped replay: the table did not change
    if after != before + 1 or cache.version != before or cache.identity != identity:
        _CACHE.pop(str(identity[0]), None)
        return
    keep = cache.rows[~cache.rows["alert_id"].isin(set(rows["alert_id"]))]
    cache.rows = pd.concat([keep, rows[rows["window_end"].map(_naive) >= cache.horizon]], ignore_index=True)
    cache.version = after


def _table_version(lake: Lakehouse) -> int:
    """Current version of the alerts table (a skipped idempotent write does not advance it)."""
    return lake.latest_version(ALERTS.name, LAYER)


def _existing_for(lake: Lakehouse, candidates: pd.DataFrame, version: int) -> pd.DataFrame:
    """Current rows that candidates may continue: same entities, windows within the gap."""
    from pyspark.sql import functions as F

    earliest = min(_naive(t) for t in candidates["window_start"]) - MAX_SUPPRESSION_GAP
    ids = set(candidates["entity_id"].astype(str))
    identity = _table_identity(lake)
    cache = _CACHE.get(str(identity[0])) if identity else None
    if not (cache and cache.identity == identity and cache.version == version and earliest >= cache.horizon):
        horizon = earliest - CACHE_REACH
        df = lake.read(ALERTS.name, LAYER).where(
            F.col("window_end") >= F.lit(horizon.to_pydatetime().replace(tzinfo=UTC)))
        rows = df.toPandas()
        if identity is None:
            return rows[rows["entity_id"].isin(ids) & (rows["window_end"] >= earliest)]
        cache = _CACHE[str(identity[0])] = _IncidentCache(identity, version, horizon, rows)
    elif earliest - CACHE_REACH > cache.horizon + pd.Timedelta(days=1):
        # Slide the horizon forward so a long-running stream does not keep every old alert.
        cache.horizon = earliest - CACHE_REACH
        cache.rows = cache.rows[cache.rows["window_end"].map(_naive) >= cache.horizon].reset_index(drop=True)
    rows = cache.rows
    return rows[rows["entity_id"].isin(ids) & (rows["window_end"].map(_naive) >= earliest)]


def _to_arrow(rows: pd.DataFrame) -> pa.Table:
    """The rows of :func:`_to_spark_rows` as one Arrow table, built column by column.

    A tuple per alert made PySpark check each value and pickle each row, and a Python worker
    unpickle them again in the JVM's job: per alert, several times the cost of the rest of the
    write. Timestamps are UTC instants (``_naive`` of each value: an aware one converted, a naive
    one read as UTC), as the aware datetimes of :func:`_to_spark_rows`; NaN becomes null.
    """
    cols: dict[str, pa.Array] = {}
    for col in ALERTS.columns:
        values = rows[col.name] if col.name in rows.columns else pd.Series([None] * len(rows), dtype=object)
        kind = col.data_type.typeName()
        if kind == "timestamp":
            ts = _utc_naive(values)
            cols[col.name] = pa.array(ts, type=pa.timestamp("us", tz="UTC"), from_pandas=True)
        elif kind in ("double", "integer"):
            nums = pd.to_numeric(values, errors="raise").to_numpy(dtype=float)
            if kind == "integer":
                cols[col.name] = pa.array(nums, from_pandas=True).cast(pa.int32())
            else:
                cols[col.name] = pa.array(nums, from_pandas=True)
        elif kind == "array":
            cols[col.name] = pa.array([None if v is None or (isinstance(v, float) and math.isnan(v))
                                       else (v.tolist() if isinstance(v, np.ndarray) else list(v))
                                       for v in values], type=pa.list_(pa.string()))
        else:
            cols[col.name] = pa.array(values.to_numpy(dtype=object), type=pa.string(), from_pandas=True)
    return pa.table(cols)


def _utc_naive(values: pd.Series) -> np.ndarray:
    """Each value's ``_naive`` (UTC, no zone) as datetime64[us]; NaT where missing."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[us]")
    if values.dtype.kind == "M":
        return values.to_numpy(dtype="datetime64[us]")
    return np.array([np.datetime64("NaT", "us") if v is None or v is pd.NaT
                     or (isinstance(v, float) and math.isnan(v))
                     else _naive(v).to_datetime64().astype("datetime64[us]") for v in values])


def _to_spark_rows(rows: pd.DataFrame) -> list[tuple]:
    """Plain Python values in contract order (no NaN in nullable columns, lists for arrays)."""
    out = []
    for rec in rows.to_dict("records"):
        vals = []
        for col in ALERTS.columns:
            v = rec.get(col.name)
            if isinstance(v, np.ndarray):
                v = v.tolist()
            if v is pd.NaT or (isinstance(v, float) and math.isnan(v)):
                v = None
            elif isinstance(v, pd.Timestamp | datetime):
                # Aware UTC datetimes: PySpark would read naive ones in the machine's local zone.
                v = _naive(v).to_pydatetime().replace(tzinfo=UTC)
            elif isinstance(v, np.generic):
                v = v.item()
            if col.name == "occurrences" and v is not None:
                v = int(v)
            vals.append(v)
        out.append(tuple(vals))
    return out
