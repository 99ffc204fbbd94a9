"""``health-monitor savings``: cost savings identified by the recommendations, by category."""

from __future__ import annotations

import argparse
import datetime as dt

from health_monitor.errors import HealthMonitorError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("savings", help="total the monthly savings the recommendations identified",
                       description="Sum estimated_savings_usd_month of ml.recommendations by category for a "
                       "score date (default the latest) and list the largest items.")
    p.add_argument("--date", metavar="YYYY-MM-DD", help="score date (default: the latest)")
    p.add_argument("--top", type=int, default=10, help="items to list (default 10)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, ctx) -> int:  # noqa: ANN001
    from health_monitor.batch.recommendations import savings_summary

    day = None
    if args.date:
        try:
            day = dt.date.fromisoformat(args.date)
        except ValueError:
            raise HealthMonitorError(f"--date {args.date!r} is not YYYY-MM-DD") from None
    by_cat, top = savings_summary(ctx.lake, day, args.top)
    if by_cat.empty:
        print("no savings identified yet: run 'health-monitor score' (after 'health-monitor train')")
        return 0
    print(f"{'category':<34} {'items':>6} {'USD/month':>14}")
    for r in by_cat.itertuples():
        print(f"{r.category:<34} {r.items:>6} {r.usd_month:>14,.0f}")
    print(f"{'total':<34} {int(by_cat['items'].sum()):>6} {by_cat.usd_month.sum():>14,.0f}")
    print(f"\ntop {len(top)}:")
    for r in top.itertuples():
        print(f"  ${r.estimated_savings_usd_month:>10,.0f}/month  {r.category}  {r.entity}: {r.action}")
        print(f"      {r.evidence}")
    return 0
