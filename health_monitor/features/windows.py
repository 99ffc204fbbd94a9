"""Window feature tables: the streams' own window features, replayed over Gold history.

The champions a stream blends in (``DomainSpec.models``) must see exactly the features the
stream computes for a closed window. So they do not train on a second definition: this module
runs the stream's code over the Gold history and writes what it produces, one row per closed
hourly window, to the domain's window table (``DomainSpec.window_table``, features layer):

- the rows are projected by the stream's input builder (:mod:`health_monitor.streaming.sources`),
  which is handed batch reads of the same Gold tables instead of ``readStream``
  (:class:`_BatchGold`);
- each key's rows go through :func:`health_monitor.streaming.windows.accumulate` and
  :func:`~health_monitor.streaming.windows.close_windows`, exactly as the stream's stateful
  function calls them (one call per key here, per micro-batch there; features are computed from
  the key's history before each window, so they are the same either way).

A change to a window feature therefore reaches training and serving with no second edit. The
replay also reads the data as a live stream received it: a Gold row that says when it arrived
(:data:`ARRIVAL`: billing's ``ingestion_date``) enters its window only if it arrived before that
window closed (:func:`closing_arrival`). A live stream drops a later row (``monitor.late_rows``
lists it): a billing correction retracted and restated days after the inflated original was
scored never reaches the closed window, so the replay does not net it in either.

Late rows are judged too, as revisions (:data:`REVISIONS`): a domain whose input arrives late
(billing: ~28% of its rows, 1-7 days after their hour, corrections days later) gets, beside each
window as it closed (``revision`` 0), the window again as it stood a day later, two days later and
with every row Gold holds (revisions 1, 2, 3), each replayed the same way with that wait instead
of the watermark. A revision is a row only where late rows changed the window's spend (or the
window had no row before: all its rows were late). A billing error's inflated originals are judged
at close, a runaway whose records come a day late when they come.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from health_monitor.domains import spec
from health_monitor.streaming import windows

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from health_monitor.features import GoldInputs

#: Columns of every window table before the window's features.
KEY_COLUMNS = ("entity_type", "entity_id", "workspace_id", "window_start", "window_end", "value")
#: Per-window bookkeeping of the window logic that is not a feature (the scorer pops it too).
_PRIVATE = ("_workspace_id",)
#: Gold tables whose rows say when they arrived: table -> (the stream's event time column, the
#: arrival column). ``ingestion_date`` is a day (system.billing.usage gives no finer time).
ARRIVAL = {"fact_usage": ("usage_start_time", "ingestion_date")}
#: Domains whose windows are judged again when their late rows arrive: domain -> the waits of
#: revisions 1, 2, ... (a wait replaces the watermark's delay in the arrival rule; None: every row
#: Gold holds, the final revision). Revision 0 is the window as the stream closed it.
REVISIONS: dict[str, tuple[str | None, ...]] = {"cost": ("1 day", "2 days", None)}
#: Relative change of a window's spend below which a later replay is not a revision (float noise).
_REVISION_RTOL = 1e-9


def window_columns(domain: str) -> dict[str, str]:
    """The columns of a domain's window frame (what the scorer and its champions see), with their
    type (``double`` or ``string``): the domain's window logic applied to one empty window of
    each of its key types (a job key has features a workspace key has not: its run's spend
    against its usual runs), in the order they first appear."""
    dom = spec(domain)
    if dom.window is None:
        raise KeyError(f"domain {domain!r} has no streaming window")
    cols: dict[str, str] = {}
    for key_type in dom.keys:
        ks = windows.KeyState(key_type, "probe:probe")  # workspace_sku ids are "workspace:sku"
        ks.open[0] = {}
        feats = windows.close_windows(domain, ks, windows.HOUR_MS, {})[0]["features"]
        for k, v in feats.items():
            if k not in _PRIVATE and k not in cols:
                cols[k] = "string" if v is None or isinstance(v, str) else "double"
    return cols


def table_schema(domain: str) -> str:
    """Spark DDL of a domain's window table."""
    types = dict.fromkeys(KEY_COLUMNS[:3], "string") | {"window_start": "timestamp", "window_end": "timestamp",
                                                        "value": "double"}
    types |= {c: t for c, t in window_columns(domain).items() if c not in types}
    return ", ".join(f"`{c}` {t}" for c, t in types.items())  # quoted: ``user`` is a window column


def watermark_ms(domain: str, last_event: Any, delay: str | None = None) -> int:
    """The stream's watermark after it has seen ``last_event``: windows ending by then are closed
    (``delay``: a revision's wait instead of the domain's watermark delay)."""
    delay_td = pd.Timedelta(delay or spec(domain).watermark)
    return int((pd.Timestamp(last_event) - delay_td).value // 1_000_000)


def closing_arrival(first_arrival: pd.Series, delay: str, window_ms: int = windows.HOUR_MS) -> pd.Series:
    """When each hourly window closed, in the arrival column's unit, as a live stream closes it.

    ``first_arrival``: the earliest arrival of the rows of each event hour (index: the hour
    start, any order). A window closes when the watermark (newest event time seen minus the
    domain's ``delay``) passes its end, i.e. when the first row with an event time at or after
    ``end + delay`` arrives: the earliest arrival among all later hours. Returns that arrival per
    hour of the index (NaT where no such row exists: the window is still open). A row is in time
    for its window if it arrived no later than this; arrival on the same day counts as in time
    (the day is all ``ingestion_date`` says).
    """
    s = first_arrival.sort_index()
    hours = pd.DatetimeIndex(s.index)
    never = np.iinfo(np.int64).max  # no arrival known: never closes a window
    ns = pd.to_datetime(s).to_numpy(dtype="datetime64[ns]").astype(np.int64)
    ns = np.where(pd.isna(s.to_numpy()), never, ns)
    # earliest arrival over the hours from each one on, and past the last hour: never
    suffix = np.append(np.minimum.accumulate(ns[::-1])[::-1], never)
    at = hours.searchsorted(hours + pd.Timedelta(milliseconds=window_ms) + pd.Timedelta(delay), side="left")
    closed = suffix[at]
    out = pd.to_datetime(np.where(closed == never, np.iinfo(np.int64).min, closed))  # int64 min is NaT
    return pd.Series(out, index=hours, name="closed_at")


def in_time(rows: pd.DataFrame, event: str, arrival: str, delay: str,
            window_ms: int = windows.HOUR_MS) -> pd.Series:
    """Whether each row arrived before its window closed (pandas; :func:`closing_arrival`'s rule).
    A row without an arrival, or whose window never closed, counts as in time."""
    hour = pd.to_datetime(rows[event]).dt.floor(pd.Timedelta(milliseconds=window_ms))
    arrived = pd.to_datetime(rows[arrival])
    closed = closing_arrival(arrived.groupby(hour).min(), delay, window_ms)
    close = hour.map(closed)
    return (arrived.isna() | close.isna() | (arrived <= close)).rename("in_time")


def replay_key(domain: str, rows: pd.DataFrame, watermark: int, ctx: dict) -> pd.DataFrame:
    """One key's closed windows from its input rows (as the stream's stateful function gets them:
    ``entity_type``, ``entity_id``, ``event_time``, ...), typed as :func:`table_schema`."""
    cols = window_columns(domain)
    if rows.empty:
        return _frame([], cols)
    ks = windows.KeyState(str(rows["entity_type"].iloc[0]), str(rows["entity_id"].iloc[0]))
    windows.accumulate(domain, ks, rows.sort_values("event_time", kind="stable"))
    out = []
    for c in windows.close_windows(domain, ks, watermark, ctx):
        f = dict(c["features"])
        ws = f.pop("_workspace_id", None)
        out.append({"entity_type": ks.entity_type, "entity_id": ks.entity_id,
                    "workspace_id": ws if ws is not None else ks.workspace_id,
                    "window_start": c["window_start"], "window_end": c["window_end"], "value": c["value"], **f})
    return _frame(out, cols)


def replay(domain: str, keyed: pd.DataFrame, watermark: int, ctx: dict) -> pd.DataFrame:
    """Every key's closed windows (pure pandas: what the Spark job does per key, for tests)."""
    parts = [replay_key(domain, g, watermark, ctx) for _, g in keyed.groupby(["entity_type", "entity_id"])]
    return pd.concat(parts, ignore_index=True) if parts else _frame([], window_columns(domain))


def replay_revisions(domain: str, keyed: pd.DataFrame, arrival: str, ctx: dict) -> pd.DataFrame:
    """Every key's closed windows and their revisions (pure pandas: what
    :func:`window_feature_frame` does in Spark, for tests): revision 0 from the rows that arrived
    before their window closed (``arrival``: each row's arrival; the stream's watermark delay),
    revision ``i`` from those that arrived within the ``i``-th wait of :data:`REVISIONS`
    (None: every row), kept where the window's spend changed (:func:`revision_frame`)."""
    last = keyed["event_time"].max()
    frames = []
    for i, wait in enumerate((spec(domain).watermark, *REVISIONS.get(domain, ()))):
        rows = keyed if wait is None else keyed[in_time(keyed, "event_time", arrival, wait).to_numpy()]
        frames.append(replay(domain, rows, watermark_ms(domain, last, None if wait is None or i == 0 else wait), ctx))
    return revision_frame(frames)


def _frame(records: list[dict], cols: dict[str, str]) -> pd.DataFrame:
    frame = pd.DataFrame(records, columns=list(dict.fromkeys([*KEY_COLUMNS, *cols])))
    for c in ("window_start", "window_end"):
        frame[c] = pd.to_datetime(frame[c].astype("int64"), unit="ms")
    for c in ("entity_type", "entity_id", "workspace_id", *cols):
        if c in ("window_start", "window_end", "value") or cols.get(c) == "double":
            frame[c] = pd.to_numeric(frame[c], errors="coerce").astype("float64")
        else:
            frame[c] = frame[c].map(lambda v: None if v is None or v != v else str(v)).astype(object)
    return frame


def as_arrived(df: DataFrame, event: str, arrival: str, delay: str) -> DataFrame:
    """The rows of a Gold table a live stream would have put in their (hourly) window (Spark).

    Drops a row that arrived after its event's window closed (:func:`closing_arrival`: the
    window's close is the first arrival of a row at least ``delay`` past its end). The per-hour
    arrivals are small (one row per event hour) and go through the driver; the filter is a
    broadcast join, so this runs on Spark Connect as locally.
    """
    from pyspark.sql import functions as F

    hour = F.date_trunc("hour", F.col(event))
    arrived = F.col(arrival).cast("timestamp")
    per_hour = (df.groupBy(hour.alias("_hm_hour")).agg(F.min(arrived).alias("_hm_first"))
                .where(F.col("_hm_hour").isNotNull()).toPandas())
    if per_hour.empty:
        return df
    closed = closing_arrival(per_hour.set_index("_hm_hour")["_hm_first"], delay).dropna()
    if closed.empty:
        return df
    close = df.sparkSession.createDataFrame(
        pd.DataFrame({"_hm_hour": closed.index, "_hm_closed": closed.to_numpy()}),
        "_hm_hour timestamp, _hm_closed timestamp")
    joined = df.withColumn("_hm_hour", hour).join(F.broadcast(close), "_hm_hour", "left")
    keep = arrived.isNull() | F.col("_hm_closed").isNull() | (arrived <= F.col("_hm_closed"))
    return joined.where(keep).drop("_hm_hour", "_hm_closed")


class _BatchGold:
    """A lakehouse whose ``read_stream`` is a batch read of Gold (cut at the inputs' ``as_of``).

    The stream's input builders only read; handing them this runs their projection (flags,
    joins, keys) over the history, so stream and replay share one projection. A table with an
    arrival column (:data:`ARRIVAL`) is read as a live stream of ``domain`` received it
    (:func:`as_arrived`, with the domain's watermark delay, or ``delay``: a revision's wait;
    ``complete``: every row, the final revision).
    """

    def __init__(self, gold: GoldInputs, domain: str | None = None, delay: str | None = None,
                 complete: bool = False) -> None:
        self._gold = gold
        self._delay = None if domain is None or complete else (delay or spec(domain).watermark)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._gold.lake, name)

    def read(self, table: str, layer: str = "gold") -> DataFrame:
        return self._gold.get(table) if layer == "gold" else self._gold.lake.read(table, layer)

    def read_stream(self, table: str, layer: str = "gold", **options: str) -> DataFrame:
        from pyspark.sql import functions as F

        df = self.read(table, layer)
        if self._delay is not None and layer == "gold" and table in ARRIVAL \
                and all(c in df.columns for c in ARRIVAL[table]):
            df = as_arrived(df, *ARRIVAL[table], self._delay)
        if options.get("readChangeFeed") == "true":
            # A batch read holds each row's latest version: every row reads as one insert.
            df = df.select("*", F.lit("insert").alias("_change_type"),
                           F.lit(None).cast("long").alias("_commit_version"),
                           F.lit(None).cast("timestamp").alias("_commit_timestamp"))
        return df


def _replayer(domain: str, watermark: int, ctx: dict) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def fn(rows: pd.DataFrame) -> pd.DataFrame:
        return replay_key(domain, rows, watermark, ctx)

    return fn


def window_feature_frame(gold: GoldInputs, domain: str) -> DataFrame:
    """A domain's window table from Gold: the stream's projection and window code, per key
    (``applyInPandas``: the keys are spread over the Python workers as in the stream), one row
    per closed window (``revision`` 0) and, for a domain in :data:`REVISIONS`, one per revision
    of a window that late rows changed (:func:`revision_rows`)."""
    from pyspark.sql import functions as F

    frames = [_replayed(gold, domain, None, False).withColumn("revision", F.lit(0))]
    for i, wait in enumerate(REVISIONS.get(domain, ()), 1):
        frames.append(_replayed(gold, domain, wait, wait is None).withColumn("revision", F.lit(i)))
    out = frames[0]
    for f in frames[1:]:
        out = out.unionByName(f)
    return revision_rows(out) if len(frames) > 1 else out


def _replayed(gold: GoldInputs, domain: str, wait: str | None, complete: bool) -> DataFrame:
    """The domain's closed windows, replayed with rows that arrived within ``wait`` of their
    window's close (None: the watermark's delay; ``complete``: every row)."""
    from pyspark.sql import functions as F

    dom = spec(domain)
    keyed = _keyed(gold, domain, wait, complete)
    schema = table_schema(domain)
    last = keyed.agg(F.max("event_time")).first()[0]
    if last is None:
        return gold.lake.spark.createDataFrame([], schema)
    ctx = dom.context(gold.lake) if dom.context is not None else {}
    # A revision judges the windows its wait has passed (the final one: those the stream closed).
    watermark = watermark_ms(domain, last, None if complete else wait)
    return (keyed.groupBy("entity_type", "entity_id")
            .applyInPandas(_replayer(domain, watermark, ctx), schema))


def _keyed(gold: GoldInputs, domain: str, wait: str | None, complete: bool) -> DataFrame:
    return spec(domain).open_input(_BatchGold(gold, domain, wait, complete)).keyed  # type: ignore[arg-type]


def revision_input(gold: GoldInputs, domain: str, revision: int) -> DataFrame:
    """The stream's keyed input rows that revision ``revision`` of a domain's windows is replayed
    from (0: those that arrived before their window closed; see :data:`REVISIONS`)."""
    if revision == 0:
        return _keyed(gold, domain, None, False)
    wait = REVISIONS[domain][revision - 1]
    return _keyed(gold, domain, wait, wait is None)


def revision_rows(df: DataFrame) -> DataFrame:
    """Keep revision 0 of every window and a later revision only where the window's spend
    (``value``) differs from the previous revision's, or the window had no earlier row: a late
    row makes a revision of its window, an in-time row does not (Spark)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    w = Window.partitionBy("entity_type", "entity_id", "window_start").orderBy("revision")
    prev = F.lag("value").over(w)
    changed = (prev.isNull() | (F.abs(F.col("value") - prev)
                                > F.lit(_REVISION_RTOL) * F.greatest(F.abs(F.col("value")), F.abs(prev), F.lit(1.0))))
    return df.withColumn("_hm_keep", (F.col("revision") == 0) | changed).where("_hm_keep").drop("_hm_keep")


def revision_frame(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """:func:`revision_rows` in pandas, for replays given oldest first (revision = position)."""
    key = ["entity_type", "entity_id", "window_start"]
    out = pd.concat([f.assign(revision=i) for i, f in enumerate(frames)], ignore_index=True)
    out = out.sort_values([*key, "revision"], kind="stable")
    prev = out.groupby(key, dropna=False)["value"].shift()
    scale = np.maximum(np.maximum(out["value"].abs(), prev.abs()), 1.0)
    keep = (out["revision"] == 0) | prev.isna() | ((out["value"] - prev).abs() > _REVISION_RTOL * scale)
    return out[keep.to_numpy()].reset_index(drop=True)
