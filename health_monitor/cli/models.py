"""``health-monitor models list``: the catalog with each model's registry state and metrics."""

from __future__ import annotations

import argparse

from health_monitor.catalog import DOMAINS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list catalog models with registry versions and metrics",
                       description="Inspect the model catalog and the MLflow registry.")
    verbs = p.add_subparsers(dest="verb", metavar="VERB")
    ls = verbs.add_parser("list", help="name, domain, version, champion (model or naive baseline, and why), "
                          "metric vs target and baseline")
    ls.add_argument("--domain", choices=DOMAINS)
    ls.set_defaults(func=run)
    p.set_defaults(func=run, domain=None)


def run(args: argparse.Namespace, ctx) -> int:  # noqa: ANN001
    from health_monitor.batch.registry import describe
    from health_monitor.catalog import select

    fmt = lambda x: "-" if x is None else f"{x:.3f}"  # noqa: E731
    header = (f"{'name':<36} {'domain':<12} {'version':>7} {'champion':>8} {'serving':<8}  {'metric':<20} "
              f"{'test':>7} {'target':>7} {'baseline':>8}  trained at")
    print(header)
    reasons = []
    for spec in select(domain=args.domain):
        info = describe(ctx.settings, spec)
        print(f"{spec.name:<36} {spec.domain:<12} {info.version or '-':>7} {info.champion_version or '-':>8} "
              f"{info.serving_role or '-':<8}  {spec.key_metric:<20} {fmt(info.metric):>7} {spec.target_text:>7} "
              f"{fmt(info.baseline):>8}  {info.trained_at or 'not trained'}")
        if info.serving_reason:
            reasons.append(f"  {spec.name}: v{info.champion_version} ({info.serving_role}) serves: "
                           f"{info.serving_reason}")
    if reasons:
        print("\nwhy each champion serves ('test' is the serving version's test metric):")
        print("\n".join(reasons))
    return 0
