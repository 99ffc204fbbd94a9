"""SCD2 dimensions (workspace, SKU, cluster, warehouse) and the ``dim_date`` calendar.

Dimensions are small, so each build derives every version from the whole source and the sink
writes only versions that are new or changed (e.g. the previous version being closed). Every
key has exactly one ``is_current`` row: the latest version.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from pyspark.sql import Column
from pyspark.sql import functions as F

from health_monitor.gold.builders.core import gold_sink, row_hash, versions

if TYPE_CHECKING:

    from health_monitor.runtime import Lakehouse

#: Warehouse t-shirt sizes, smallest first (rank = position + 1).
WAREHOUSE_SIZES = ("2X_SMALL", "X_SMALL", "SMALL", "MEDIUM", "LARGE", "X_LARGE", "2X_LARGE", "3X_LARGE", "4X_LARGE")
#: Future days of calendar beyond the data: forecasts reach a year ahead.
FUTURE_DAYS = 400

_WORKSPACE_ATTRS = ["account_id", "workspace_name", "workspace_url", "create_time", "status"]


def build_dim_workspace(lake: Lakehouse, now: datetime | None = None) -> int:
    """SCD2 workspaces from ``access.workspaces_latest``, which only shows the present.

    A workspace seen for the first time starts at its create_time; when a later snapshot differs
    from the current version, that version closes and a new one starts at build time ``now``.
    """
    now = now or datetime.now(UTC).replace(tzinfo=None)
    now_col = F.lit(now.strftime("%Y-%m-%d %H:%M:%S.%f")).cast("timestamp")
    sink = gold_sink(lake, "dim_workspace")
    snap = lake.read("access.workspaces_latest", "system").dropDuplicates(["workspace_id"])
    snap = snap.select("workspace_id", *_WORKSPACE_ATTRS).withColumn("_h", row_hash(_WORKSPACE_ATTRS))
    if not sink.exists:
        first = snap.withColumn("effective_from", F.coalesce("create_time", now_col))
        return sink.upsert(first.withColumn("effective_to", F.lit(None)).withColumn("is_current", F.lit(True)))
    current = sink.read().filter("is_current").withColumn("_h", row_hash(_WORKSPACE_ATTRS))
    changed = snap.join(current.select("workspace_id", F.col("_h").alias("_cur_h"), F.lit(True).alias("_seen")),
                        "workspace_id", "left").filter(F.col("_cur_h").isNull() | (F.col("_h") != F.col("_cur_h")))
    new_versions = changed.withColumn(
        "effective_from", F.when(F.col("_seen"), now_col).otherwise(F.coalesce("create_time", now_col))
    ).withColumn("effective_to", F.lit(None)).withColumn("is_current", F.lit(True))
    closed = current.join(changed.filter("_seen").select("workspace_id"), "workspace_id", "left_semi")
    closed = closed.withColumn("effective_to", now_col).withColumn("is_current", F.lit(False))
    return sink.upsert(new_versions.unionByName(closed, allowMissingColumns=True))


def sku_category() -> Column:
    """Product family of a SKU name (ENTERPRISE_ALL_PURPOSE_COMPUTE -> ALL_PURPOSE, ...)."""
    s = F.upper(F.col("sku_name"))
    return (
        F.when(s.contains("ALL_PURPOSE"), "ALL_PURPOSE")
        .when(s.contains("JOBS"), "JOBS")
        .when(s.contains("DLT") | s.contains("DELTA_LIVE"), "DLT")
        .when(s.contains("SQL"), "SQL")
        .when(s.contains("INFERENCE") | s.contains("SERVING"), "MODEL_SERVING")
        .when(s.contains("VECTOR_SEARCH"), "VECTOR_SEARCH")
        .when(s.contains("APPS"), "APPS")
        .when(s.contains("NETWORKING") | s.contains("EGRESS") | s.contains("CONNECTIVITY"), "NETWORKING")
        .when(s.contains("STORAGE"), "STORAGE")
        .otherwise("OTHER")
    )


def build_dim_sku(lake: Lakehouse) -> int:
    """One SCD2 version per list-price period of each (sku_name, cloud).

    effective_to is the price's end (or the next period's start when the source left it open);
    the latest period is the current one. A missing cloud becomes ``UNKNOWN`` (the key is NOT NULL).
    """
    prices = lake.read("billing.list_prices", "system").filter(F.col("pricing.default").isNotNull())
    prices = prices.withColumn("cloud", F.coalesce("cloud", F.lit("UNKNOWN")))
    v = versions(prices, ["sku_name", "cloud"], "price_start_time")
    name = F.upper(F.col("sku_name"))
    out = v.select(
        "sku_name", "cloud", "usage_unit", "currency_code",
        F.col("pricing.default").alias("list_price"),
        F.col("pricing.promotional.default").alias("promotional_price"),
        F.col("pricing.effective_list.default").alias("effective_list_price"),
        sku_category().alias("sku_category"),
        name.contains("SERVERLESS").alias("is_serverless"),
        name.contains("PHOTON").alias("is_photon"),
        "effective_from",
        F.coalesce("price_end_time", "effective_to").alias("effective_to"),
        "is_current",
    )
    return gold_sink(lake, "dim_sku").upsert(out)


def build_dim_cluster(lake: Lakehouse) -> int:
    """SCD2 clusters with node hardware from ``compute.node_types`` and runtime facts.

    dbr_major_version is the leading number of dbr_version ("15.4.x-cpu-ml-scala2.12" -> 15);
    is_ml_runtime marks ``-ml`` runtimes; availability comes from aws_attributes.
    """
    v = versions(lake.read("compute.clusters", "system"), ["workspace_id", "cluster_id"], "change_time")
    if lake.exists("compute.node_types", "system"):
        nodes = lake.read("compute.node_types", "system").dropDuplicates(["node_type"])
        worker = nodes.select(F.col("node_type").alias("worker_node_type"),
                              F.col("core_count").alias("worker_cores"),
                              (F.col("memory_mb") / 1024.0).alias("worker_memory_gb"))
        driver = nodes.select(F.col("node_type").alias("driver_node_type"),
                              (F.col("memory_mb") / 1024.0).alias("driver_memory_gb"))
        v = v.join(F.broadcast(worker), "worker_node_type", "left").join(F.broadcast(driver), "driver_node_type", "left")
    else:
        v = v.select("*", *[F.lit(None).alias(c) for c in ("worker_cores", "worker_memory_gb", "driver_memory_gb")])
    dbr = F.col("dbr_version")
    out = v.select(
        "*",
        (F.coalesce("max_autoscale_workers", F.lit(0)) > 0).alias("is_autoscaling"),
        F.col("aws_attributes.availability").alias("availability"),
        F.expr("try_cast(regexp_extract(dbr_version, '^([0-9]+)', 1) AS INT)").alias("dbr_major_version"),
        dbr.rlike(r"(^|-)ml(-|$)").alias("is_ml_runtime"),
    )
    return gold_sink(lake, "dim_cluster").upsert(out)


def build_dim_warehouse(lake: Lakehouse) -> int:
    """SCD2 SQL warehouses with a size rank (2X_SMALL = 1 ... 4X_LARGE = 9)."""
    v = versions(lake.read("compute.warehouses", "system"), ["workspace_id", "warehouse_id"], "change_time")
    size = F.upper(F.regexp_replace(F.trim("warehouse_size"), r"[- ]", "_"))
    rank = F.lit(None).cast("int")
    for i, name in reversed(list(enumerate(WAREHOUSE_SIZES, start=1))):
        rank = F.when(size == name, F.lit(i)).otherwise(rank)
    return gold_sink(lake, "dim_warehouse").upsert(v.withColumn("warehouse_size_rank", rank))


def data_date_range(lake: Lakehouse) -> tuple[date, date] | None:
    """First and last date of the Gold facts (usage, runs, queries), or None when there are none."""
    spans = [lake.read(table).agg(F.min(col).alias("lo"), F.max(col).alias("hi"))
             for table, col in (("fact_usage", "usage_date"), ("fact_job_run_timeline", "run_date"),
                                ("fact_query_history", "query_date"), ("fact_audit_events", "event_date"))
             if lake.exists(table)]
    if not spans:
        return None
    # One Spark job over all the tables instead of one per table.
    union = spans[0]
    for more in spans[1:]:
        union = union.unionByName(more)
    lo, hi = union.agg(F.min("lo"), F.max("hi")).first()
    return None if lo is None else (lo, hi)


def build_dim_date(lake: Lakehouse, country: str = "US", today: date | None = None) -> int | None:
    """Calendar from the first data date to ``FUTURE_DAYS`` after the later of the data and today.

    Holidays come from the ``holidays`` package for ``country`` (ISO code). None (not built)
    when there are no Gold facts to take the range from.
    """
    import holidays

    span = data_date_range(lake)
    if span is None:
        return None
    today = today or datetime.now(UTC).date()
    start, end = span[0], max(span[1], today) + timedelta(days=FUTURE_DAYS)
    try:
        names = holidays.country_holidays(country, years=range(start.year, end.year + 1))
    except NotImplementedError:
        from health_monitor.errors import HealthMonitorError

        raise HealthMonitorError(f"no holiday calendar for country {country!r}: use an ISO code such as US") from None
    spark = lake.spark
    hol = spark.createDataFrame([(d, n) for d, n in sorted(names.items())], "date_key date, holiday_name string")
    days = spark.sql(
        f"SELECT explode(sequence(DATE'{start.isoformat()}', DATE'{end.isoformat()}', INTERVAL 1 DAY)) AS date_key"
    )
    d = F.col("date_key")
    out = days.join(F.broadcast(hol), "date_key", "left").select(
        "date_key",
        F.year(d).alias("year"), F.quarter(d).alias("quarter"), F.month(d).alias("month"),
        F.dayofmonth(d).alias("day_of_month"), F.dayofweek(d).alias("day_of_week"),
        F.date_format(d, "EEEE").alias("day_name"), F.weekofyear(d).alias("week_of_year"),
        F.dayofmonth(F.last_day(d)).alias("days_in_month"),
        F.dayofweek(d).isin(1, 7).alias("is_weekend"),
        (d == F.last_day(d)).alias("is_month_end"),
        ((d == F.last_day(d)) & F.month(d).isin(3, 6, 9, 12)).alias("is_quarter_end"),
        ((F.month(d) == 12) & (F.dayofmonth(d) == 31)).alias("is_year_end"),
        F.col("holiday_name").isNotNull().alias("is_holiday"),
        "holiday_name",
    )
    return gold_sink(lake, "dim_date").upsert(out)

