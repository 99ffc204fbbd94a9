"""``make demo``: the end-to-end tour on the embedded lakehouse.

Simulates an estate (system tables -> Gold), then runs each stage of the product on it and
prints what a user would look at. Every stage calls the same library functions as the CLI.
"""

from __future__ import annotations

import argparse
import sys
import time

from health_monitor import progress
from health_monitor.errors import HealthMonitorError
from health_monitor.runtime import Lakehouse, stop_spark
from health_monitor.settings import load_settings


def _banner(text: str) -> None:
    print(f"\n=== {text} ===", flush=True)


def run_demo(data_dir: str, days: int, workspaces: int, seed: int) -> int:
    from health_monitor.gold.simulator import simulate

    lake = Lakehouse(load_settings(data_dir))
    start = time.monotonic()

    _banner(f"1. Simulate {days} days of a {workspaces}-workspace estate (seed {seed}) and build Gold")
    summary = simulate(lake, days=days, workspaces=workspaces, seed=seed)
    print("\n".join("  " + line for line in summary.lines()))

    _banner("Tables")
    for layer, name in lake.list_tables():
        if layer in ("gold", "simulator"):
            print(f"  {layer + '.' + name:<55} {lake.count(name, layer):>10,}")

    report_path = _batch_stages(lake)
    print(f"\nReport: {report_path}")

    print(f"\nDemo finished in {time.monotonic() - start:.0f}s; data in {lake.settings.data_dir}")
    return 0


def _batch_stages(lake: Lakehouse) -> str:
    """Train, score, forecast, (replay), report: the batch half of the tour; returns the report path."""
    from health_monitor.batch.budget import budget_forecast_predictions
    from health_monitor.batch.recommendations import build_recommendations, savings_summary
    from health_monitor.batch.scoring import score_all
    from health_monitor.batch.trainer import train_models
    from health_monitor.catalog import MODELS
    from health_monitor.report import write_report

    _banner("2. Train the 23 catalog models (champion / challenger in the MLflow registry)")
    train_models(lake, list(MODELS))

    _banner("3. Score the last day: every model's active entities, with coverage")
    report = score_all(lake)
    for line in report.lines():
        print("  " + line)

    _banner("4. Forecast: monthly budget P10/P50/P90 and the commit variance")
    budget = budget_forecast_predictions(lake, report.score_date)
    acc = budget[budget.workspace_id == "ACCOUNT"]
    for r in acc.itertuples():
        print(f"  {r.month_start}  P10 ${r.predicted_monthly_cost_p10:>12,.0f}  P50 ${r.predicted_monthly_cost:>12,.0f}"
              f"  P90 ${r.predicted_monthly_cost_p90:>12,.0f}")
    recs = build_recommendations(lake, report.score_date)
    by_cat, _ = savings_summary(lake, report.score_date)
    print(f"  recommendations: {len(recs)}; savings identified: ${by_cat.usd_month.sum():,.0f}/month")

    _banner("5. Serve: the nine real-time endpoints, each called once with keys from this estate")
    _serving_tour(lake)

    _banner("6. Stream: replay a recorded privilege self-grant through the real streaming queries")
    from pathlib import Path

    from health_monitor.streaming.replay import format_alerts, replay

    recording = Path(__file__).resolve().parents[1] / "tests" / "recordings" / "privilege_self_grant"
    if recording.is_dir():
        print(format_alerts(replay(recording).alerts))
    else:  # an installed wheel has no recordings: say so instead of failing the tour
        print(f"  (no recording at {recording}; run 'health-monitor replay RECORDING' from a checkout)")

    _banner("7. Report")
    path, _ = write_report(lake, lake.settings.data_dir / "report.html")
    return str(path.resolve())


def _serving_tour(lake: Lakehouse) -> None:
    """Start the server on a free loopback port, call every endpoint by entity key, print answers."""
    import json
    import secrets
    import urllib.request

    from health_monitor.serving import ModelSet, ServerConfig
    from health_monitor.serving.server import BackgroundServer

    models = ModelSet(lake)
    models.reload()
    token = secrets.token_urlsafe(24)
    server = BackgroundServer(models, ServerConfig(token=token)).start()
    try:
        for ep in models.endpoints:
            served = models.served.get(ep)
            if served is None or not served.contract.example_keys:
                print(f"  POST /{ep:<20} not served: {models.missing.get(ep, 'no features for its keys')}")
                continue
            body = json.dumps({"keys": [served.contract.example_keys]}).encode()
            req = urllib.request.Request(f"{server.url}/{ep}", data=body, method="POST", headers={
                "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - our own loopback server
                answer = json.loads(resp.read())
            pred = answer["predictions"][0]
            shown = ", ".join(f"{k}={_short(v)}" for k, v in pred["prediction"].items())
            risk = f" [{pred['risk_level']}]" if pred.get("risk_level") else ""
            print(f"  POST /{ep:<20} {json.dumps(served.contract.example_keys)} -> {shown}{risk}"
                  f"  ({answer['model']} v{answer['version']})")
    finally:
        server.stop()


def _short(v: object) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)[:40]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m health_monitor.demo")
    parser.add_argument("--data-dir", default=".health-monitor")
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--workspaces", type=int, default=8)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    progress.enable(True)
    try:
        return run_demo(args.data_dir, args.days, args.workspaces, args.seed)
    except HealthMonitorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        stop_spark()


if __name__ == "__main__":
    sys.exit(main())
