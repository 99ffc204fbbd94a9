"""``health-monitor tables``: every table of the lakehouse with its row count."""

from __future__ import annotations

import argparse

from health_monitor.settings import LAYERS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tables", help="list the lakehouse tables with row counts",
                       description="List the tables of the lakehouse, by layer, with row counts.")
    p.add_argument("--layer", choices=LAYERS, help="only this layer")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, ctx) -> int:  # noqa: ANN001
    rows = [(layer, name, ctx.lake.count(name, layer)) for layer, name in ctx.lake.list_tables(args.layer)]
    if not rows:
        print(f"no tables yet in {ctx.settings.data_dir}: run 'health-monitor simulate' or 'health-monitor ingest'")
        return 0
    width = max(len(f"{layer}.{name}") for layer, name, _ in rows)
    print(f"{'table':<{width}}  {'rows':>12}")
    for layer, name, n in rows:
        print(f"{layer + '.' + name:<{width}}  {n:>12,}")
    return 0
