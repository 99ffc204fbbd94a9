"""``health-monitor features``: (re)build the feature tables from Gold (the bundle's feature task)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("features", help="build the feature tables from Gold (training and scoring read them)",
                       description="Compute every feature table (or the chosen ones) from Gold and overwrite it.")
    p.add_argument("--table", action="append", metavar="T", dest="tables",
                   help="build only this feature table (repeatable; default: all)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, ctx) -> int:  # noqa: ANN001
    from health_monitor.features import build_features

    counts = build_features(ctx.lake, tables=args.tables)
    for name, n in counts.items():
        print(f"{name:<40} {n:>10,}")
    return 0
