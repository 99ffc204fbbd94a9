"""``health-monitor replay RECORDING``: run a recorded incident through the real streaming queries."""

from __future__ import annotations

import argparse

from health_monitor.errors import HealthMonitorError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("replay", help="replay a recorded Gold stream through the streaming engine",
                       description="Load a recording (folder with manifest.json and one JSON-lines file per "
                                   "Gold table) into a fresh temporary lakehouse, run the streaming queries "
                                   "with an available-now trigger and print the alerts.")
    p.add_argument("recording", help="recording folder (e.g. tests/recordings/bulk_exfiltration)")
    p.add_argument("--chunks", type=int, default=1, help="commits per table, i.e. data micro-batches (default 1)")
    p.add_argument("--keep", metavar="DIR", help="keep the replay lakehouse in DIR instead of a temp folder")
    p.add_argument("--check", action="store_true",
                   help="compare with the recording's expected_alerts.json; exit 1 on a difference")
    p.add_argument("--write-expected", action="store_true",
                   help="store this replay's alerts as the recording's expected_alerts.json")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, ctx) -> int:  # noqa: ANN001
    from health_monitor import progress
    from health_monitor.streaming import replay as rp

    if args.chunks < 1:
        raise HealthMonitorError("--chunks must be at least 1")
    with progress.step(f"replaying {args.recording}"):
        result = rp.replay(args.recording, chunks=args.chunks, keep_dir=args.keep)
    rec = result.recording
    print(f"recording {rec.name}" + (f" ({rec.incident_type})" if rec.incident_type else "")
          + (f": {rec.description}" if rec.description else ""))
    print(rp.format_alerts(result.alerts))
    if args.write_expected:
        print(f"expected alerts written to {rp.write_expected(rec, result.alerts)}")
    if args.check:
        expected = rp.expected_alerts(rec)
        if expected is None:
            raise HealthMonitorError(f"{rec.path} has no expected_alerts.json to check against")
        got = rp.alert_identities(result.alerts)
        if got != expected:
            for t in sorted(expected - got):
                print(f"missing:    {t}")
            for t in sorted(got - expected):
                print(f"unexpected: {t}")
            return 1
        print(f"alerts match expected_alerts.json ({len(got)})")
    return 0
