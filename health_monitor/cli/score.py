"""``health-monitor score``: daily batch inference, budget forecasts and recommendations."""

from __future__ import annotations

import argparse

from health_monitor import progress
from health_monitor.catalog import MODELS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "score", help="score every model's active entities for a day; budget forecasts; recommendations",
        description="Batch inference for one day: each catalog model's champion scores the entities active "
        "that day (features as of that day) into ml.<model>_predictions (reruns replace), then "
        "ml.budget_forecast_predictions and ml.recommendations are refreshed. Prints coverage per model. "
        "With --revisions it runs the late-billing correction pass instead (daily): the last 8 days of cost "
        "windows are replayed from Gold with the billing rows that arrived late, judged again by the "
        "cost_anomaly_detector champion at its operating point, and the windows only late billing shows "
        "are written to monitor.alerts (exactly once per day; a window the stream alerted on is folded "
        "into its alert).")
    p.add_argument("--date", metavar="YYYY-MM-DD", help="score date (default: the last day with usage in Gold)")
    p.add_argument("--model", action="append", choices=[m.name for m in MODELS], metavar="NAME",
                   help="score only this model (repeatable)")
    p.add_argument("--build-features", action="store_true",
                   help="rebuild the feature tables from Gold first (when Gold moved on since training)")
    p.add_argument("--no-prophet", action="store_true", help="budget forecasts with statistical models only")
    p.add_argument("--skip-budget", action="store_true", help="do not refresh budget_forecast_predictions")
    p.add_argument("--skip-recommendations", action="store_true", help="do not refresh recommendations")
    p.add_argument("--revisions", action="store_true",
                   help="run the late-billing correction pass for the day instead of scoring (cost windows "
                   "judged again on billing that arrived after they closed; alerts to monitor.alerts)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, ctx) -> int:  # noqa: ANN001
    from health_monitor.batch.scoring import score_all

    if args.revisions:
        from health_monitor.batch.revisions import revision_pass

        for line in revision_pass(ctx.lake, args.date).lines():
            print(line)
        return 0
    report = score_all(ctx.lake, args.date, args.model, build_features=args.build_features)
    print(f"coverage for {report.score_date} (entities scored / active):")
    for line in report.lines():
        print("  " + line)
    if not args.skip_budget:
        from health_monitor.batch.budget import budget_forecast_predictions

        rows = budget_forecast_predictions(ctx.lake, report.score_date, use_prophet=not args.no_prophet)
        progress.info(f"budget_forecast_predictions: {len(rows)} rows "
                      f"({rows.workspace_id.nunique()} entities incl. ACCOUNT)")
    if not args.skip_recommendations:
        from health_monitor.batch.recommendations import build_recommendations

        recs = build_recommendations(ctx.lake, report.score_date)
        progress.info(f"recommendations: {len(recs)} rows, "
                      f"${recs.estimated_savings_usd_month.sum():,.0f}/month of savings identified")
    if not report.complete:
        print("note: coverage is below 100% for some models (reasons above)")
    return 0
