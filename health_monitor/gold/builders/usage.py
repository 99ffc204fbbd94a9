"""``fact_usage``: billable usage with the list price in force and job cost attribution."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyspark.sql import Column
from pyspark.sql import functions as F

from health_monitor import progress
from health_monitor.gold.builders.core import far_future, gold_sink, run_stream, tag
from health_monitor.gold.builders.jobs import run_clusters, task_compute
from health_monitor.gold.builders.quarantine import PRICE_COST_CASTS, USAGE_COST_CASTS, set_aside

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from health_monitor.runtime import Lakehouse

USAGE_SOURCE = "billing.usage"
PRICE_SOURCE = "billing.list_prices"
#: Products whose usage names a cluster but never a job (see shared/spec/system-tables.md).
ALL_PURPOSE_PRODUCTS = ("ALL_PURPOSE", "INTERACTIVE")
_WINDOW_COLUMNS = ("workspace_id", "cluster_id", "job_id", "run_id", "period_start_time", "period_end_time")


def flatten_usage(billing: DataFrame) -> DataFrame:
    """Billing rows with usage_metadata, identity_metadata, product_features and tags flattened.

    Every record type is kept as its own row (keyed by record_id): a RETRACTION carries the
    negated quantity, so sums over all rows net out.
    """
    md, ident, feat = F.col("usage_metadata"), F.col("identity_metadata"), F.col("product_features")
    team, project, cost_center = tag("custom_tags", "team"), tag("custom_tags", "project"), tag(
        "custom_tags", "cost_center")
    return billing.select(
        "record_id", "account_id", "workspace_id", "sku_name", "cloud",
        "usage_start_time", "usage_end_time", "usage_date", "usage_unit", "usage_quantity",
        "record_type", "ingestion_date", "billing_origin_product", "usage_type", "custom_tags",
        F.coalesce(team, project, cost_center).isNotNull().alias("is_tagged"),
        team.alias("tag_team"), project.alias("tag_project"), cost_center.alias("tag_cost_center"),
        md["cluster_id"].alias("cluster_id"), md["warehouse_id"].alias("warehouse_id"),
        md["instance_pool_id"].alias("instance_pool_id"), md["node_type"].alias("node_type"),
        md["job_id"].alias("job_id"), md["job_run_id"].alias("usage_metadata_job_run_id"),
        md["job_name"].alias("job_name"), md["run_name"].alias("run_name"),
        md["notebook_id"].alias("notebook_id"), md["dlt_pipeline_id"].alias("dlt_pipeline_id"),
        md["endpoint_name"].alias("endpoint_name"),
        ident["run_as"].alias("run_as"), ident["created_by"].alias("created_by"),
        ident["owned_by"].alias("owned_by"),
        feat["is_serverless"].alias("is_serverless"), feat["is_photon"].alias("is_photon"),
        feat["jobs_tier"].alias("jobs_tier"), feat["sql_tier"].alias("sql_tier"),
    )


def price_usage(usage: DataFrame, prices: DataFrame | None) -> DataFrame:
    """Add list_price (the price row in force at usage_start_time), list_cost and currency_code.

    In force: same sku_name, cloud and usage_unit, price_start_time <= usage_start_time <
    price_end_time (an open price has no end). The price is ``pricing.effective_list.default``
    (the docs' price for cost: list price after any promotion), ``pricing.default`` where an older
    row lacks it. No matching price leaves price and cost null.
    """
    if prices is None:
        return usage.select("*", *[F.lit(None).alias(c) for c in ("list_price", "list_cost", "currency_code")])
    p = prices.select(
        F.col("sku_name").alias("_p_sku"), F.col("cloud").alias("_p_cloud"),
        F.col("price_start_time").alias("_p_start"),
        F.coalesce("price_end_time", far_future()).alias("_p_end"),
        F.col("usage_unit").alias("_p_unit"),
        F.coalesce("pricing.effective_list.default", "pricing.default").alias("list_price"), "currency_code",
    )
    cond = (
        (usage["sku_name"] == p["_p_sku"]) & usage["cloud"].eqNullSafe(p["_p_cloud"])
        & usage["usage_unit"].eqNullSafe(p["_p_unit"])
        & (usage["usage_start_time"] >= p["_p_start"]) & (usage["usage_start_time"] < p["_p_end"])
    )
    # decimal(38,18) x decimal(38,18) would keep only 6 decimals; these widths keep 17.
    cost = F.col("usage_quantity").cast("decimal(24,12)") * F.col("list_price").cast("decimal(20,12)")
    return (
        usage.join(F.broadcast(p), cond, "left")
        .drop("_p_sku", "_p_cloud", "_p_unit", "_p_start", "_p_end")
        .withColumn("list_cost", cost)
    )


def needs_attribution() -> Column:
    """All-purpose usage: a cluster but no job in billing."""
    product = F.coalesce(F.col("billing_origin_product").isin(*ALL_PURPOSE_PRODUCTS), F.lit(False))
    return F.col("job_id").isNull() & F.col("cluster_id").isNotNull() & (
        product | F.col("sku_name").contains("ALL_PURPOSE"))


def attribute_jobs(usage: DataFrame, runs: DataFrame | None, tasks: DataFrame | None = None) -> DataFrame:
    """Fill job_id / usage_metadata_job_run_id / job_id_source.

    Billing's own job_id wins (``BILLING``). All-purpose usage goes to the job run on the same
    workspace and cluster whose [start, end) overlaps the usage window most
    (``CLUSTER_ATTRIBUTION``; ties go to the higher run_id so the choice is deterministic). The
    clusters of a run are its Gold compute plus those its tasks used (``tasks``, from
    :func:`~health_monitor.gold.builders.jobs.task_compute`): the task timeline is where
    Databricks records all-purpose compute.
    """
    source = F.when(F.col("job_id").isNotNull(), F.lit("BILLING"))
    if runs is None and tasks is None:
        return usage.withColumn("job_id_source", source)
    cand = usage.filter(needs_attribution()).select(
        "record_id", "workspace_id", "cluster_id",
        F.col("usage_start_time").alias("_u_start"), F.col("usage_end_time").alias("_u_end"),
    )
    windows = [] if runs is None else [runs.select(
        "workspace_id", F.explode(run_clusters()).alias("cluster_id"), "job_id", "run_id",
        "period_start_time", "period_end_time")]
    if tasks is not None:
        windows.append(tasks.select(*_WINDOW_COLUMNS))
    r = windows[0].unionByName(windows[1]) if len(windows) == 2 else windows[0]
    r = r.select(
        "workspace_id", "cluster_id", F.col("job_id").alias("_a_job"), F.col("run_id").alias("_a_run"),
        F.col("period_start_time").alias("_r_start"), F.col("period_end_time").alias("_r_end"),
    )
    overlap = F.unix_micros(F.least("_r_end", "_u_end")) - F.unix_micros(F.greatest("_r_start", "_u_start"))
    best = (
        cand.join(r, ["workspace_id", "cluster_id"])
        .filter((F.col("_r_start") < F.col("_u_end")) & (F.col("_r_end") > F.col("_u_start")))
        .groupBy("record_id")
        .agg(F.max_by(F.struct("_a_job", "_a_run"), F.struct(overlap, "_a_run")).alias("_a"))
    )
    # Only candidates are joined back: the other rows skip the shuffle entirely.
    done = usage.filter(~needs_attribution()).withColumn("job_id_source", source)
    matched = (
        usage.filter(needs_attribution()).join(best, "record_id", "left")
        .withColumn("job_id_source", F.when(F.col("_a").isNotNull(), F.lit("CLUSTER_ATTRIBUTION")))
        .withColumn("usage_metadata_job_run_id", F.coalesce("_a._a_run", "usage_metadata_job_run_id"))
        .withColumn("job_id", F.col("_a._a_job"))
        .drop("_a")
    )
    return done.unionByName(matched)


def build_usage(lake: Lakehouse, touched_clusters: DataFrame | None = None) -> int:
    """Stream new billing records into ``fact_usage``.

    ``touched_clusters`` (workspace_id, cluster_id, start, end) are windows of job runs that
    changed in this build: all-purpose usage already in Gold on those clusters is attributed
    again first, so runs that arrive after their cluster's usage still get the cost.
    """
    sink = gold_sink(lake, "fact_usage")
    since = sink.version()
    prices = lake.read(PRICE_SOURCE, "system") if lake.exists(PRICE_SOURCE, "system") else None
    if prices is not None:
        prices = set_aside(lake, prices, "fact_usage", PRICE_COST_CASTS, f"system.{PRICE_SOURCE}")
    if prices is None:
        progress.info(f"fact_usage: no system.{PRICE_SOURCE}; list_price and list_cost stay null")
    runs = lake.read("fact_job_run_timeline") if lake.exists("fact_job_run_timeline") else None
    tasks = task_compute(lake)

    if sink.exists and (runs is not None or tasks is not None) and touched_clusters is not None:
        w = F.broadcast(touched_clusters)
        revisit = (
            sink.read()
            .filter(F.col("job_id_source").isNull() | (F.col("job_id_source") == "CLUSTER_ATTRIBUTION"))
            .withColumn("job_id", F.lit(None).cast("string"))
            .withColumn("usage_metadata_job_run_id", F.lit(None).cast("string"))
            .filter(needs_attribution())
        )
        # Duplicate windows of one cluster (several micro-batches) are removed by the upsert's dedup.
        revisit = revisit.join(
            w.withColumnRenamed("start", "_w_start").withColumnRenamed("end", "_w_end"),
            ["workspace_id", "cluster_id"],
        ).filter((F.col("usage_start_time") < F.col("_w_end")) & (F.col("usage_end_time") > F.col("_w_start")))
        revisit = revisit.drop("_w_start", "_w_end", "job_id_source")
        n = sink.upsert(attribute_jobs(revisit, runs, tasks))
        if n:
            progress.info(f"fact_usage: {n} all-purpose rows re-attributed to late job runs")

    def handle(batch: DataFrame) -> None:
        batch = set_aside(lake, batch, "fact_usage", USAGE_COST_CASTS, f"system.{USAGE_SOURCE}")
        priced = price_usage(flatten_usage(batch), prices).persist()  # read twice by attribution
        try:
            sink.upsert(attribute_jobs(priced, runs, tasks))
        finally:
            priced.unpersist()

    run_stream(lake, USAGE_SOURCE, "fact_usage", handle)
    return sink.committed_rows(since)
