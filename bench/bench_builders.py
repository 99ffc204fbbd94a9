"""Time the Gold build on a simulated estate: first build from all history, then a no-op rerun.

    .venv/bin/python bench/bench_builders.py [--days 120] [--workspaces 8] [--scale 1.0] [--data-dir DIR]

The system layer is simulated once per data directory (without building Gold) and reused.
Per-table times are printed as progress lines; the totals at the end.
"""

from __future__ import annotations

import argparse
import time

from health_monitor import progress
from health_monitor.gold.builders import build_gold
from health_monitor.runtime import Lakehouse, stop_spark
from health_monitor.settings import load_settings


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--days", type=int, default=120)
    p.add_argument("--workspaces", type=int, default=8)
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--data-dir", default="/tmp/hm-bench-builders")
    args = p.parse_args()
    lake = Lakehouse(load_settings(args.data_dir))
    progress.enable(True)
    if not lake.exists("billing.usage", "system"):
        from health_monitor.gold.simulator import simulate

        simulate(lake, days=args.days, workspaces=args.workspaces, seed=args.seed, scale=args.scale, build=False)
    sizes = {t: lake.count(t, "system") for _, t in lake.list_tables("system")}
    try:
        t0 = time.monotonic()
        first = build_gold(lake, full_refresh=True)
        t1 = time.monotonic()
        again = build_gold(lake)
        t2 = time.monotonic()
    finally:
        stop_spark()
    print(f"system rows: {sum(sizes.values()):,} in {len(sizes)} tables "
          f"(billing.usage {sizes.get('billing.usage', 0):,}, job_run_timeline "
          f"{sizes.get('lakeflow.job_run_timeline', 0):,})")
    print(f"first build: {t1 - t0:.1f}s, {sum(first.values()):,} Gold rows")
    print(f"rerun:       {t2 - t1:.1f}s, {sum(again.values()):,} rows changed")


if __name__ == "__main__":
    main()
