"""``health-monitor build``: build the Gold layer from the system layer, incrementally."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "build", help="build the Gold tables from the system tables (incremental)",
        description="Build the Gold tables from the system layer (system.* on Databricks, or tables "
        "loaded with 'health-monitor ingest' / 'simulate' locally). Reruns add only new data.",
    )
    p.add_argument("--table", action="append", metavar="T", dest="tables",
                   help="build only this Gold table (repeatable; default: all)")
    p.add_argument("--full-refresh", action="store_true",
                   help="drop the chosen Gold tables and their checkpoints, then rebuild from all history")
    p.add_argument("--holiday-country", default="US", metavar="CC",
                   help="ISO country code of the public holidays in dim_date (default US)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, ctx) -> int:  # noqa: ANN001
    from health_monitor.gold.builders import BUILDABLE, build_gold

    counts = build_gold(ctx.lake, args.tables, full_refresh=args.full_refresh,
                        holiday_country=args.holiday_country)
    wanted = [t for t in BUILDABLE if not args.tables or t in args.tables]
    width = max(len(t) for t in wanted)
    print(f"{'gold table':<{width}}  {'rows added/updated':>18}")
    for t in wanted:
        shown = f"{counts[t]:,}" if t in counts else "skipped (no source)"
        print(f"{t:<{width}}  {shown:>18}")
    if not counts:
        print(f"no system tables in {ctx.settings.data_dir}: run 'health-monitor simulate' or 'health-monitor ingest'")
    return 0
