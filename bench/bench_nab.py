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

Run: ``nice -n 10 .venv/bin/python bench/bench_nab.py --nab /path/to/NAB [--out result.csv]``.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

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


def detect_scores(frame: pd.DataFrame) -> np.ndarray:
    """The `detect` command's scores for one file (fresh detector, defaults)."""
    return UnivariateDetector().score_learn(frame[["timestamp", "value"]]).score


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nab", required=True, type=Path, help="a checkout of github.com/numenta/NAB")
    ap.add_argument("--z-window", type=int, default=100)
    ap.add_argument("--out", type=Path, help="per-file CSV of both detectors at their best threshold")
    args = ap.parse_args(argv)
    if not (args.nab / "nab" / "sweeper.py").is_file():
        sys.exit(f"{args.nab} is not a NAB checkout (no nab/sweeper.py)")
    sys.path.insert(0, str(args.nab))
    from nab.sweeper import Sweeper  # noqa: PLC0415 - from the NAB checkout given on the command line

    windows = json.loads((args.nab / "labels" / "combined_windows.json").read_text())
    sweeper = Sweeper(probationPercent=0.15, costMatrix=COST_STANDARD)
    detectors = {"detect": detect_scores, "rolling_z": lambda f: rolling_z(f["value"].to_numpy(float),
                                                                            args.z_window)}
    points: dict[str, dict[str, list]] = {d: {} for d in detectors}
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
            scores = np.asarray(fn(frame), dtype=float)
            cpu[d] += time.process_time() - c0
            points[d][rel] = sweeper.calcSweepScore(ts, list(scores), limits, rel)
    n_windows = sum(len(v) for v in windows.values())
    null, perfect = -COST_STANDARD["fnWeight"] * n_windows, COST_STANDARD["tpWeight"] * n_windows
    rows = []
    print(f"NAB: {len(windows)} files, {n_rows} rows, {n_windows} windows; standard profile")
    for d in detectors:
        pooled = [p for lst in points[d].values() for p in lst]
        best = max(sweeper.calcScoreByThreshold(pooled), key=lambda s: s.score)
        norm = 100 * (best.score - null) / (perfect - null)
        print(f"{d:10s} NAB score {norm:5.1f}  threshold {best.threshold:.4f}  tp rows {best.tp}  "
              f"fp rows {best.fp}  cpu {cpu[d]:.1f}s")
        for rel, lst in points[d].items():
            scored = [p for p in lst if p.windowName != "probationary"]
            hit = {p.windowName for p in scored if p.windowName and p.anomalyScore >= best.threshold}
            wins = {p.windowName for p in scored if p.windowName}
            fp = sum(1 for p in scored if p.windowName is None and p.anomalyScore >= best.threshold)
            rows.append({"detector": d, "file": rel, "windows": len(wins), "found": len(hit),
                         "false_positive_rows": fp})
    per = pd.DataFrame(rows)
    print(per.pivot_table(index="file", columns="detector", values=["found", "false_positive_rows"])
          .to_string())
    if args.out:
        per.to_csv(args.out, index=False)
    ru = resource.getrusage(resource.RUSAGE_SELF)
    print(f"process cpu {ru.ru_utime + ru.ru_stime:.0f}s, wall {time.time() - t_wall:.0f}s, "
          f"loadavg {Path('/proc/loadavg').read_text().split()[:3]}")


if __name__ == "__main__":
    main()
