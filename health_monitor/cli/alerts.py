"""``health-monitor alerts``: list, acknowledge, resolve, export and deliver alerts."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from health_monitor.errors import HealthMonitorError
from health_monitor.rules import DOMAINS, SEVERITIES
from health_monitor.streaming.alerts import STATUSES

EXPORT_COLUMNS = [
    "alert_id", "status", "severity", "score", "domain", "alert_type", "entity_type", "entity_id",
    "workspace_id", "window_start", "window_end", "occurrences", "deviation_pct", "impact_usd",
    "summary", "evidence", "model_name", "model_version", "detected_at", "updated_at",
    "status_actor", "status_note", "status_at",
]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("alerts", help="list, acknowledge, resolve, export and deliver alerts",
                       description="Work with the alerts the streaming engine raised.")
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)

    def filters(q: argparse.ArgumentParser) -> None:
        q.add_argument("--severity", type=str.upper, choices=SEVERITIES,
                       help="only this severity and above")
        q.add_argument("--domain", choices=DOMAINS, help="only this domain")
        q.add_argument("--status", type=str.upper, choices=STATUSES, help="only alerts in this status")

    ls = verbs.add_parser("list", help="the most recent alerts as a table")
    filters(ls)
    ls.add_argument("--limit", type=int, default=20, help="how many (default 20, newest first)")
    ls.set_defaults(func=run_list)

    for verb, helptext in (("ack", "acknowledge an alert (someone is on it)"),
                           ("resolve", "mark an alert resolved"),
                           ("reopen", "re-open an acknowledged or resolved alert")):
        a = verbs.add_parser(verb, help=helptext)
        a.add_argument("alert_id", metavar="ID", help="alert id (or a unique prefix of 6+ characters)")
        a.add_argument("--note", help="why / what was done")
        a.add_argument("--actor", help="who (default: the current user)")
        a.set_defaults(func=run_action, action_verb=verb)

    ex = verbs.add_parser("export", help="write alerts to a CSV or JSON file")
    filters(ex)
    ex.add_argument("--format", choices=("csv", "json"), required=True)
    ex.add_argument("--output", required=True, help="file to write ('-' for standard output)")
    ex.set_defaults(func=run_export)

    no = verbs.add_parser("notify", help="POST new alerts and escalations to a webhook (at-least-once)")
    no.add_argument("--webhook-url", default=os.environ.get("HEALTH_MONITOR_WEBHOOK_URL"),
                    help="receiver URL (default $HEALTH_MONITOR_WEBHOOK_URL)")
    no.add_argument("--once", action="store_true", help="deliver what is pending, then exit")
    no.add_argument("--interval", type=float, default=30.0, help="seconds between polls (default 30)")
    no.add_argument("--min-severity", type=str.upper, choices=SEVERITIES, default="LOW",
                    help="deliver only alerts at or above this severity")
    no.add_argument("--max-attempts", type=int, default=5, help="tries per delivery (default 5)")
    no.add_argument("--allow-private-network", action="store_true",
                    help="allow a receiver on a private, loopback or link-local address (on-prem receivers; "
                    "or list hosts/CIDRs in $HEALTH_MONITOR_WEBHOOK_ALLOW)")
    no.add_argument("--signing-secret-env", metavar="VAR", default="HEALTH_MONITOR_WEBHOOK_SECRET",
                    help="environment variable holding the HMAC secret; when set, each POST carries an "
                    "X-Health-Monitor-Signature header (default $HEALTH_MONITOR_WEBHOOK_SECRET)")
    no.set_defaults(func=run_notify)


def _filtered(ctx, args: argparse.Namespace):  # noqa: ANN001, ANN202
    from pyspark.sql import functions as F

    from health_monitor.streaming.alerts import alert_status

    df = alert_status(ctx.lake)
    if args.severity:
        df = df.where(F.col("severity").isin(list(SEVERITIES[SEVERITIES.index(args.severity):])))
    if args.domain:
        df = df.where(F.col("domain") == args.domain)
    if args.status:
        df = df.where(F.col("status") == args.status)
    return df.orderBy(F.col("detected_at").desc(), F.col("alert_id"))


def _short(text: object, width: int) -> str:
    s = "" if text is None else str(text)
    return s if len(s) <= width else s[: width - 1] + "…"


def run_list(args: argparse.Namespace, ctx) -> int:  # noqa: ANN001
    if args.limit < 1:
        raise HealthMonitorError("--limit must be at least 1")
    rows = _filtered(ctx, args).limit(args.limit).collect()
    if not rows:
        print("no alerts match" if any((args.severity, args.domain, args.status)) else
              "no alerts yet: run 'health-monitor stream start' (or 'health-monitor replay RECORDING')")
        return 0
    header = ("id", "severity", "status", "domain", "alert_type", "entity", "last window", "n", "summary")
    table = [(r["alert_id"][:12], r["severity"], r["status"], r["domain"], r["alert_type"],
              _short(f"{r['entity_type']}:{r['entity_id']}", 32), f"{r['window_end']:%Y-%m-%d %H:%M}",
              str(r["occurrences"] or 1), _short(r["summary"], 110)) for r in rows]
    widths = [max(len(h), *(len(t[i]) for t in table)) for i, h in enumerate(header)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
    for t in table:
        print("  ".join(v.ljust(w) for v, w in zip(t, widths, strict=True)).rstrip())
    return 0


def run_action(args: argparse.Namespace, ctx) -> int:  # noqa: ANN001
    from health_monitor.streaming import alerts

    fn = {"ack": alerts.ack_alert, "resolve": alerts.resolve_alert, "reopen": alerts.reopen_alert}[args.action_verb]
    full_id = fn(ctx.lake, args.alert_id, actor=args.actor, note=args.note)
    status = {"ack": "ACKED", "resolve": "RESOLVED", "reopen": "OPEN"}[args.action_verb]
    print(f"{full_id} {status}")
    return 0


def run_export(args: argparse.Namespace, ctx) -> int:  # noqa: ANN001
    out = None if args.output == "-" else Path(args.output)
    if out is not None and not out.parent.exists():
        raise HealthMonitorError(f"cannot write {out}: folder {out.parent} does not exist")
    pdf = _filtered(ctx, args).toPandas()
    pdf = pdf[[c for c in EXPORT_COLUMNS if c in pdf.columns]]
    pdf["evidence"] = pdf["evidence"].map(lambda v: [] if v is None else list(v))
    if args.format == "csv":
        pdf = pdf.assign(evidence=pdf["evidence"].map("; ".join))
        text = pdf.to_csv(index=False, date_format="%Y-%m-%dT%H:%M:%SZ")
    else:
        records = json.loads(pdf.to_json(orient="records", date_format="iso", date_unit="s"))
        text = json.dumps(records, indent=1) + "\n"
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text)
        print(f"wrote {len(pdf)} alert(s) to {out}", file=sys.stderr)
    return 0


def run_notify(args: argparse.Namespace, ctx) -> int:  # noqa: ANN001
    from health_monitor import progress
    from health_monitor.streaming.notify import check_webhook_url, notify_new_alerts

    if not args.webhook_url:
        raise HealthMonitorError("no webhook URL: pass --webhook-url URL or set HEALTH_MONITOR_WEBHOOK_URL")
    # Refused before Spark starts; each delivery run checks again (DNS answers change).
    check_webhook_url(args.webhook_url, allow_private_network=args.allow_private_network)
    while True:
        sent = notify_new_alerts(ctx.lake, args.webhook_url, min_severity=args.min_severity,
                                 max_attempts=args.max_attempts, allow_private_network=args.allow_private_network,
                                 signing_secret=os.environ.get(args.signing_secret_env) or None)
        progress.info(f"delivered {sent} alert event(s)")
        if args.once:
            print(f"delivered {sent} alert event(s)")
            return 0
        time.sleep(max(1.0, args.interval))
