"""``health-monitor detect``: score any univariate series from a CSV with the cost stream's detector."""

from __future__ import annotations

import argparse
import math

from health_monitor import progress
from health_monitor.detectors.base import REARM_ROWS
from health_monitor.detectors.series_io import ALARM_COL, FLAG_COL, SCORE_COL, score_csv, write_scores
from health_monitor.detectors.univariate import UnivariateDetector


def register(sub: argparse._SubParsersAction) -> None:
    default_t = UnivariateDetector().threshold
    p = sub.add_parser(
        "detect", help="score a time series from a CSV for anomalies (no Spark needed)",
        description="Score any univariate series strictly causally (row i's score uses rows up to i "
        "only) with the online detector the cost stream uses. Writes every input row, sorted by "
        "time, with anomaly_score (0..1), is_anomaly (score at or above the threshold) and alarm "
        "(the first row of each excursion: one alarm per incident).")
    p.add_argument("input", metavar="INPUT.csv", help="CSV with a time column and a numeric column")
    p.add_argument("--timestamp-col", help="time column (default: the first column of timestamps)")
    p.add_argument("--value-col", help="value column (default: a column named value, else the first numeric one)")
    p.add_argument("--threshold", type=float, default=None,
                   help=f"score at or above which a row is an anomaly (default {default_t})")
    p.add_argument("--rearm", type=int, default=REARM_ROWS, metavar="ROWS",
                   help="rows the score must stay below the threshold before a new alarm "
                   f"(default {REARM_ROWS}; 0: every anomalous row alarms)")
    p.add_argument("--encoding", help="text encoding of the CSV (default: UTF-8, else Windows-1252 with a note)")
    p.add_argument("--output", "-o", required=True, metavar="SCORES.csv", help="where to write the scores")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, ctx) -> int:  # noqa: ANN001 - Context; no Spark is touched
    with progress.step(f"scoring {args.input}"):
        scored = score_csv(args.input, args.timestamp_col, args.value_col, args.threshold,
                           encoding=args.encoding, rearm=args.rearm)
    out = write_scores(scored, args.output)
    for note in scored.notes:
        print(f"note: {note}")
    frame = scored.frame
    n_anom = int(frame[FLAG_COL].sum())
    n_alarm = int(frame[ALARM_COL].sum())
    print(f"{len(frame):,} rows scored (time: {scored.timestamp_col!r}, value: {scored.value_col!r}); "
          f"{n_anom:,} anomalous rows ({n_anom / len(frame):.2%}) in {n_alarm:,} alarm(s); written to {out}")
    top = frame[SCORE_COL].to_numpy().argsort(kind="stable")[::-1][:5]
    top = [i for i in top if frame[SCORE_COL].iloc[i] > 0]
    if top:
        print("top scores:")
        for i in top:
            value = scored.values.iloc[i]
            value_s = f"{value:.6g}" if not math.isnan(value) else "NaN"
            why = "; ".join(scored.evidence[i][:2])
            flag = "ANOMALY" if frame[FLAG_COL].iloc[i] else "       "
            print(f"  {flag} {scored.times.iloc[i]}  value {value_s:>12}  score {frame[SCORE_COL].iloc[i]:.3f}"
                  + (f"  {why}" if why else ""))
    return 0
