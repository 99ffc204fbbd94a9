"""How long the default simulation takes, phase by phase, in wall and CPU seconds.

The issue's target: ``health-monitor simulate --days 120 --workspaces 8 --seed 7`` (the default
estate: ~830k system-table rows, 60 incidents) in under 2 minutes on 2 cores. Wall time alone
says little on a shared machine, so the script also prints CPU seconds of this process and its
Spark JVM (from /proc, Linux) per phase: on an idle 2-core machine the wall time of a
CPU-bound phase is at least CPU / 2. The baseline in the same run is Spark's own start-up
(measured after the simulation, alone; inside ``simulate`` it overlaps the data generation).

Run: ``.venv/bin/python bench/bench_simulate.py [--days 120] [--workspaces 8] [--scale 1]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from health_monitor import progress
from health_monitor.gold.simulator import simulate
from health_monitor.runtime import Lakehouse, stop_spark
from health_monitor.settings import load_settings

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _tree_cpu(root: int) -> float:
    """CPU seconds (user + system) of ``root`` and its live descendants, from /proc."""
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(stat.parent.name)
        parents[pid] = int(fields[1])
        cpu[pid] = (int(fields[11]) + int(fields[12])) / _TICK
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += cpu.get(pid, 0.0)
        todo += [c for c, p in parents.items() if p == pid]
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=120)
    ap.add_argument("--workspaces", type=int, default=8)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--data-dir", default=None, help="default: a temporary folder, removed afterwards")
    args = ap.parse_args()

    me = os.getpid()
    marks: dict[str, tuple[float, float]] = {}
    rows: list[tuple[str, float, float]] = []

    def probe(message: str, phase: str) -> None:
        now = (time.monotonic(), _tree_cpu(me))
        if phase == "start":
            marks[message] = now
        elif message in marks:
            (t0, c0), (t1, c1) = marks.pop(message), now
            rows.append((message, t1 - t0, c1 - c0))

    progress.listen(probe)
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(args.data_dir or tmp)
        # As the CLI runs it: the Spark session starts inside simulate, overlapping generation.
        t1, c1 = time.monotonic(), _tree_cpu(me)
        summary = simulate(Lakehouse(settings), args.days, args.workspaces, args.seed, args.scale,
                           end_date=date(2026, 11, 25))
        wall, cpu = time.monotonic() - t1, _tree_cpu(me) - c1
        stop_spark()
    # Baseline in the same run: a Spark session start alone (JVM, Delta), in a fresh process
    # (this one keeps its JVM gateway after stop_spark).
    t0 = time.monotonic()
    before = os.times()
    subprocess.run([sys.executable, "-c", "from health_monitor.runtime import get_spark, stop_spark; "
                    "get_spark(); stop_spark()"], check=True, capture_output=True)
    after = os.times()
    start_s = time.monotonic() - t0
    start_cpu = (after.children_user + after.children_system) - (before.children_user + before.children_system)

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} at the end, Python {platform.python_version()}")
    print(f"estate: --days {args.days} --workspaces {args.workspaces} --seed {args.seed} --scale {args.scale}: "
          f"{sum(v for k, v in summary.rows.items() if k.startswith('system.')):,} system rows, "
          f"{sum(summary.incidents.values())} incidents of {len(summary.incidents)} types")
    print(f"{'phase':<58} {'wall s':>8} {'CPU s':>8}")
    print(f"{'baseline: Spark session start (JVM, Delta)':<58} {start_s:>8.1f} {start_cpu:>8.1f}")
    for message, w, c in rows:
        print(f"{message[:58]:<58} {w:>8.1f} {c:>8.1f}")
    print(f"{'simulate total, session start included (what the CLI user waits)':<58} {wall:>8.1f} {cpu:>8.1f}")
    print("(Gold tables build in parallel threads: a gold.* step's CPU is the whole process's while it ran.)")


if __name__ == "__main__":
    main()
