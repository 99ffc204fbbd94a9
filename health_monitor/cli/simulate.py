"""``health-monitor simulate``: a realistic estate in the local lakehouse, or ``--live`` to keep it going."""

from __future__ import annotations

import argparse
from datetime import date

from health_monitor.errors import HealthMonitorError


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date like 2026-11-25, got {text!r}") from None


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``simulate`` sub-command."""
    p = sub.add_parser(
        "simulate", help="simulate a Databricks estate (system tables, incidents) and build Gold",
        description="Write system-table-shaped data for a simulated account (workspaces, jobs, clusters, "
        "warehouses, users, billing, audit, lineage, data quality) with injected incidents recorded in "
        "ground_truth_incidents, then build the Gold layer. --live continues an existing estate hour by hour.")
    p.add_argument("--days", type=int, default=120, help="days of history (default 120)")
    p.add_argument("--workspaces", type=int, default=8, help="number of workspaces (default 8)")
    p.add_argument("--seed", type=int, help="random seed: same seed, same estate (default 7; "
                   "with --live it varies the new hours)")
    p.add_argument("--scale", type=float, default=1.0,
                   help="multiplies users, clusters, warehouses and jobs, not days (default 1.0)")
    p.add_argument("--end-date", type=_date, help="last simulated day, YYYY-MM-DD (default yesterday, UTC)")
    live = p.add_argument_group("live mode")
    live.add_argument("--live", action="store_true", help="continue the existing estate, appending new hours")
    live.add_argument("--interval", type=float, default=5.0, help="seconds between ticks (default 5)")
    live.add_argument("--hours-per-tick", type=int, default=1, help="simulated hours per tick (default 1)")
    live.add_argument("--ticks", type=int, help="stop after N ticks (default: until Ctrl-C)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, ctx) -> int:  # noqa: ANN001
    """Simulate a fresh estate, or continue one with ``--live``; print the summary."""
    from health_monitor.gold.simulator import simulate, simulate_live

    if args.live:
        if args.hours_per_tick < 1 or args.hours_per_tick > 168:
            raise HealthMonitorError("--hours-per-tick must be between 1 and 168")
        if args.ticks is not None and args.ticks < 1:
            raise HealthMonitorError("--ticks must be at least 1")
        if args.interval < 0:
            raise HealthMonitorError("--interval must not be negative")
        summary = simulate_live(ctx.lake, ticks=args.ticks, hours_per_tick=args.hours_per_tick,
                                seed=args.seed, interval=args.interval)
    else:
        summary = simulate(ctx.lake, days=args.days, workspaces=args.workspaces,
                           seed=7 if args.seed is None else args.seed,
                           scale=args.scale, end_date=args.end_date)
    print("\n".join(summary.lines()))
    return 0
