"""``health-monitor evaluate alerts``: precision, recall and time to detect against ground truth."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="measure detection quality against the simulator's ground truth",
                       description="Match monitor.alerts against simulator.ground_truth_incidents (entity and "
                                   "time overlap with a tolerance) and print precision, recall and time to "
                                   "detect per incident type.")
    ss = p.add_subparsers(dest="evaluate_command", metavar="WHAT")
    a = ss.add_parser("alerts", help="streaming alerts vs injected incidents")
    a.add_argument("--tolerance-hours", type=float, default=6.0,
                   help="how far outside an incident an alert window may lie and still match (default 6)")
    a.add_argument("--json", action="store_true", help="print the figures as JSON")
    a.set_defaults(func=run_alerts)
    p.set_defaults(func=lambda args, ctx: (p.print_help(), 2)[1])


def run_alerts(args: argparse.Namespace, ctx) -> int:  # noqa: ANN001
    from health_monitor.errors import HealthMonitorError
    from health_monitor.streaming.evaluate import evaluate_alerts

    if args.tolerance_hours < 0:
        raise HealthMonitorError("--tolerance-hours must be >= 0")
    ev = evaluate_alerts(ctx.lake, args.tolerance_hours)
    if args.json:
        print(json.dumps({
            "precision": ev.precision, "recall": ev.recall, "alerts": ev.alerts, "true_alerts": ev.true_alerts,
            "by_incident_type": [{"incident_type": t.incident_type, "domain": t.domain, "incidents": t.incidents,
                                  "detected": t.detected, "recall": t.recall, "ttd_median_h": t.ttd_median_h}
                                 for t in ev.by_incident],
            "by_alert_type": [{"alert_type": x.alert_type, "domain": x.domain, "alerts": x.alerts,
                               "true_alerts": x.true_alerts, "precision": x.precision} for x in ev.by_alert],
        }, indent=1, default=str))
    else:
        print(ev.format())
    return 0
