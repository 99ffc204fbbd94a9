"""Backtest the budget forecaster's month totals on simulated estates; write its section of
docs/forecast-backtest.md.

For each seed, a fresh estate is simulated into a temporary lakehouse (system tables, then Gold
``fact_usage``), and the daily list cost per workspace and account-wide is read back exactly as
``budget_forecast_predictions`` reads it. Every complete month with at least 90 days of history
before it is then forecast from rolling origins, per workspace and for the account:

- month start: on the last day of the previous month (no month-to-date actuals: the hardest);
- mid-month: on the 15th (15 days observed, as in the daily refresh).

Reported: share of actual month totals inside P10-P90 (target ~80%), MAPE of P50, median band
width, and a check that P10 <= P50 <= P90 held for every row.

Usage::

    .venv/bin/python bench/bench_budget.py [--seeds 11,12,13] [--days 240] [--workspaces 4]
        [--no-prophet] [--no-write]
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from health_monitor.batch.budget import ACCOUNT, backtest_entities, daily_costs
from health_monitor.gold.builders import build_gold
from health_monitor.gold.simulator import simulate
from health_monitor.runtime import Lakehouse, get_spark
from health_monitor.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "forecast-backtest.md"
START, END = "<!-- budget-backtest:start -->", "<!-- budget-backtest:end -->"
#: Origin kinds: day of the month observed before forecasting (0 = the day before the month).
ORIGINS = {"month start": 0, "mid-month (15th)": 15}


def estate_costs(seed: int, days: int, workspaces: int, end_date: dt.date, workdir: Path) -> pd.DataFrame:
    """Simulate one estate and return its daily cost per workspace (``workspace_id, ds, y``)."""
    settings = load_settings(workdir / f"estate-{seed}")
    lake = Lakehouse(settings, get_spark(settings))
    simulate(lake, days=days, workspaces=workspaces, seed=seed, end_date=end_date, build=False)
    build_gold(lake, ["fact_usage"], full_refresh=True)
    return daily_costs(lake)


def summarise(rows: pd.DataFrame) -> dict[str, float]:
    """Coverage, MAPE of P50, median relative band width and ordering of a set of month rows."""
    inside = (rows.actual >= rows.p10) & (rows.actual <= rows.p90)
    nz = rows.actual.abs() > 1e-9
    ape = (rows.p50 - rows.actual).abs()[nz] / rows.actual.abs()[nz]
    width = (rows.p90 - rows.p10)[nz] / rows.actual.abs()[nz]
    return {
        "months": len(rows),
        "coverage": float(inside.mean()) if len(rows) else np.nan,
        "below_p10": float((rows.actual < rows.p10).mean()) if len(rows) else np.nan,
        "above_p90": float((rows.actual > rows.p90).mean()) if len(rows) else np.nan,
        "mape": 100 * float(ape.mean()) if len(ape) else np.nan,
        "width": 100 * float(width.median()) if len(width) else np.nan,
        "ordered": bool(((rows.p10 <= rows.p50) & (rows.p50 <= rows.p90)).all()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="11,12,13")
    parser.add_argument("--days", type=int, default=240)
    parser.add_argument("--workspaces", type=int, default=4)
    parser.add_argument("--end-date", default="2025-12-31")
    parser.add_argument("--no-prophet", action="store_true", help="statistical candidates only (quick look)")
    parser.add_argument("--no-write", action="store_true", help="print only, do not write the doc")
    args = parser.parse_args()
    logging.getLogger("cmdstanpy").setLevel(logging.ERROR)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    end = dt.date.fromisoformat(args.end_date)
    frames, sim_seconds = [], 0.0
    with tempfile.TemporaryDirectory(prefix="bench-budget-") as tmp:
        for seed in seeds:
            t0 = time.perf_counter()
            daily = estate_costs(seed, args.days, args.workspaces, end, Path(tmp))
            sim_seconds += time.perf_counter() - t0
            months = (args.days // 30) + 1
            for kind, day in ORIGINS.items():
                t0 = time.perf_counter()
                bt = backtest_entities(daily, months, use_prophet=not args.no_prophet, as_of_day=day)
                secs = time.perf_counter() - t0
                r = bt.rows.assign(seed=seed, origin_kind=kind,
                                   level=np.where(bt.rows.workspace_id == ACCOUNT, "account", "workspace"))
                frames.append(r)
                s = summarise(r)
                print(f"seed {seed} {kind:17s} {s['months']:3d} months  cover {s['coverage']:.0%}  "
                      f"MAPE {s['mape']:.1f}%  width {s['width']:.0f}%  ({secs:.0f}s)", flush=True)
    rows = pd.concat(frames, ignore_index=True)
    table = []
    for kind in ORIGINS:
        for level in ("workspace", "account", "all"):
            sel = rows[(rows.origin_kind == kind) & ((rows.level == level) | (level == "all"))]
            table.append({"origin": kind, "level": level, **summarise(sel)})
    table = pd.DataFrame(table)
    print()
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if not args.no_write:
        write_section(render(table, rows, args, seeds, sim_seconds))
        print(f"wrote the budget section of {DOC.relative_to(ROOT)}")


def render(table: pd.DataFrame, rows: pd.DataFrame, args: argparse.Namespace, seeds: list[int],
           sim_seconds: float) -> str:
    """The markdown section (between the budget markers)."""
    lines = [
        START,
        "## Budget forecaster: month totals on simulated estates",
        "",
        "Generated by `bench/bench_budget.py` (do not edit by hand). "
        f"{len(seeds)} simulated estates (seeds {', '.join(map(str, seeds))}; {args.days} days to "
        f"{args.end_date}, {args.workspaces} workspaces each, incidents included) through Gold `fact_usage`; the "
        "daily list cost per workspace and account-wide (workspace_id `ACCOUNT`) is read as "
        "`budget_forecast_predictions` reads it. Every complete month with at least 90 days of "
        "history before its origin is forecast by `forecast_totals` (the engine behind the prediction "
        f"table{', Prophet off' if args.no_prophet else ''}). **cover** = share of actual month totals "
        "inside P10-P90 (target ~80%), split into below P10 / above P90; **MAPE** = mean |P50 - actual| "
        "/ actual; **width** = median (P90 - P10) / actual.",
        "",
        "| origin | level | months | cover | below P10 | above P90 | MAPE P50 | width | P10 <= P50 <= P90 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for _, r in table.iterrows():
        lines.append(f"| {r.origin} | {r.level} | {r.months} | {r.coverage:.0%} | {r.below_p10:.0%} | "
                     f"{r.above_p90:.0%} | {r.mape:.1f}% | {r.width:.0f}% | {'always' if r.ordered else 'NO'} |")
    lines += ["", "Per estate (all entities):", "", "| seed | origin | months | cover | MAPE P50 |", "|---|---|---|---|---|"]
    for (seed, kind), g in rows.groupby(["seed", "origin_kind"], sort=False):
        s = summarise(g)
        lines.append(f"| {seed} | {kind} | {s['months']} | {s['coverage']:.0%} | {s['mape']:.1f}% |")
    lines += ["", f"Simulation and Gold build took {sim_seconds:.0f} s in all.", END]
    return "\n".join(lines)


def write_section(section: str) -> None:
    """Replace the budget section of the doc (or append it), keeping everything else."""
    text = DOC.read_text() if DOC.exists() else ""
    if START in text and END in text:
        head, rest = text.split(START, 1)
        tail = rest.split(END, 1)[1]
        text = head + section + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    DOC.write_text(text)


if __name__ == "__main__":
    main()
