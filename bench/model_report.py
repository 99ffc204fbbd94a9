"""Train all 23 catalog models on one simulated estate, measure them on another, write the report.

    .venv/bin/python bench/model_report.py --train-dir /tmp/hm-train --eval-dir /tmp/hm-eval \
        [--days 120 --workspaces 8 --train-seed 7 --eval-seed 8] [--reuse] \
        [--more-eval DIR:SEED ...] [--model NAME ...] [--end-date YYYY-MM-DD]

Prints the training time of ``train --all`` (features included) and writes docs/model-report.md:
each champion on the held-out estate, which version serves (the model or its naive baseline)
and why, and the unsupervised detectors' precision and recall at their operating point against
the held-out estates' incidents (``--more-eval`` adds estates with further seeds; pooled).
``--model`` limits training and the held-out estates' feature builds to those models' tables;
``--end-date`` pins the estates' last day (an estate's draws depend on its dates: the default,
yesterday, gives a different estate every day).
Wall times on a shared machine are noisy; CPU time of this process is printed beside them.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from datetime import UTC, date, datetime
from pathlib import Path

from health_monitor import progress
from health_monitor.batch.evaluation import GROUND_TRUTH_MATCH, ReportRow, evaluate_held_out, render_report
from health_monitor.batch.trainer import TrainResult, train_models
from health_monitor.catalog import MODELS, select
from health_monitor.features import build_features
from health_monitor.runtime import Lakehouse, get_spark
from health_monitor.settings import load_settings

_NOISE = ("the simulator draws each {what} with independent log-normal noise (sigma {sigma}) that no "
          "pre-run feature can know; a perfect predictor of the conditional median still has MAPE "
          "{floor} at that noise, so the 0.15 target is out of reach by construction. What the model can "
          "do is beat the naive baseline, which it is compared with on the same rows.")
_COIN = ("the outcome is a random draw on top of its latent cause in the simulator ({cause}); "
         "F1 0.85 would need the draw itself, not just its probability.")

#: Why a model misses its target or baseline: the mechanism, from the simulator's code and the
#: runs (gold/simulator/*.py). Numbers that come from a run are in the table, not here.
REASONS: dict[str, str] = {
    "job_cost_optimizer": _NOISE.format(what="run's duration (and so its cost)", sigma="0.4-0.9 by job archetype",
                                        floor="0.35-0.95"),
    "job_duration_forecaster": _NOISE.format(what="run's duration", sigma="0.4-0.9 by job archetype",
                                             floor="0.35-0.95"),
    "query_performance_forecaster": _NOISE.format(
        what="statement's execution (sigma 0.5), compilation (0.6) and fetch time (0.8), plus random "
             "cold starts of 1-4 minutes,", sigma="0.5-0.8", floor="above 0.4"),
    "sla_breach_predictor": _COIN.format(
        cause="a breach is a run whose noisy duration crosses the SLA; the run's own noise decides"),
    "privilege_escalation_detector": (
        "the label is almost entirely the audit log's random PERMISSION_DENIED permission changes "
        "(independent draws per request in the simulator); the rare self-grant incidents are the only "
        "part with precursors, so F1 stays low while still above 'any permission change'."),
    "cache_hit_predictor": (
        "the simulator serves 35% of dashboard statements from the result cache at random, and nothing "
        "else; even knowing which statements come from dashboards caps F1 near 0.5."),
    "retry_success_predictor": (
        "a retry after a transient error succeeds with probability 0.75 in the simulator and never after "
        "a systematic one; the model learns that split (per termination code), the remaining coin flip "
        "(and next scheduled runs after a failure, which succeed or fail on their own draws) keeps F1 "
        "below the target."),
    "data_freshness_predictor": (
        "the lag is the time from the table's last commit to the check; commits land when the writer "
        "job's run ends, and run durations carry the log-normal noise above, so where a table is written "
        "often the lag is minutes to an hour and MAPE punishes small absolute misses; the 7-day mean lag "
        "is close to the best constant per table (mechanism read from the simulator code, not measured)."),
    "tag_recommender": (
        "a closed-set classifier cannot name a team it never saw: each simulated estate draws its own "
        "teams per workspace (seed 7: data-eng, analytics, finance, marketing; seed 8 adds security, "
        "ml-platform, hr-analytics), so most held-out jobs carry a tag absent from training. Within one "
        "estate the workspace's most frequent tag is perfect (one team per workspace)."),
    "chargeback_optimizer": (
        "every simulated workspace belongs to one team, so the workspace's team shares already allocate "
        "almost all cost correctly; the Shapley pools can only tie."),
    "cluster_capacity_planner": (
        "not explained yet: next week's peak is close to the last 7-day peak for steady clusters, and the "
        "regressor trained on the training estate's clusters does not transfer to the held-out clusters."),
    "job_failure_predictor": (
        "the outcome is a random draw on top of its latent causes (flaky spells, preemption, memory "
        "pressure); F1 0.85 is out of reach. Losing to 'failure rate of the last 30 runs > 0.5' on the "
        "held-out estate is probably the decision threshold, chosen on the training estate's validation "
        "split, not transferring (the held-out estate has more failure streaks); not verified."),
    "dbr_migration_risk_scorer": (
        "same failure draws as the job failure predictor (a runtime change only adds 10% memory "
        "pressure); it ties with the historical-failure-rate rule on the held-out estate."),
    "data_quality_degradation_forecaster": (
        "the daily quality score is flat near its level except during incidents, so the last value at the "
        "forecast origin is the best constant; the engine's paths drift from it over the test weeks (likely; not measured)."),
}


def serving_section(results: list[TrainResult]) -> str:
    """Which version serves each model after this ``train --all``, and why (the promotion rule)."""
    lines = ["## Which version serves, and why", "",
             "After `train --all` on the training estate. A version that is worse than its naive baseline on "
             "the validation or the test split is registered but not promoted; the baseline, logged as a "
             "version of the same registered model (tag `role=baseline`, same signature), serves instead.", "",
             "| model | metric | test (model) | test (baseline) | serving | why |", "|---|---|---|---|---|---|"]
    fmt = lambda x: "-" if x is None else f"{x:.3f}"  # noqa: E731
    for r in results:
        lines.append(f"| {r.name} | {r.key_metric} | {fmt(r.test_metric)} | {fmt(r.baseline_metric)} | {r.serving} "
                     f"| {r.serving_reason} |")
    return "\n".join(lines) + "\n"


def operating_point_section(per_seed: dict[int, list[ReportRow]]) -> str:
    """Detectors against incidents at the threshold they alert at, per held-out seed and pooled."""
    seeds = sorted(per_seed)
    lines = ["## Detectors at their operating point", "",
             "Flag = the detector's own operating point: calibrated score >= 0.6 (a tail probability of 1e-3 "
             "among the training rows, on the streaming detectors' scale; they alert at 0.8 = 1e-4 per hourly "
             "window), or a rule that flags by itself (a self-grant; a new key's expensive untagged spend); the cost detector, whose rows are hourly "
             "windows of bursty keys, flags a key's day when two of its hours are at the threshold "
             "(`min_windows`). Hourly windows roll up to entity-days: precision = flagged entity-days inside an "
             "incident of that entity (cost: of that workspace), recall = incidents with at least one flagged "
             "entity-day. The operating point was chosen on the training estate (seed 11); the held-out "
             "estates' `ground_truth_incidents` are read here only, never by a model. Pooled over the held-out "
             "seeds " + ", ".join(map(str, seeds)) + ".", "",
             "| detector | " + " | ".join(f"seed {s}: P / R (flagged, incidents)" for s in seeds)
             + " | pooled precision | pooled recall |",
             "|---|" + "---|" * (len(seeds) + 2)]
    names = [r.name for r in per_seed[seeds[0]] if r.name in GROUND_TRUTH_MATCH]
    fmt = lambda x: "-" if x is None else f"{x:.2f}"  # noqa: E731
    for name in names:
        cells, tp, flagged, found, incidents = [], 0.0, 0, 0.0, 0
        for s in seeds:
            r = next(x for x in per_seed[s] if x.name == name)
            cells.append(f"{fmt(r.gt_precision)} / {fmt(r.gt_recall)} ({r.gt_flagged}, {r.gt_incidents})")
            flagged += r.gt_flagged or 0
            tp += (r.gt_precision or 0.0) * (r.gt_flagged or 0)
            incidents += r.gt_incidents or 0
            found += (r.gt_recall or 0.0) * (r.gt_incidents or 0)
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {fmt(tp / flagged if flagged else None)} "
                     f"| {fmt(found / incidents if incidents else None)} |")
    return "\n".join(lines) + "\n"


def _estate(path: str, seed: int, args: argparse.Namespace) -> Lakehouse:
    from health_monitor.gold.simulator import simulate

    settings = load_settings(path)
    lake = Lakehouse(settings, get_spark(settings))
    if not (args.reuse and lake.exists("fact_usage", "gold")):
        with progress.step(f"simulate seed {seed} into {path}"):
            simulate(lake, days=args.days, workspaces=args.workspaces, seed=seed, scale=args.scale,
                     end_date=args.end_date)
    return lake


def _missing(lake: Lakehouse, specs: list) -> list[str]:
    """The feature tables ``specs`` read that ``lake`` does not hold yet."""
    return sorted({s.feature_table for s in specs if not lake.exists(s.feature_table, "features")})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--train-dir", required=True)
    p.add_argument("--eval-dir", required=True)
    p.add_argument("--days", type=int, default=120)
    p.add_argument("--workspaces", type=int, default=8)
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--train-seed", type=int, default=7)
    p.add_argument("--eval-seed", type=int, default=8)
    p.add_argument("--reuse", action="store_true", help="keep existing simulated estates")
    p.add_argument("--output", default="docs/model-report.md")
    p.add_argument("--more-eval", action="append", default=[], metavar="DIR:SEED",
                   help="a further held-out estate for the detectors' operating point (repeatable)")
    p.add_argument("--model", action="append", dest="models", metavar="NAME", help="only these models")
    p.add_argument("--end-date", type=date.fromisoformat, default=None,
                   help="last simulated day of every estate (default: yesterday, UTC)")
    args = p.parse_args()
    progress.enable(True)
    specs = select(names=args.models) if args.models else list(MODELS)
    # only the tables the chosen models read (every table when all models run)
    tables = sorted({s.feature_table for s in specs}) if args.models else None
    train = _estate(args.train_dir, args.train_seed, args)
    load0 = os.getloadavg()[0]
    t0, c0 = time.monotonic(), time.process_time()
    # --reuse keeps the feature tables an estate has and builds the ones it lacks (a run with more
    # models than the last one needs their tables too)
    build = not (args.reuse and not _missing(train, specs))
    if args.reuse and build:
        build_features(train, tables=_missing(train, specs))
    results = train_models(train, specs, build=build and not args.reuse)
    train_wall, train_cpu = time.monotonic() - t0, time.process_time() - c0
    load1 = os.getloadavg()[0]
    print(f"train --all: {train_wall:.0f} s wall, {train_cpu:.0f} s CPU (driver process) "
          f"on {os.cpu_count()} cores, load {load0:.1f} at the start, {load1:.1f} at the end")
    slowest = ", ".join(f"{r.name} {r.seconds:.0f} s" for r in sorted(results, key=lambda r: -r.seconds)[:5])
    held = _estate(args.eval_dir, args.eval_seed, args)
    if not args.reuse or _missing(held, specs):
        with progress.step("features of the held-out estate"):
            build_features(held, tables=_missing(held, specs) if args.reuse else tables)
    rows = evaluate_held_out(train.settings, held, specs, {r.name: r for r in results})
    per_seed = {args.eval_seed: rows}
    detectors = [s for s in specs if s.name in GROUND_TRUTH_MATCH]
    for item in args.more_eval:
        path, seed = item.rsplit(":", 1)
        more = _estate(path, int(seed), args)
        if not args.reuse or _missing(more, detectors):
            build_features(more, tables=_missing(more, detectors) if args.reuse else tables)
        per_seed[int(seed)] = evaluate_held_out(train.settings, more, detectors)
    header = (
        "# Model report\n\n"
        f"Generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `bench/model_report.py` on {platform.node()}: "
        f"trained on a simulated estate (seed {args.train_seed}, {args.days} days, {args.workspaces} workspaces, "
        f"scale {args.scale}), measured on a different estate (seed {args.eval_seed}) that no model or "
        "tuning step saw. Targets are the spec's (classification F1 > 0.85, regression MAPE < 0.15); "
        "models without a spec target are compared with their naive baseline only. GT = the held-out "
        "estate's ground-truth incidents (unsupervised detectors only; never used in training).\n\n"
        f"`train --all` ({'feature tables + ' if build else 'feature tables reused, '}{len(specs)} models + MLflow "
        f"logging): {train_wall:.0f} s wall, "
        f"{train_cpu:.0f} s CPU of the Python driver (its XGBoost threads included, the Spark JVM not), "
        f"{os.cpu_count()} cores, 1-min load average {load0:.1f} at the start and {load1:.1f} at the end "
        f"(other sessions share the machine). Slowest models (training + MLflow logging): {slowest}; "
        f"{'the rest is building the feature tables.' if build else 'the rest is reading the feature tables.'}"
    )
    text = render_report(rows, header, REASONS) + "\n" + serving_section(results)
    if detectors:
        text += "\n" + operating_point_section(per_seed)
    Path(args.output).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
