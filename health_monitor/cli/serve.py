"""``health-monitor serve``: the nine real-time endpoints from the registry's champions."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve", help="serve the nine model endpoints over HTTP (champions from the registry)",
        description="Serve every catalog endpoint (POST /job-failure-risk, /cost-anomaly, ...) from the "
        "registry's champion versions, with bearer-token auth, OpenAPI at /openapi.json, Prometheus "
        "metrics at /metrics and an inference table in Delta. Champions are reloaded when their alias moves.")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1; any other needs a token)")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--token-file", help="file holding the bearer token (else $HEALTH_MONITOR_API_TOKEN; "
                   "on loopback a generated one in <data dir>/serving/token)")
    p.add_argument("--reload-seconds", type=float, default=30.0, help="how often champion aliases are checked")
    p.add_argument("--refresh-seconds", type=float, default=300.0,
                   help="how often the online store re-reads the feature tables")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, ctx) -> int:  # noqa: ANN001
    from health_monitor.serving.server import serve

    serve(ctx.lake, args.host, args.port, args.token_file, args.reload_seconds, args.refresh_seconds)
    return 0
