"""Ingest throughput: rows per second for a billing.usage CSV export, parse and write measured apart.

Why: exports of system.billing.usage run to millions of rows; ingest parses every value in
Python to keep exact line numbers for the quarantine, so its parse rate and the fixed cost of the
Delta write decide whether a user waits seconds or minutes. The file mimics a Databricks SQL CSV
download: ISO timestamps with zone, JSON text in map and struct cells, 1% bad rows.

A second, flat file (compute.node_timeline: numbers, booleans, timestamps) is the "simple CSV".

Run: ``.venv/bin/python bench/bench_ingest.py [--rows 200000] [--only usage|simple] [--keep DIR]``.
Reports per file: parse-only rate (validation, no Spark), end-to-end rate (first load into an empty table),
and the rate of re-ingesting an overlapping export (every key exists: insert-only MERGE path).
"""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from health_monitor.gold.ingest import _FileParser, _RowValidator, ingest
from health_monitor.gold.system_schemas import SYSTEM_TABLES
from health_monitor.runtime import Lakehouse, get_spark
from health_monitor.settings import load_settings

HEADER = ("account_id,workspace_id,record_id,sku_name,cloud,usage_start_time,usage_end_time,usage_date,"
          "custom_tags,usage_unit,usage_quantity,usage_metadata,identity_metadata,record_type,"
          "ingestion_date,billing_origin_product,product_features,usage_type")
SKUS = ["PREMIUM_JOBS_COMPUTE", "PREMIUM_ALL_PURPOSE_COMPUTE", "PREMIUM_SQL_PRO_COMPUTE_US_EAST",
        "PREMIUM_JOBS_SERVERLESS_COMPUTE_US_EAST"]


def write_csv(path: Path, rows: int, seed: int = 7, prefix: str = "r") -> None:
    """A realistic billing.usage CSV with ~1% bad rows (bad decimals, end before start, ragged)."""
    rng = random.Random(seed)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    with path.open("w") as fh:
        fh.write(HEADER + "\n")
        for i in range(rows):
            start = t0 + timedelta(hours=rng.randrange(24 * 300))
            end = start + timedelta(hours=1)
            qty = f"{rng.lognormvariate(0, 1.2):.6f}"
            if rng.random() < 0.003:
                qty = "n/a"
            if rng.random() < 0.003:
                end = start - timedelta(hours=1)
            tags = f'"{{""team"":""t{rng.randrange(12)}"",""project"":""p{rng.randrange(40)}""}}"'
            meta = f'"{{""cluster_id"":""c-{rng.randrange(500)}"",""job_id"":""{rng.randrange(2000)}""}}"'
            line = (f"acc-1,{1000 + rng.randrange(8)},{prefix}-{i},{rng.choice(SKUS)},AWS,"
                    f"{start:%Y-%m-%dT%H:%M:%S}Z,{end:%Y-%m-%dT%H:%M:%S}Z,{start:%Y-%m-%d},{tags},DBU,{qty},"
                    f'{meta},"{{""run_as"":""u{rng.randrange(300)}@corp.com""}}",ORIGINAL,{start:%Y-%m-%d},JOBS,'
                    f'"{{""is_serverless"":false,""is_photon"":true}}",COMPUTE_TIME')
            if rng.random() < 0.003:
                line = line.rsplit(",", 5)[0]
            fh.write(line + "\n")


NODE_HEADER = ("account_id,workspace_id,cluster_id,instance_id,start_time,end_time,driver,cpu_user_percent,"
               "cpu_system_percent,cpu_wait_percent,mem_used_percent,mem_swap_percent,network_sent_bytes,"
               "network_received_bytes,node_type")


def write_simple_csv(path: Path, rows: int, seed: int = 7) -> None:
    """A flat compute.node_timeline CSV (numbers, booleans, timestamps; no JSON cells)."""
    rng = random.Random(seed)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    with path.open("w") as fh:
        fh.write(NODE_HEADER + "\n")
        for i in range(rows):
            start = t0 + timedelta(minutes=i)
            fh.write(f"acc-1,{1000 + rng.randrange(8)},c-{rng.randrange(300)},i-{i % 40},"
                     f"{start:%Y-%m-%dT%H:%M:%S}Z,{start + timedelta(minutes=1):%Y-%m-%dT%H:%M:%S}Z,"
                     f"{'true' if i % 10 == 0 else 'false'},{rng.uniform(0, 80):.2f},{rng.uniform(0, 10):.2f},"
                     f"{rng.uniform(0, 5):.2f},{rng.uniform(10, 95):.2f},0.0,{rng.randrange(10**9)},"
                     f"{rng.randrange(10**9)},m5d.2xlarge\n")


def bench(root: Path, table: str, csv_path: Path, rows: int) -> None:
    """Parse-only, first-load and overlapping-re-export rates for one CSV."""
    print(f"== {table}: {rows:,} rows, {csv_path.stat().st_size / 1e6:.1f} MB")
    spec = SYSTEM_TABLES[table]
    from pyspark.sql import types as T
    from pyspark.sql.pandas.types import to_arrow_schema

    schema = to_arrow_schema(T.StructType([*spec.schema.fields, T.StructField("_file", T.IntegerType())]))
    t, cpu = time.perf_counter(), time.process_time()
    parsed = _FileParser(spec, _RowValidator(spec), schema, set(), 0, csv_path, "csv").parse()
    parse_s, parse_cpu = time.perf_counter() - t, time.process_time() - cpu
    # CPU seconds too: on a shared machine wall time measures the neighbours as much as the code.
    print(f"parse only: {parse_s:.2f}s wall ({parse_cpu:.2f}s CPU) = {rows / parse_s:,.0f} rows/s wall, "
          f"{rows / parse_cpu:,.0f} rows/s per CPU ({parsed.good:,} valid, "
          f"{parsed.report.quarantined:,} quarantined)")

    settings = load_settings(root / "hm")
    lake = Lakehouse(settings, get_spark(settings))
    lake.spark.range(1).count()  # JVM start-up is not ingest time
    t = time.perf_counter()
    report = ingest(lake, csv_path, table)
    first_s = time.perf_counter() - t
    print(f"first load: {first_s:.2f}s = {report.rows_read / first_s:,.0f} rows/s "
          f"({report.ingested:,} ingested, {report.quarantined:,} quarantined)")

    again = csv_path.with_name(f"again_{csv_path.name}")
    shutil.copy(csv_path, again)
    with again.open("a") as fh:
        fh.write("\n")  # different bytes, same rows: skips the log, exercises the MERGE
    t = time.perf_counter()
    report = ingest(lake, again, table)
    merge_s = time.perf_counter() - t
    print(f"overlapping re-export: {merge_s:.2f}s = {report.rows_read / merge_s:,.0f} rows/s "
          f"({report.ingested:,} ingested, {report.duplicates_skipped:,} duplicates skipped)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--only", choices=["usage", "simple"], help="run one of the two files")
    parser.add_argument("--keep", help="data directory to keep (default: a temp folder, removed)")
    parser.add_argument("--progress", action="store_true", help="print the timed steps of each ingest")
    args = parser.parse_args()
    if args.progress:
        from health_monitor import progress

        progress.enable(True)
    root = Path(args.keep or tempfile.mkdtemp(prefix="bench-ingest-"))
    root.mkdir(parents=True, exist_ok=True)
    if args.only in (None, "simple"):
        write_simple_csv(root / "node_timeline.csv", args.rows)
        bench(root, "compute.node_timeline", root / "node_timeline.csv", args.rows)
    if args.only in (None, "usage"):
        write_csv(root / "usage.csv", args.rows)
        bench(root, "billing.usage", root / "usage.csv", args.rows)
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
