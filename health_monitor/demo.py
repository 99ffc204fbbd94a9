"""``make demo``: the end-to-end tour on the embedded lakehouse.

Simulates an estate (system tables -> Gold), then runs each stage of the product on it and
prints what a user would look at. Every stage calls the same library functions as the CLI.
"""

from __future__ import annotations

import argparse
import sys
import time

from health_monitor import progress
from health_monitor.errors import HealthMonitorError
from health_monitor.runtime import Lakehouse, stop_spark
from health_monitor.settings import load_settings


def _banner(text: str) -> None:
    print(f"\n=== {text} ===", flush=True)


def run_demo(data_dir: str, days: int, workspaces: int, seed: int) -> int:
    from health_monitor.gold.simulator import simulate

    lake = Lakehouse(load_settings(data_dir))
    start = time.monotonic()

    _banner(f"1. Simulate {days} days of a {workspaces}-workspace estate (seed {seed}) and build Gold")
    summary = simulate(lake, days=days, workspaces=workspaces, seed=seed)
    print(summary.render() if hasattr(summary, "render") else summary)

    _banner("Tables")
    for layer, name in lake.list_tables():
        if layer in ("gold", "simulator"):
            print(f"  {layer + '.' + name:<55} {lake.count(name, layer):>10,}")

    print(f"\nDemo finished in {time.monotonic() - start:.0f}s; data in {lake.settings.data_dir}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m health_monitor.demo")
    parser.add_argument("--data-dir", default=".health-monitor")
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--workspaces", type=int, default=8)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    progress.enable(True)
    try:
        return run_demo(args.data_dir, args.days, args.workspaces, args.seed)
    except HealthMonitorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        stop_spark()


if __name__ == "__main__":
    sys.exit(main())
