"""Detection quality of the univariate stack against labels it never saw, versus a rolling z-score.

Why this benchmark: ``health-monitor detect`` will be judged on real labeled series from outside
this project, so it is measured on a varied set of labeled series made by several independent
generators (spikes and dips, level shifts, trend changes, variance changes, seasonal pattern
changes, flat lines with blips, random walks, counts with bursts, non-calendar cycles, gaps and
NaNs) at 1 min, 5 min, 1 h and 1 day intervals, plus planted anomalies on *real* unlabeled
backgrounds that river ships (water flow, airline passengers, S&P 500 returns, approval polls).
Thresholds are chosen on the tune seeds and reported on the test seeds; the default threshold is
reported too. Metrics (micro-averaged over series):

* event F1: a labeled window counts as found if an alarm falls inside it or within ``TOL`` rows
  after it; an alarm event (a run of flagged rows) is a false positive if it touches no window;
* point-adjusted F1 (PA-F1, the common but generous convention: one hit marks the whole window);
* ROC AUC of the raw scores per series (mean over series);
* false alarm events per 1,000 normal rows.

Run: ``.venv/bin/python bench/bench_detect_quality.py [--quick]``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from health_monitor.detectors.univariate import UnivariateDetector

TOL = 3  # rows after a window in which an alarm still counts as a detection
FREQS = {"1min": 5000, "5min": 4032, "1h": 1440, "1D": 730}
STEP_S = {"1min": 60, "5min": 300, "1h": 3600, "1D": 86400}


@dataclass
class Series:
    name: str
    family: str
    freq: str
    ts: pd.DatetimeIndex
    values: np.ndarray
    labels: np.ndarray  # bool per row


# ----------------------------------------------------------------------------- generators
def _noise(rng: np.random.Generator, n: int, sd: float) -> np.ndarray:
    kind = rng.integers(3)
    if kind == 0:
        return rng.normal(0, sd, n)
    if kind == 1:
        return sd * rng.standard_t(4, n) / np.sqrt(2)
    return rng.laplace(0, sd / np.sqrt(2), n)


def _background(rng: np.random.Generator, freq: str) -> tuple[pd.DatetimeIndex, np.ndarray, float]:
    """Level + optional trend + calendar seasonality + noise; returns (ts, values, noise scale).

    The returned scale is the larger of the noise sd and 1/5 of its largest absolute value, so a
    planted anomaly of k >= 5 "sd" is larger than every natural noise excursion even with heavy
    tails: the labels stay unambiguous."""
    n = FREQS[freq]
    ts = pd.date_range(pd.Timestamp("2025-01-01") + pd.Timedelta(int(rng.integers(0, 300)), "D"),
                       periods=n, freq=freq)
    sec = ts.asi8 / 1e9
    level = float(rng.uniform(10, 1000))
    sd = level * float(rng.uniform(0.01, 0.08))
    x = np.full(n, level)
    if rng.random() < 0.4:
        x += np.linspace(0, level * rng.uniform(-0.3, 0.5), n)
    if STEP_S[freq] < 86400 and rng.random() < 0.75:
        amp = sd * rng.uniform(2, 10)
        x += amp * np.sin(2 * np.pi * (sec % 86400) / 86400 + rng.uniform(0, 6.3))
    if STEP_S[freq] >= 3600 and rng.random() < 0.6:
        dow = ((sec // 86400) + 3) % 7
        x += np.where(dow >= 5, -sd * rng.uniform(2, 6), 0.0)
    e = _noise(rng, n, sd)
    if rng.random() < 0.3:  # multiplicative flavour: noise grows with the level
        e = e * (x / level)
    return ts, x + e, max(sd, float(np.abs(e).max()) / 5)


def _positions(rng: np.random.Generator, n: int, k: int, width: int) -> list[int]:
    """k anomaly starts after a warm-up of 15% and at least 3 widths apart."""
    lo, out = int(0.15 * n), []
    for _ in range(200):
        p = int(rng.integers(lo, n - width - 5))
        if all(abs(p - q) > 3 * max(width, 20) for q in out):
            out.append(p)
        if len(out) == k:
            break
    return sorted(out)


def gen_spikes(rng: np.random.Generator, freq: str) -> Series:
    ts, x, sd = _background(rng, freq)
    lab = np.zeros(len(x), bool)
    for p in _positions(rng, len(x), int(rng.integers(1, 5)), 1):
        x[p] += rng.choice([-1, 1]) * sd * rng.uniform(5, 12)
        lab[p] = True
    return Series("", "spikes/dips", freq, ts, x, lab)


def gen_level_shift(rng: np.random.Generator, freq: str) -> Series:
    ts, x, sd = _background(rng, freq)
    lab = np.zeros(len(x), bool)
    for p in _positions(rng, len(x), int(rng.integers(1, 3)), 10):
        x[p:] += rng.choice([-1, 1]) * sd * rng.uniform(4, 10)
        lab[p:p + 10] = True
    return Series("", "level shift", freq, ts, x, lab)


def gen_trend_change(rng: np.random.Generator, freq: str) -> Series:
    ts, x, sd = _background(rng, freq)
    lab = np.zeros(len(x), bool)
    p = _positions(rng, len(x), 1, 60)[0]
    w = 60
    slope = rng.choice([-1, 1]) * sd * rng.uniform(8, 15) / w  # drifts 8-15 sd away within w rows
    ramp = np.clip(np.arange(len(x)) - p, 0, w) * slope
    x += ramp
    lab[p + w // 4:p + w] = True  # a slow drift is detectable only once it has drifted
    return Series("", "trend change", freq, ts, x, lab)


def gen_variance_change(rng: np.random.Generator, freq: str) -> Series:
    ts, x, sd = _background(rng, freq)
    lab = np.zeros(len(x), bool)
    p = _positions(rng, len(x), 1, 80)[0]
    w = int(rng.integers(40, 80))
    x[p:p + w] += rng.normal(0, sd * rng.uniform(5, 8), w)
    lab[p:p + w] = True
    return Series("", "variance change", freq, ts, x, lab)


def gen_seasonal_change(rng: np.random.Generator, freq: str) -> Series:
    """A daily (or weekly for daily data) pattern that breaks for one cycle."""
    n = FREQS[freq]
    ts = pd.date_range("2025-03-03", periods=n, freq=freq)
    sec = ts.asi8 / 1e9
    level = float(rng.uniform(50, 500))
    sd = level * 0.01
    period = 7 * 86400 if freq == "1D" else 86400
    amp = sd * rng.uniform(8, 15)
    x = level + amp * np.sin(2 * np.pi * (sec % period) / period) + _noise(rng, n, sd)
    per_steps = period // STEP_S[freq]
    p = _positions(rng, n, 1, per_steps)[0]
    w = int(per_steps)
    # the cycle is inverted for one period: values stay in the usual range, but at the wrong time
    x[p:p + w] = level - amp * np.sin(2 * np.pi * (sec[p:p + w] % period) / period) + _noise(rng, w, sd)
    lab = np.zeros(n, bool)
    lab[p:p + w] = True
    return Series("", "seasonal change", freq, ts, x, lab)


def gen_flat_blips(rng: np.random.Generator, freq: str) -> Series:
    n = FREQS[freq]
    ts = pd.date_range("2025-05-01", periods=n, freq=freq)
    level = float(rng.choice([0.0, 1.0, 100.0, 2500.0]))
    x = np.full(n, level)
    if rng.random() < 0.5:  # float noise on the flat line
        x += rng.normal(0, 1e-9 * max(level, 1), n)
    lab = np.zeros(n, bool)
    for p in _positions(rng, n, int(rng.integers(1, 4)), 1):
        x[p] += max(abs(level), 1) * rng.uniform(0.01, 0.5) * rng.choice([-1, 1])
        lab[p] = True
    return Series("", "flat + blips", freq, ts, x, lab)


def gen_random_walk(rng: np.random.Generator, freq: str) -> Series:
    n = FREQS[freq]
    ts = pd.date_range("2025-06-01", periods=n, freq=freq)
    sd = float(rng.uniform(0.5, 3))
    x = 100 + np.cumsum(rng.normal(0, sd, n))
    lab = np.zeros(n, bool)
    for p in _positions(rng, n, int(rng.integers(1, 4)), 1):
        x[p] += rng.choice([-1, 1]) * sd * rng.uniform(6, 12)
        lab[p] = True
    return Series("", "random walk + spikes", freq, ts, x, lab)


def gen_counts(rng: np.random.Generator, freq: str) -> Series:
    n = FREQS[freq]
    ts = pd.date_range("2025-07-01", periods=n, freq=freq)
    lam = float(rng.uniform(2, 40))
    x = rng.poisson(lam, n).astype(float)
    lab = np.zeros(n, bool)
    for p in _positions(rng, n, int(rng.integers(1, 3)), 5):
        w = int(rng.integers(1, 6))
        x[p:p + w] += rng.poisson(lam * rng.uniform(2, 4) + 8 * np.sqrt(lam), w)
        lab[p:p + w] = True
    return Series("", "counts + bursts", freq, ts, x, lab)


def gen_cycle(rng: np.random.Generator, freq: str) -> Series:
    """A non-calendar cycle (machine-like) whose shape breaks once."""
    n = FREQS[freq]
    ts = pd.date_range("2025-08-01", periods=n, freq=freq)
    per = int(rng.integers(20, 60))
    i = np.arange(n)
    shape = (i % per) / per if rng.random() < 0.5 else np.sin(2 * np.pi * i / per)
    sd = 0.05
    x = 10 + 3 * shape + rng.normal(0, sd, n)
    p = _positions(rng, n, 1, per)[0]
    x[p:p + per] = 10 + 1.5 + rng.normal(0, sd, per)  # the cycle stalls at its mean
    lab = np.zeros(n, bool)
    lab[p:p + per] = True
    return Series("", "non-calendar cycle", freq, ts, x, lab)


def with_gaps(rng: np.random.Generator, s: Series) -> Series:
    """Drop chunks of timestamps and blank some values (labels stay with their rows)."""
    n = len(s.values)
    keep = np.ones(n, bool)
    for _ in range(int(rng.integers(1, 4))):
        p = int(rng.integers(int(0.1 * n), n - 50))
        keep[p:p + int(rng.integers(5, 40))] = False
    keep |= s.labels  # keep the anomalies themselves
    v = s.values.copy()
    nan_at = rng.random(n) < 0.01
    v[nan_at & ~s.labels] = np.nan
    return Series(s.name, s.family + " (gaps)", s.freq, s.ts[keep], v[keep], s.labels[keep])


GENERATORS: list[Callable[[np.random.Generator, str], Series]] = [
    gen_spikes, gen_level_shift, gen_trend_change, gen_variance_change, gen_seasonal_change,
    gen_flat_blips, gen_random_walk, gen_counts, gen_cycle,
]


def _family(s: Series) -> str:
    return s.family.replace(" (gaps)", "").replace(" (index time)", "")


def synthetic_suite(seeds: range) -> list[Series]:
    out = []
    for seed in seeds:
        for gi, gen in enumerate(GENERATORS):
            for fi, freq in enumerate(FREQS):
                rng = np.random.default_rng([seed, gi, fi])
                s = gen(rng, freq)
                if rng.random() < 0.3:
                    s = with_gaps(rng, s)
                if rng.random() < 0.2:  # as in public benchmarks: time written as a row number
                    s.ts = pd.DatetimeIndex(pd.to_datetime(np.arange(1, len(s.values) + 1), unit="s"))
                    s.family += " (index time)"
                s.name = f"{gen.__name__[4:]}-{freq}-s{seed}"
                out.append(s)
    return out


def real_background_suite(seed: int) -> list[Series]:
    """Planted anomalies on real series shipped inside the river package (no download)."""
    import river.datasets as rd

    root = Path(rd.__file__).parent
    raw: list[tuple[str, pd.Series]] = []
    wf = pd.read_csv(root / "water-flow.csv")
    raw.append(("water-flow-1h", pd.Series(wf.iloc[:, 1].to_numpy(),
                                            index=pd.to_datetime(wf.iloc[:, 0], utc=True).dt.tz_localize(None))))
    ap = pd.read_csv(root / "airline-passengers.csv")
    raw.append(("airline-monthly", pd.Series(ap.iloc[:, 1].to_numpy(float), index=pd.to_datetime(ap.iloc[:, 0]))))
    sp = pd.read_csv(root / "sp500.csv.gz")
    for c in ("AAPL", "XOM"):
        raw.append((f"sp500-{c}-returns", pd.Series(sp[c].to_numpy(float), index=pd.to_datetime(sp["date"]))))
    tr = pd.read_csv(root / "trump_approval.csv.gz")
    raw.append(("approval-538", pd.Series(tr["five_thirty_eight"].to_numpy(float),
                                           index=pd.to_datetime(tr["ordinal_date"].map(pd.Timestamp.fromordinal)))))
    out = []
    for k, (name, s) in enumerate(raw):
        rng = np.random.default_rng([seed, 99, k])
        s = s[~s.index.duplicated()].sort_index()
        x = s.to_numpy(float).copy()
        d = np.diff(x)
        # robust noise scale from the differences; quantised series have a MAD of 0, so floor it
        sd = max(1.4826 * np.median(np.abs(d - np.median(d))) / np.sqrt(2), 0.25 * np.std(d), 1e-9)
        lab = np.zeros(len(x), bool)
        for j, p in enumerate(_positions(rng, len(x), 3 if len(x) > 400 else 1, 5)):
            if j % 2 == 0:
                x[p] += rng.choice([-1, 1]) * sd * rng.uniform(8, 15)
                lab[p] = True
            else:
                x[p:] += rng.choice([-1, 1]) * sd * rng.uniform(8, 15)
                lab[p:p + 5] = True
        out.append(Series(f"{name}-s{seed}", "real background", "mixed", pd.DatetimeIndex(s.index), x, lab))
    return out


# ----------------------------------------------------------------------------- detectors
def score_ours(s: Series, **params: float) -> np.ndarray:
    det = UnivariateDetector(**params)
    return det.score_learn(pd.DataFrame({"timestamp": s.ts, "value": s.values})).score


def score_rolling_z(s: Series, window: int = 100) -> np.ndarray:
    """The textbook baseline: |x - mean| / std of the previous ``window`` rows (causal)."""
    v = pd.Series(s.values)
    prev = v.shift(1).rolling(window, min_periods=10)
    z = ((v - prev.mean()) / prev.std()).abs()
    return z.replace([np.inf, -np.inf], np.nan).fillna(0).to_numpy()


# ----------------------------------------------------------------------------- metrics
def _windows(lab: np.ndarray) -> list[tuple[int, int]]:
    d = np.diff(np.r_[0, lab.astype(int), 0])
    return list(zip(np.nonzero(d == 1)[0], np.nonzero(d == -1)[0], strict=True))


def counts(lab: np.ndarray, flag: np.ndarray) -> dict[str, float]:
    """Event and point-adjusted counts for one series at one threshold."""
    n = len(lab)
    wins = _windows(lab)
    near = np.zeros(n, bool)
    for a, b in wins:
        near[a:min(n, b + TOL)] = True
    hit = sum(bool(flag[a:min(n, b + TOL)].any()) for a, b in wins)
    events = _windows(flag)
    fp_events = sum(not near[a:b].any() for a, b in events)
    pa = flag.copy()
    for a, b in wins:
        if flag[a:min(n, b + TOL)].any():
            pa[a:b] = True
    pa[near & ~lab] = False  # alarms in the tolerance tail are neither TP nor FP points
    return {"windows": len(wins), "hit": hit, "events": len(events), "fp_events": fp_events,
            "tp_pts": int((pa & lab).sum()), "fp_pts": int((pa & ~lab).sum()),
            "fn_pts": int((~pa & lab).sum()), "normal_pts": int((~near).sum())}


def summarise(rows: list[dict[str, float]]) -> dict[str, float]:
    t = {k: sum(r[k] for r in rows) for k in rows[0]}
    rec = t["hit"] / max(t["windows"], 1)
    prec = (t["events"] - t["fp_events"]) / t["events"] if t["events"] else 0.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    pp = t["tp_pts"] / max(t["tp_pts"] + t["fp_pts"], 1)
    pr = t["tp_pts"] / max(t["tp_pts"] + t["fn_pts"], 1)
    pa_f1 = 2 * pp * pr / (pp + pr) if pp + pr else 0.0
    return {"P": prec, "R": rec, "F1": f1, "PA-F1": pa_f1, "FA/1k": 1000 * t["fp_events"] / max(t["normal_pts"], 1)}


def evaluate(series: list[Series], scores: list[np.ndarray], threshold: float) -> dict[str, float]:
    res = summarise([counts(s.labels, sc >= threshold) for s, sc in zip(series, scores, strict=True)])
    aucs = [roc_auc_score(s.labels, sc) for s, sc in zip(series, scores, strict=True) if 0 < s.labels.sum() < len(s.labels)]
    res["AUC"] = float(np.mean(aucs))
    return res


def best_threshold(series: list[Series], scores: list[np.ndarray], grid: np.ndarray) -> float:
    return float(max(grid, key=lambda t: evaluate(series, scores, t)["F1"]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer seeds")
    args = ap.parse_args()
    tune = synthetic_suite(range(0, 2 if args.quick else 3))
    test = synthetic_suite(range(100, 102 if args.quick else 106))
    real = [s for seed in range(3 if args.quick else 8) for s in real_background_suite(seed)]
    print(f"tune: {len(tune)} series, test: {len(test)} synthetic + {len(real)} real-background series, "
          f"{sum(len(s.values) for s in test + real):,} test rows")

    ours_grid = np.round(np.arange(0.3, 0.991, 0.02), 2)
    z_grid = np.round(np.arange(2.0, 12.01, 0.25), 2)
    t0 = time.process_time()
    ours = {id(s): score_ours(s) for s in tune + test + real}
    t_ours = time.process_time() - t0
    t0 = time.process_time()
    base = {id(s): score_rolling_z(s) for s in tune + test + real}
    t_base = time.process_time() - t0
    n_rows = sum(len(s.values) for s in tune + test + real)

    def sc(d: dict[int, np.ndarray], ss: list[Series]) -> list[np.ndarray]:
        return [d[id(s)] for s in ss]

    t_ours_best = best_threshold(tune, sc(ours, tune), ours_grid)
    t_base_best = best_threshold(tune, sc(base, tune), z_grid)
    default_t = UnivariateDetector().threshold
    rows = [
        ("ours, default threshold", default_t, ours),
        ("ours, threshold tuned on tune seeds", t_ours_best, ours),
        ("rolling z (w=100), |z|>=3", 3.0, base),
        ("rolling z (w=100), tuned on tune seeds", t_base_best, base),
    ]
    for title, ss in (("TEST synthetic", test), ("TEST real backgrounds, planted anomalies", real),
                      ("TUNE synthetic (for reference)", tune)):
        print(f"\n{title}")
        print(f"{'method':<42} {'thr':>5} {'P':>5} {'R':>5} {'F1':>5} {'PA-F1':>6} {'AUC':>5} {'FA/1k':>6}")
        for name, thr, d in rows:
            r = evaluate(ss, sc(d, ss), thr)
            print(f"{name:<42} {thr:>5.2f} {r['P']:>5.2f} {r['R']:>5.2f} {r['F1']:>5.2f} {r['PA-F1']:>6.2f} "
                  f"{r['AUC']:>5.2f} {r['FA/1k']:>6.2f}")

    print("\nTEST synthetic by family: event F1 (ours default | ours tuned | rolling z tuned), AUC ours | z")
    fams = sorted({_family(s) for s in test})
    for fam in fams:
        ss = [s for s in test if _family(s) == fam]
        a = evaluate(ss, sc(ours, ss), default_t)
        b = evaluate(ss, sc(ours, ss), t_ours_best)
        c = evaluate(ss, sc(base, ss), t_base_best)
        print(f"  {fam:<22} {a['F1']:.2f} | {b['F1']:.2f} | {c['F1']:.2f}    AUC {a['AUC']:.2f} | {c['AUC']:.2f}")
    print("\nTEST synthetic by interval: event F1 ours default | rolling z tuned")
    for freq in FREQS:
        ss = [s for s in test if s.freq == freq]
        a = evaluate(ss, sc(ours, ss), default_t)
        c = evaluate(ss, sc(base, ss), t_base_best)
        print(f"  {freq:<6} {a['F1']:.2f} | {c['F1']:.2f}")
    print(f"\nspeed: ours {n_rows / t_ours:,.0f} rows/s, rolling z {n_rows / t_base:,.0f} rows/s "
          f"(CPU time, {n_rows:,} rows, one core)")


if __name__ == "__main__":
    main()
