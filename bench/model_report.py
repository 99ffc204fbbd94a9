"""Train all 23 catalog models on one simulated estate, measure them on another, write the report.

    .venv/bin/python bench/model_report.py --train-dir /tmp/hm-train --eval-dir /tmp/hm-eval \
        [--days 120 --workspaces 8 --train-seed 7 --eval-seed 8] [--reuse]

Prints the training time of ``train --all`` (features included) and writes docs/model-report.md.
Wall times on a shared machine are noisy; CPU time of this process is printed beside them.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path

from health_monitor import progress
from health_monitor.batch.evaluation import evaluate_held_out, render_report
from health_monitor.batch.trainer import train_models
from health_monitor.catalog import MODELS
from health_monitor.features import build_features
from health_monitor.runtime import Lakehouse, get_spark
from health_monitor.settings import load_settings

#: Why a model misses its target or baseline, where the reason is known (filled from runs).
REASONS: dict[str, str] = {}


def _estate(path: str, seed: int, args: argparse.Namespace) -> Lakehouse:
    from health_monitor.gold.simulator import simulate

    settings = load_settings(path)
    lake = Lakehouse(settings, get_spark(settings))
    if not (args.reuse and lake.exists("fact_usage", "gold")):
        with progress.step(f"simulate seed {seed} into {path}"):
            simulate(lake, days=args.days, workspaces=args.workspaces, seed=seed, scale=args.scale)
    return lake


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
    args = p.parse_args()
    progress.enable(True)
    train = _estate(args.train_dir, args.train_seed, args)
    load0 = os.getloadavg()[0]
    t0, c0 = time.monotonic(), time.process_time()
    results = train_models(train, list(MODELS))
    train_wall, train_cpu = time.monotonic() - t0, time.process_time() - c0
    load1 = os.getloadavg()[0]
    print(f"train --all: {train_wall:.0f} s wall, {train_cpu:.0f} s CPU (driver process) "
          f"on {os.cpu_count()} cores, load {load0:.1f} at the start, {load1:.1f} at the end")
    slowest = ", ".join(f"{r.name} {r.seconds:.0f} s" for r in sorted(results, key=lambda r: -r.seconds)[:5])
    held = _estate(args.eval_dir, args.eval_seed, args)
    with progress.step("features of the held-out estate"):
        build_features(held)
    rows = evaluate_held_out(train.settings, held, list(MODELS), {r.name: r for r in results})
    header = (
        "# Model report\n\n"
        f"Generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `bench/model_report.py` on {platform.node()}: "
        f"trained on a simulated estate (seed {args.train_seed}, {args.days} days, {args.workspaces} workspaces, "
        f"scale {args.scale}), measured on a different estate (seed {args.eval_seed}) that no model or "
        "tuning step saw. Targets are the spec's (classification F1 > 0.85, regression MAPE < 0.15); "
        "models without a spec target are compared with their naive baseline only. GT = the held-out "
        "estate's ground-truth incidents (unsupervised detectors only; never used in training).\n\n"
        f"`train --all` (feature tables + 23 models + MLflow logging): {train_wall:.0f} s wall, "
        f"{train_cpu:.0f} s driver CPU (Spark executors and XGBoost threads not included), "
        f"{os.cpu_count()} cores, 1-min load average {load0:.1f} at the start and {load1:.1f} at the end "
        f"(other sessions share the machine). Slowest models (training + MLflow logging): {slowest}; "
        f"the rest is building the feature tables."
    )
    text = render_report(rows, header, REASONS)
    Path(args.output).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
