"""``health-monitor train``: build the feature tables and train catalog models into the registry."""

from __future__ import annotations

import argparse

from health_monitor.catalog import DOMAINS, MODELS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train catalog models (features -> MLflow registry)",
                       description="Build the feature tables from Gold, then train, evaluate, log and register "
                       "catalog models. A new version becomes 'challenger'; it becomes 'champion' only if it is "
                       "not worse than its naive baseline on the validation and test splits and beats the current "
                       "champion on validation. Where it loses to the baseline, the baseline is registered and "
                       "serves in its place.")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--all", action="store_true", help="all 23 models")
    which.add_argument("--domain", choices=DOMAINS, help="the models of one domain")
    which.add_argument("--model", action="append", choices=[m.name for m in MODELS], metavar="NAME",
                       help="one model (repeatable)")
    p.add_argument("--skip-features", action="store_true", help="reuse the existing feature tables")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, ctx) -> int:  # noqa: ANN001
    from health_monitor.batch.trainer import train_models
    from health_monitor.catalog import select

    specs = select(names=args.model, domain=args.domain)
    results = train_models(ctx.lake, specs, build=not args.skip_features)
    print(f"{'model':<38} {'metric':<20} {'test':>8} {'baseline':>9} {'target':>8}  {'version':>7}  serving")
    for spec, r in zip(specs, results, strict=True):
        if r.skipped:
            print(f"{r.name:<38} skipped: {r.skipped}")
            continue
        fmt = lambda x: "n/a" if x is None else f"{x:.3f}"  # noqa: E731
        print(f"{r.name:<38} {r.key_metric:<20} {fmt(r.test_metric):>8} {fmt(r.baseline_metric):>9} "
              f"{spec.target_text:>8}  {'v' + str(r.version):>7}  {r.serving}")
    for r in results:
        if not r.promoted:
            print(f"  {r.name}: {r.serving} serves: {r.serving_reason}")
    return 0
