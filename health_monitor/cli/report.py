"""``health-monitor report``: one self-contained HTML report of forecasts, savings and alerts."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="write a self-contained HTML report (budget, anomalies, savings, risks)",
                       description="Write ONE HTML file with plotly charts (JavaScript inlined, opens offline): "
                       "budget fan chart, cost anomalies, top savings, riskiest jobs, pipeline health, "
                       "security alerts. Sections without data say which command produces it.")
    p.add_argument("--output", "-o", default="report.html", help="HTML file to write (default report.html)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, ctx) -> int:  # noqa: ANN001
    from health_monitor.report import write_report

    path, sections = write_report(ctx.lake, args.output)
    drawn = sum(s.figure is not None for s in sections)
    print(f"report written to {path.resolve()} ({drawn}/{len(sections)} sections with charts)")
    for s in sections:
        if s.figure is None:
            print(f"  {s.title}: {s.note}")
    return 0
