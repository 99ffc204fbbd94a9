"""`detect`'s univariate detector on the Numenta Anomaly Benchmark (NAB), scored NAB's own way.

Why: every other figure of ours comes from data this team generated. NAB (github.com/numenta/NAB,
MIT licence, 58 labelled real and artificial metric series, 116 anomaly windows) is the usual
public benchmark for streaming detectors, with a published scoreboard. This script does not ship
or download NAB: point ``--nab`` at a checkout. Scoring is NAB's ``nab/sweeper.py`` imported from
that checkout (not re-implemented): windows around each labelled anomaly, a scaled-sigmoid reward
for early detection inside a window, a cost per false positive (standard profile: TP 1, FN 1,
FP 0.11), the first 15% of each file probationary, one threshold swept over all files together,
normalised so the null detector is 0 and the perfect one 100 (null = minus the number of windows).

Both detectors run with one configuration for every file (the defaults; nothing per file):
* ``health-monitor detect`` (:class:`UnivariateDetector`, defaults);
* a plain rolling z-score (mean and standard deviation of the previous ``--z-window`` rows),
  score ``|z| / (1 + |z|)``.

Each is scored two ways, one threshold swept over all files together in both:
* ``rows``: every row whose score is at or above the threshold is a detection (``is_anomaly``;
  NAB's own sweep, ``calcScoreByThreshold``, over the scores);
* ``alarm``: only the rows the product raises an alarm on (``detect``'s ``alarm`` column:
  :func:`~health_monitor.detectors.base.episode_alarms`, one alarm per excursion, re-armed after
  ``--rearm`` quiet rows). Which rows alarm depends on the threshold, so NAB's sweep over the
  scores cannot be used as is: the threshold is swept over a grid (steps of 0.001), each row's
  NAB reward (``calcSweepScore``'s ``sweepScore``: early-detection reward inside a window, FP cost
  outside) summed the way ``calcScoreByThreshold`` sums it (first detection per window, every FP
  row), and the best threshold is then re-scored with NAB's ``calcScoreByThreshold`` on the 0/1
  alarms, which must agree.

Split-half check (does one threshold transfer?): the files, sorted by name, go alternately into
halves A and B; the best grid threshold on one half is applied to the other.

Run: ``nice -n 10 .venv/bin/python bench/bench_nab.py --nab /path/to/NAB [--out result.csv]
[--param subseq_weight=0]`` (``--param``: a detector parameter for every file; ``subseq_weight=0``
is detector v3, the forecast residual alone).
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from health_monitor.detectors.base import REARM_ROWS, episode_alarms, recent_peak
from health_monitor.detectors.univariate import UnivariateDetector

COST_STANDARD = {"tpWeight": 1.0, "fnWeight": 1.0, "fpWeight": 0.11}


def rolling_z(values: np.ndarray, window: int) -> np.ndarray:
    """Score of a plain causal rolling z-score: previous ``window`` rows' mean and sd."""
    s = pd.Series(values)
    prev = s.shift(1).rolling(window, min_periods=max(10, window // 10))
    sd = prev.std().to_numpy()
    z = np.abs(values - prev.mean().to_numpy()) / np.where(sd > 0, sd, np.nan)
    z = np.nan_to_num(z, nan=0.0, posinf=1e6)
    return z / (1.0 + z)


def detect_scores(frame: pd.DataFrame, params: dict[str, float] | None = None) -> np.ndarray:
    """The `detect` command's scores for one file (fresh detector, defaults unless ``params``)."""
    return UnivariateDetector(**(params or {})).score_learn(frame[["timestamp", "value"]]).score


def _param(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not sep or not math.isfinite(number):
        raise argparse.ArgumentTypeError(f"expected NAME=NUMBER, got {text!r}")
    return name, int(number) if number.is_integer() and "." not in value else number


def sweep_grid(points: dict[str, list], scores: dict[str, np.ndarray], rearm: int,
               fn_weight: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Raw NAB score of the episode alarms at each threshold of a grid (steps of 0.001, see the
    module docstring; ``rearm=0``: every row at or above the threshold). ``points``: each file's
    ``calcSweepScore`` output; ``scores``: its scores. Returns thresholds, raw scores and the
    number of windows."""
    s_all, peak_all, win_all, reward_all = [], [], [], []
    names: dict[str, int] = {}
    for rel, lst in points.items():
        keep = np.array([p.windowName != "probationary" for p in lst])
        s = scores[rel]
        peak = recent_peak(s, rearm)
        s_all.append(s[keep])
        peak_all.append(peak[keep])
        win_all.append(np.array([-1 if p.windowName is None else names.setdefault(p.windowName, len(names))
                                 for p in lst if p.windowName != "probationary"], dtype=int))
        reward_all.append(np.array([p.sweepScore for p in lst])[keep])
    s, peak, win, reward = (np.concatenate(a) for a in (s_all, peak_all, win_all, reward_all))
    inside = win >= 0
    grid = np.round(np.arange(1.0, 0.0, -0.001), 3)
    raw = np.empty(len(grid))
    for i, t in enumerate(grid):
        alarm = (s >= t) & (peak < t)  # episode_alarms(scores, t, rearm), all files at once
        per_window = np.full(len(names), -fn_weight)
        np.maximum.at(per_window, win[alarm & inside], reward[alarm & inside])
        raw[i] = float(reward[alarm & ~inside].sum() + per_window.sum())
    return grid, raw, len(names)


def alarm_sweep(points: dict[str, list], scores: dict[str, np.ndarray], rearm: int,
                fn_weight: float) -> tuple[float, float]:
    """Best (raw NAB score, threshold) of the episode alarms over the grid of :func:`sweep_grid`."""
    grid, raw, _ = sweep_grid(points, scores, rearm, fn_weight)
    i = int(np.argmax(raw))  # the highest threshold among equals, as a sweep from the top finds it
    return float(raw[i]), float(grid[i])


def split_half(points: dict[str, list], scores: dict[str, np.ndarray], rearm: int,
               fn_weight: float) -> dict[str, float]:
    """Does one threshold transfer? The files, sorted by name, are split alternately into halves A
    and B; the best threshold on one half is applied to the other (normalised NAB scores)."""
    rels = sorted(points)
    halves = {"A": rels[0::2], "B": rels[1::2]}
    res = {}
    for h, part in halves.items():
        grid, raw, n_win = sweep_grid({r: points[r] for r in part}, scores, rearm, fn_weight)
        res[h] = (grid, 100 * (raw + fn_weight * n_win) / (2 * n_win))
    out = {}
    for h, other in (("A", "B"), ("B", "A")):
        best = int(np.argmax(res[h][1]))
        out[f"own {h}"] = float(res[h][1][best])
        out[f"{h}->{other}"] = float(res[other][1][best])  # same grid: index = threshold
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nab", required=True, type=Path, help="a checkout of github.com/numenta/NAB")
    ap.add_argument("--z-window", type=int, default=100)
    ap.add_argument("--rearm", type=int, default=REARM_ROWS, help="quiet rows before a new alarm")
    ap.add_argument("--out", type=Path, help="per-file CSV of both detectors at their best threshold")
    ap.add_argument("--param", type=_param, action="append", default=[], metavar="NAME=NUMBER",
                    help="a UnivariateDetector parameter for every file (e.g. subseq_weight=0: detector v3)")
    args = ap.parse_args(argv)
    params = dict(args.param)
    try:
        UnivariateDetector(**params)
    except (TypeError, ValueError) as exc:
        sys.exit(f"--param: {exc}")
    if not (args.nab / "nab" / "sweeper.py").is_file():
        sys.exit(f"{args.nab} is not a NAB checkout (no nab/sweeper.py)")
    sys.path.insert(0, str(args.nab))
    from nab.sweeper import Sweeper  # noqa: PLC0415 - from the NAB checkout given on the command line

    windows = json.loads((args.nab / "labels" / "combined_windows.json").read_text())
    sweeper = Sweeper(probationPercent=0.15, costMatrix=COST_STANDARD)
    detectors = {"detect": lambda f: detect_scores(f, params),
                 "rolling_z": lambda f: rolling_z(f["value"].to_numpy(float), args.z_window)}
    points: dict[str, dict[str, list]] = {d: {} for d in detectors}
    scores: dict[str, dict[str, np.ndarray]] = {d: {} for d in detectors}
    cpu: dict[str, float] = dict.fromkeys(detectors, 0.0)
    n_rows = 0
    t_wall = time.time()
    for rel in sorted(windows):
        frame = pd.read_csv(args.nab / "data" / rel)
        frame["timestamp"] = pd.to_datetime(frame["timestamp"])
        n_rows += len(frame)
        ts = list(frame["timestamp"])
        limits = [(pd.Timestamp(a), pd.Timestamp(b)) for a, b in windows[rel]]
        for d, fn in detectors.items():
            c0 = time.process_time()
            scores[d][rel] = np.asarray(fn(frame), dtype=float)
            cpu[d] += time.process_time() - c0
            points[d][rel] = sweeper.calcSweepScore(ts, list(scores[d][rel]), limits, rel)
    n_windows = sum(len(v) for v in windows.values())
    null, perfect = -COST_STANDARD["fnWeight"] * n_windows, COST_STANDARD["tpWeight"] * n_windows
    rows = []
    print(f"NAB: {len(windows)} files, {n_rows} rows, {n_windows} windows; standard profile")
    for d in detectors:
        pooled = [p for lst in points[d].values() for p in lst]
        best = max(sweeper.calcScoreByThreshold(pooled), key=lambda s: s.score)
        raw_alarm, t_alarm = alarm_sweep(points[d], scores[d], args.rearm, COST_STANDARD["fnWeight"])
        alarms = {rel: episode_alarms(scores[d][rel], t_alarm, args.rearm) for rel in points[d]}
        # the best alarm threshold re-scored by NAB's own code on the 0/1 alarms
        binary = [p._replace(anomalyScore=float(a)) for rel, lst in points[d].items()
                  for p, a in zip(lst, alarms[rel], strict=True)]
        by_nab = {x.threshold: x for x in sweeper.calcScoreByThreshold(binary)}[1.0]
        if abs(by_nab.score - raw_alarm) > 1e-6:
            sys.exit(f"{d}: the alarm sweep ({raw_alarm:.6f}) disagrees with NAB's score ({by_nab.score:.6f})")
        for mode, res, threshold, flagged in (
                ("rows", best, best.threshold, {rel: scores[d][rel] >= best.threshold for rel in points[d]}),
                ("alarm", by_nab, t_alarm, alarms)):
            norm = 100 * (res.score - null) / (perfect - null)
            halves = split_half(points[d], scores[d], args.rearm if mode == "alarm" else 0,
                                COST_STANDARD["fnWeight"])
            print(f"{d:10s} {mode:5s} NAB score {norm:5.1f}  threshold {threshold:.4f}  detections in "
                  f"windows {res.tp}  fp rows {res.fp}  cpu {cpu[d]:.1f}s  split half: "
                  + "  ".join(f"{k} {v:.1f}" for k, v in halves.items()))
            for rel, lst in points[d].items():
                scored = [(p, f) for p, f in zip(lst, flagged[rel], strict=True) if p.windowName != "probationary"]
                hit = {p.windowName for p, f in scored if p.windowName and f}
                wins = {p.windowName for p, _ in scored if p.windowName}
                fp = sum(1 for p, f in scored if p.windowName is None and f)
                rows.append({"detector": d, "mode": mode, "file": rel, "windows": len(wins), "found": len(hit),
                             "false_positive_rows": fp})
    per = pd.DataFrame(rows)
    print(per.pivot_table(index="file", columns=["detector", "mode"], values=["found", "false_positive_rows"])
          .to_string())
    per["category"] = per["file"].str.split("/").str[0]
    print(per.groupby(["detector", "mode", "category"])[["windows", "found", "false_positive_rows"]].sum()
          .to_string())
    if args.out:
        per.to_csv(args.out, index=False)
    ru = resource.getrusage(resource.RUSAGE_SELF)
    print(f"process cpu {ru.ru_utime + ru.ru_stime:.0f}s, wall {time.time() - t_wall:.0f}s, "
          f"loadavg {Path('/proc/loadavg').read_text().split()[:3]}")


if __name__ == "__main__":
    main()
