"""Forecasting catalog models on the shared engine (:mod:`health_monitor.batch.forecasting`):
the budget forecaster (month totals per workspace from sample paths of daily cost) and the data
quality degradation forecaster (daily quality score per table, EWMA fallback for short series).

Both forecast from the end of their training data; rows after it are scored with the stored
sample paths, so validation and test measure genuine out-of-sample forecasts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from health_monitor.batch.base import BatchModel, regression_metrics


def _paths(history: pd.DataFrame, horizon: int, use_prophet: bool, seed: int, n_paths: int
           ) -> tuple[pd.Timestamp, np.ndarray]:
    """(first forecast day, paths[n_paths, horizon]) from the engine."""
    from health_monitor.batch.forecasting import prepare_history, simulate_paths

    series = prepare_history(history)
    fc = simulate_paths(series, horizon, "US", use_prophet=use_prophet, n_paths=n_paths, seed=seed)
    return pd.Timestamp(fc.dates[0]), fc.paths.astype("float32")


class BudgetForecastModel(BatchModel):
    """End-of-month cost per workspace: month-to-date actuals plus the sum of the engine's sample
    paths over the rest of the month (quantiles of path sums, not sums of daily quantiles)."""

    def row_filter(self, frame: pd.DataFrame) -> pd.DataFrame:
        return frame.dropna(subset=self.label_columns)

    def fit(self, train: pd.DataFrame, valid: pd.DataFrame | None = None) -> BudgetForecastModel:
        horizon = int(self.params.get("horizon", 75))
        self.end_ = pd.Timestamp(train["as_of_date"].max())
        self.paths_: dict[str, tuple[pd.Timestamp, np.ndarray]] = {}
        for ws, g in train.groupby("workspace_id"):
            hist = pd.DataFrame({"ds": pd.to_datetime(g["as_of_date"]), "y": g["daily_cost"].astype(float)})
            if len(hist) < 2:
                continue
            self.paths_[str(ws)] = _paths(hist, horizon, bool(self.params.get("use_prophet", True)), self.seed,
                                          int(self.params.get("n_paths", 500)))
        return self

    def _baseline(self, X: pd.DataFrame) -> np.ndarray:
        mtd = pd.to_numeric(X["mtd_cost"], errors="coerce").fillna(0).to_numpy(dtype=float)
        avg = pd.to_numeric(X["cost_7d_avg"], errors="coerce").fillna(0).to_numpy(dtype=float)
        remaining = (pd.to_numeric(X["days_in_month"]) - pd.to_numeric(X["days_elapsed"])).to_numpy(dtype=float)
        return mtd + avg * remaining

    @staticmethod
    def _relevel(paths: np.ndarray, lo: int, recent_avg: float) -> float:
        """Level correction of a forecast made at the end of training, for an as-of day later on.

        The paths keep their shape (weekdays, month ends, trend), but their level is scaled by
        the actual 7-day mean at the as-of day over the forecast's median for those same days:
        the model is refreshed daily in production, so the latest run rate is known. Clipped to
        [0.5, 2] so that one odd week cannot run away with the month.
        """
        if not np.isfinite(recent_avg) or recent_avg <= 0:
            return 1.0
        start, stop = max(lo - 7, 0), max(lo, 0)
        if stop - start < 3:
            return 1.0  # the as-of day is (almost) the forecast origin: nothing to correct
        expected = float(np.median(paths[:, start:stop], axis=0).mean())
        return float(np.clip(recent_avg / expected, 0.5, 2.0)) if expected > 0 else 1.0

    def baseline_inputs(self) -> list[str] | None:
        return ["mtd_cost", "cost_7d_avg", "days_in_month", "days_elapsed"]

    def predict(self, X: pd.DataFrame) -> pd.DataFrame:
        base = self._baseline(X)
        p10, p50, p90 = base * 0.85, base.copy(), base * 1.15
        if self.naive_:
            return pd.DataFrame({"predicted_monthly_cost": p50, "predicted_monthly_cost_p10": p10,
                                 "predicted_monthly_cost_p90": p90})
        as_of = pd.to_datetime(X["as_of_date"])
        mtd = pd.to_numeric(X["mtd_cost"], errors="coerce").fillna(0).to_numpy(dtype=float)
        recent = pd.to_numeric(X["cost_7d_avg"], errors="coerce").to_numpy(dtype=float)
        for i, (ws, day) in enumerate(zip(X["workspace_id"].astype(str), as_of, strict=True)):
            if ws not in self.paths_ or day < self.end_:
                continue  # inside the training period: no out-of-sample paths; run-rate fallback
            first, paths = self.paths_[ws]
            month_end = day + pd.offsets.MonthEnd(0)
            lo, hi = (day - first).days + 1, (month_end - first).days
            if hi < lo:
                p10[i] = p50[i] = p90[i] = mtd[i]
                continue
            block = paths[:, max(lo, 0):hi + 1]
            missing = (hi - lo + 1) - block.shape[1]
            sums = block.sum(axis=1) + (missing * paths[:, -7:].mean(axis=1) if missing > 0 else 0.0)
            sums = sums * self._relevel(paths, lo, recent[i])
            p10[i], p50[i], p90[i] = mtd[i] + np.quantile(sums, [0.1, 0.5, 0.9])
        return pd.DataFrame({"predicted_monthly_cost": p50, "predicted_monthly_cost_p10": p10,
                             "predicted_monthly_cost_p90": p90})

    def evaluate(self, frame: pd.DataFrame) -> dict[str, float]:
        y = frame[self.label_columns[0]].astype(float).to_numpy()
        pred = self.predict(frame[self.features])
        m = regression_metrics(y, pred["predicted_monthly_cost"].to_numpy())
        m["p10_p90_coverage"] = float(np.mean((y >= pred["predicted_monthly_cost_p10"])
                                              & (y <= pred["predicted_monthly_cost_p90"]))) if len(y) else np.nan
        return m


class QualityForecastModel(BatchModel):
    """Daily quality score per table from the engine's sample paths (statistical ensemble; the
    series are many and short), with an EWMA level for tables with under two weeks of history.
    degradation_probability = share of paths below ``threshold`` that day."""

    def row_filter(self, frame: pd.DataFrame) -> pd.DataFrame:
        return frame.dropna(subset=self.label_columns)

    def fit(self, train: pd.DataFrame, valid: pd.DataFrame | None = None) -> QualityForecastModel:
        horizon = int(self.params.get("horizon", 60))
        cap = int(self.params.get("max_engine_series", 40))
        self.end_ = pd.Timestamp(train["event_date"].max())
        self.paths_: dict[str, tuple[pd.Timestamp, np.ndarray]] = {}
        self.level_: dict[str, float] = {}
        self.last_: dict[str, float] = {}
        self.sd_: dict[str, float] = {}
        groups = sorted(train.groupby("table_id"), key=lambda kv: -len(kv[1]))
        for rank, (tid, g) in enumerate(groups):
            g = g.sort_values("event_date")
            y = g[self.label_columns[0]].astype(float)
            self.level_[str(tid)] = float(y.ewm(halflife=3).mean().iloc[-1])
            self.last_[str(tid)] = float(y.iloc[-1])
            self.sd_[str(tid)] = float(max(y.diff().std(ddof=0) if len(y) > 2 else 0.1, 0.02))
            if len(g) >= 14 and rank < cap:
                hist = pd.DataFrame({"ds": pd.to_datetime(g["event_date"]), "y": y.to_numpy()})
                self.paths_[str(tid)] = _paths(hist, horizon, bool(self.params.get("use_prophet", False)),
                                               self.seed, int(self.params.get("n_paths", 300)))
        self.global_level_ = float(train[self.label_columns[0]].astype(float).mean()) if len(train) else 1.0
        return self

    def predict(self, X: pd.DataFrame) -> pd.DataFrame:
        from scipy.stats import norm

        thr = float(self.params.get("threshold", 0.8))
        pred = np.empty(len(X))
        prob = np.empty(len(X))
        days = pd.to_datetime(X["event_date"])
        recent = pd.to_numeric(X["quality_score_7d_avg"], errors="coerce").to_numpy(dtype=float)
        prev = pd.to_numeric(X["quality_score_prev"], errors="coerce").to_numpy(dtype=float)
        for i, (tid, day) in enumerate(zip(X["table_id"].astype(str), days, strict=True)):
            if self.naive_:
                # Last value at the forecast origin (the end of training): what the engine saw too.
                level = self.last_.get(tid, prev[i] if np.isfinite(prev[i]) else self.global_level_)
                pred[i], prob[i] = level, float(norm.cdf((thr - level) / self.sd_.get(tid, 0.1)))
                continue
            if tid in self.paths_ and day > self.end_:
                first, paths = self.paths_[tid]
                j = min(max((day - first).days, 0), paths.shape[1] - 1)
                col = np.clip(paths[:, j], 0.0, 1.0)
                pred[i], prob[i] = float(np.median(col)), float(np.mean(col < thr))
                continue
            level = self.level_.get(tid, recent[i] if np.isfinite(recent[i]) else self.global_level_)
            sd = self.sd_.get(tid, 0.1)
            pred[i], prob[i] = level, float(norm.cdf((thr - level) / sd))
        return pd.DataFrame({"predicted_quality_score": np.clip(pred, 0, 1), "degradation_probability": prob})

    def evaluate(self, frame: pd.DataFrame) -> dict[str, float]:
        y = frame[self.label_columns[0]].astype(float).to_numpy()
        return regression_metrics(y, self.predict(frame[self.features])["predicted_quality_score"].to_numpy())

    def baseline_inputs(self) -> list[str] | None:
        return ["table_id", "quality_score_prev"]
