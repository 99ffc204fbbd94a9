"""Building a domain's streaming query::

    readStream(Gold facts) -> project (sources.py)
        -> withWatermark(event_time) -> groupBy(entity or bucket) -> applyInPandasWithState   [scoring.py, bucketed.py]
        union  the projected rows themselves                                          [late-row audit]
        -> foreachBatch(sink.py)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from health_monitor.domains import STREAM_DOMAINS, spec
from health_monitor.errors import HealthMonitorError
from health_monitor.runtime import Lakehouse
from health_monitor.streaming.bucketed import score_stream
from health_monitor.streaming.scoring import HEARTBEAT


def query_name(domain: str) -> str:
    """Stable name of a domain's query (also its checkpoint folder)."""
    return f"hm_{domain}"


#: The raw branch's source row (a struct); null on scored rows. The sink writes it as ``row_json``.
RAW_ROW = "raw_row"


def build_stream(lake: Lakehouse, domain: str, max_files: int | None = None,
                 heartbeat_dir: Path | None = None, catchup: Any = None) -> DataFrame:
    """The streaming DataFrame of a domain: scored windows unioned with the raw rows.

    ``heartbeat_dir``: a folder of JSON files ``{"event_time": ...}`` streamed alongside the Gold
    rows. A heartbeat only moves the watermark (the scorer ignores it): a finite recording uses
    one to say "the recording ends here", so its last windows close as they would in a live
    estate where other entities' events move the watermark on.

    ``catchup``: a finished :class:`~health_monitor.streaming.catchup.CatchupPlan`: the sources
    are read from the versions after its backlog and the keys' handed-over states join the input.
    """
    if domain not in STREAM_DOMAINS:
        raise HealthMonitorError(f"unknown stream domain {domain!r}; expected one of {', '.join(STREAM_DOMAINS)}")
    dom = spec(domain)
    inp = dom.open_input(catchup.stream_lake(lake) if catchup is not None else lake, max_files)
    ctx = dom.static_context(lake)
    keyed = inp.keyed
    if catchup is not None:
        keyed = catchup.with_handover(lake, keyed)
    if heartbeat_dir is not None:
        beats = lake.spark.readStream.schema("event_time timestamp").json(str(heartbeat_dir))
        keyed = keyed.unionByName(beats.select(*[
            F.col("event_time") if f.name == "event_time"
            else F.lit(HEARTBEAT).alias(f.name) if f.name in ("entity_type", "entity_id")
            else F.lit(None).cast(f.dataType).alias(f.name)
            for f in keyed.schema.fields]))
    # per-key or bucketed state, as the checkpoint records (streaming/bucketed.py)
    scored = score_stream(lake, domain, keyed.withWatermark("event_time", dom.watermark), ctx)
    data_cols = [c for c in inp.rows.columns if c not in ("source_table",)]
    raw = inp.rows.select(
        F.lit("raw").alias("kind"), F.lit(domain).alias("domain"), F.lit(None).cast("string").alias("entity_type"),
        F.col("entity_id").cast("string").alias("entity_id"), F.col("workspace_id").cast("string").alias("workspace_id"),
        *[F.lit(None).cast(t).alias(c) for c, t in (
            ("window_start", "timestamp"), ("window_end", "timestamp"), ("value", "double"),
            ("expected", "double"), ("score", "double"), ("model_name", "string"),
            ("model_version", "string"), ("features", "string"), ("evidence", "string"))],
        F.col("event_time"), F.col("source_table"), F.lit(None).cast("string").alias("row_json"),
        # The row as a struct, not JSON: Spark hands foreachBatch the union as computed rows (a
        # LogicalRDD), so a filter in the sink cannot reach this branch; serializing here cost a
        # to_json per input row of every batch. The sink turns only the late rows into JSON.
        F.struct(*[F.col(c) for c in data_cols]).alias(RAW_ROW),
    )
    return scored.unionByName(raw, allowMissingColumns=True)
