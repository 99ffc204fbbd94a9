"""Allocation and sizing models: chargeback (K-Means + Shapley values of a peak-capacity game),
warehouse sizing (a queue-time model searched over sizes under a queueing constraint) and
cluster capacity (a peak-demand model and the smallest worker count under a utilization cap)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd

from health_monitor.batch.base import BatchModel, regression_metrics

WAREHOUSE_SIZES = {1: "2X_SMALL", 2: "X_SMALL", 3: "SMALL", 4: "MEDIUM", 5: "LARGE", 6: "X_LARGE",
                   7: "2X_LARGE", 8: "3X_LARGE", 9: "4X_LARGE"}


def shapley_peak(weekly: pd.DataFrame, seed: int = 0, max_exact: int = 8, samples: int = 400) -> dict[str, float]:
    """Shapley values of the peak-capacity game: v(S) = max over weeks of S's summed cost.

    Shared capacity is sized for the peak, so a team that is busy when others are busy owes more
    than its average share. ``weekly`` is weeks x teams. Exact for up to ``max_exact`` teams,
    Monte Carlo over permutations beyond.
    """
    teams = list(weekly.columns)
    m = weekly.to_numpy(dtype=float)

    def v(idx: tuple[int, ...]) -> float:
        return float(m[:, list(idx)].sum(axis=1).max()) if idx else 0.0

    phi = dict.fromkeys(teams, 0.0)
    n = len(teams)
    if n <= max_exact:
        for i, t in enumerate(teams):
            others = [j for j in range(n) if j != i]
            for k in range(n):
                weight = math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n)
                for sub in itertools.combinations(others, k):
                    phi[t] += weight * (v((*sub, i)) - v(sub))
        return phi
    rng = np.random.default_rng(seed)
    for _ in range(samples):
        order = rng.permutation(n)
        acc: tuple[int, ...] = ()
        for i in order:
            nxt = (*acc, int(i))
            phi[teams[i]] += (v(nxt) - v(acc)) / samples
            acc = nxt
    return phi


class ChargebackModel(BatchModel):
    """K-Means groups cost entities by usage profile; within each (workspace, group) pool, team
    weights are the Shapley values of the pool's weekly peak-capacity game over tagged cost.
    Untagged entities get their pool's weights (falling back to the group's, then the workspace's)."""

    def _numeric(self) -> list[str]:
        return [c for c in self.features if c != "workspace_id"]

    def fit(self, train: pd.DataFrame, valid: pd.DataFrame | None = None) -> ChargebackModel:
        from sklearn.cluster import KMeans

        X = self.matrix(train, self._numeric())
        self.med_ = np.nan_to_num(np.nanmedian(X, axis=0)) if len(X) else np.zeros(X.shape[1])
        X = np.where(np.isnan(X), self.med_, X)
        self.mu_, self.sd_ = X.mean(axis=0), X.std(axis=0) + 1e-9
        k = max(1, min(int(self.params.get("n_clusters", 6)), len(X)))
        self.kmeans_ = KMeans(n_clusters=k, n_init=10, random_state=self.seed).fit((X - self.mu_) / self.sd_)
        t = train.assign(_cluster=self.kmeans_.labels_)
        tagged = t[t["tag_team"].notna()]
        self.pools_: dict[tuple, dict[str, float]] = {}
        for key, g in itertools.chain(tagged.groupby(["workspace_id", "_cluster"]),
                                      ((("*", c), g) for c, g in tagged.groupby("_cluster")),
                                      (((w, "*"), g) for w, g in tagged.groupby("workspace_id"))):
            weekly = g.pivot_table(index="week_start", columns="tag_team", values="cost", aggfunc="sum").fillna(0)
            phi = shapley_peak(weekly.clip(lower=0), seed=self.seed)
            total = sum(max(x, 0.0) for x in phi.values())
            if total > 0:
                self.pools_[tuple(key)] = {team: max(x, 0.0) / total for team, x in phi.items()}
        share = tagged.groupby(["workspace_id", "tag_team"])["cost"].sum()
        self.ws_share_ = {w: (s / s.sum()).to_dict() for w, s in share.groupby(level=0)
                          if s.sum() > 0 for s in [s.droplevel(0)]}
        glob = tagged.groupby("tag_team")["cost"].sum()
        self.global_share_ = (glob / glob.sum()).to_dict() if glob.sum() > 0 else {}
        return self

    def baseline_inputs(self) -> list[str] | None:
        return ["workspace_id"]

    def weights(self, X: pd.DataFrame) -> tuple[np.ndarray, list[dict[str, float]]]:
        """(cluster per row, team weights per row); the naive twin: the workspace's tagged shares."""
        M = self.matrix(X, self._numeric())
        M = np.where(np.isnan(M), self.med_, M)
        cluster = self.kmeans_.predict((M - self.mu_) / self.sd_)
        if self.naive_:
            return cluster, [self.ws_share_.get(ws, self.global_share_) for ws in X["workspace_id"].astype(str)]
        out = []
        for ws, c in zip(X["workspace_id"].astype(str), cluster, strict=True):
            out.append(self.pools_.get((ws, c)) or self.pools_.get(("*", c)) or self.ws_share_.get(ws)
                       or self.global_share_)
        return cluster, out

    def predict(self, X: pd.DataFrame) -> pd.DataFrame:
        cluster, w = self.weights(X)
        top = [max(d.items(), key=lambda kv: kv[1]) if d else ("", 0.0) for d in w]
        return pd.DataFrame({"cost_cluster": cluster.astype(int), "allocated_team": [t for t, _ in top],
                             "allocation_weight": [x for _, x in top],
                             "attribution_confidence": [x * (1 - 1 / max(len(d), 1)) if d else 0.0
                                                        for (_, x), d in zip(top, w, strict=True)]})

    @staticmethod
    def _accuracy(frame: pd.DataFrame, weights: list[dict[str, float]]) -> dict[str, float]:
        cost = frame["cost"].astype(float).clip(lower=0).to_numpy()
        got = np.array([d.get(t, 0.0) if d else 0.0 for d, t in zip(weights, frame["tag_team"], strict=True)])
        return {"allocation_accuracy": float((cost * got).sum() / max(cost.sum(), 1e-9)), "n": float(len(frame))}

    def evaluate(self, frame: pd.DataFrame) -> dict[str, float]:
        # Score on tagged usage with the tags hidden: how much cost lands on its true team.
        tagged = frame[frame["tag_team"].notna()]
        if tagged.empty:
            return {}
        return self._accuracy(tagged, self.weights(tagged)[1])


class _SizingRegressor(BatchModel):
    """Shared: XGBoost on log1p(label) with optional monotone constraints."""

    monotone: dict[str, int] = {}

    def row_filter(self, frame: pd.DataFrame) -> pd.DataFrame:
        return frame.dropna(subset=self.label_columns)

    def _y(self, frame: pd.DataFrame) -> np.ndarray:
        return pd.to_numeric(frame[self.label_columns[0]], errors="coerce").to_numpy(dtype=float)

    def fit(self, train: pd.DataFrame, valid: pd.DataFrame | None = None) -> _SizingRegressor:
        from xgboost import XGBRegressor

        cons = "(" + ",".join(str(self.monotone.get(c, 0)) for c in self.features) + ")"
        self.model_ = XGBRegressor(n_estimators=int(self.params.get("n_estimators", 200)),
                                   max_depth=int(self.params.get("max_depth", 5)), learning_rate=0.08,
                                   subsample=0.9, tree_method="hist", random_state=self.seed, n_jobs=2,
                                   monotone_constraints=cons)
        self.model_.fit(self.matrix(train), np.log1p(np.clip(self._y(train), 0, None)))
        return self

    def _raw(self, X: pd.DataFrame) -> np.ndarray:
        if self.naive_:
            return self._naive_raw(X)
        return np.expm1(self.model_.predict(self.matrix(X)).astype(float)).clip(min=0)

    def _naive_raw(self, X: pd.DataFrame) -> np.ndarray:
        raise NotImplementedError

    def _importances(self) -> dict[str, float] | None:
        return dict(zip(self.features, map(float, self.model_.feature_importances_), strict=True))


class WarehouseOptimizerModel(_SizingRegressor):
    """Queue-time model (p95 queue seconds per warehouse-hour; monotone: more load queues more,
    a bigger size queues less), then the smallest size whose predicted p95 queue for the hour's
    load stays under ``queue_target_s``. Each size step doubles DBUs, hence the cost impact."""

    monotone = {"query_count": 1, "concurrent_query_avg": 1, "warehouse_size_rank": -1, "max_clusters": -1}

    def fit(self, train: pd.DataFrame, valid: pd.DataFrame | None = None) -> WarehouseOptimizerModel:
        super().fit(train, valid)
        y = self._y(train)
        self.by_wh_ = train.assign(_y=y).groupby("warehouse_id")["_y"].mean().to_dict() if "warehouse_id" in train \
            else {}
        self.mean_ = float(np.nanmean(y)) if len(y) else 0.0
        return self

    def baseline_inputs(self) -> list[str] | None:
        return ["warehouse_id"]

    def _naive_raw(self, X: pd.DataFrame) -> np.ndarray:
        return X["warehouse_id"].map(self.by_wh_).astype(float).fillna(self.mean_).to_numpy()

    def predict(self, X: pd.DataFrame) -> pd.DataFrame:
        target = float(self.params.get("queue_target_s", 10.0))
        current = pd.to_numeric(X["warehouse_size_rank"], errors="coerce").fillna(3).to_numpy(dtype=float)
        if self.naive_:
            # The baseline knows no effect of size: keep the current one, expect the usual queue.
            return pd.DataFrame({"recommended_size": [WAREHOUSE_SIZES.get(int(r), "SMALL") for r in current],
                                 "recommended_size_rank": current.astype(int), "predicted_queue_p95_s": self._raw(X),
                                 "cost_impact_pct": np.zeros(len(X))})
        best = np.full(len(X), 9.0)
        best_q = np.full(len(X), np.nan)
        for rank in range(9, 0, -1):  # descending: the last feasible one is the smallest
            q = self._raw(X.assign(warehouse_size_rank=float(rank)))
            ok = q <= target
            best = np.where(ok, rank, best)
            best_q = np.where(ok, q, best_q)
        best_q = np.where(np.isnan(best_q), self._raw(X.assign(warehouse_size_rank=9.0)), best_q)
        return pd.DataFrame({"recommended_size": [WAREHOUSE_SIZES[int(r)] for r in best],
                             "recommended_size_rank": best.astype(int), "predicted_queue_p95_s": best_q,
                             "cost_impact_pct": 100.0 * (np.power(2.0, best - current) - 1.0)})

    def evaluate(self, frame: pd.DataFrame) -> dict[str, float]:
        m = regression_metrics(self._y(frame), self._raw(frame))
        return {"queue_p95_mae_s": m["mae"], "rmse": m["rmse"], "n": m["n"]}



class CapacityPlannerModel(_SizingRegressor):
    """Next week's peak cores in use per cluster (monotone in today's and the week's peaks), then
    the smallest worker count that keeps that peak under ``max_utilization`` of the cores."""

    monotone = {"peak_cores_used": 1, "peak_cores_7d_max": 1}

    def predict(self, X: pd.DataFrame) -> pd.DataFrame:
        cap = float(self.params.get("max_utilization", 0.8))
        peak = self._raw(X)
        cores = pd.to_numeric(X["worker_cores"], errors="coerce").fillna(4.0).clip(lower=1).to_numpy(dtype=float)
        workers = pd.to_numeric(X["worker_count"], errors="coerce").fillna(1.0).clip(lower=1).to_numpy(dtype=float)
        cost = pd.to_numeric(X["daily_cost"], errors="coerce").fillna(0.0).to_numpy(dtype=float)
        rec = np.maximum(1, np.ceil(peak / (cores * cap)))
        return pd.DataFrame({"recommended_workers": rec.astype(int),
                             "expected_peak_utilization": peak / (rec * cores),
                             "predicted_peak_cores": peak,
                             "cost_savings": 7 * cost * (1 - rec / workers)})

    def evaluate(self, frame: pd.DataFrame) -> dict[str, float]:
        return regression_metrics(self._y(frame), self._raw(frame))

    def baseline_inputs(self) -> list[str] | None:
        return ["peak_cores_7d_max"]

    def _naive_raw(self, X: pd.DataFrame) -> np.ndarray:
        return pd.to_numeric(X["peak_cores_7d_max"], errors="coerce").fillna(0).to_numpy(dtype=float)
