"""Unsupervised catalog models: Isolation Forest detectors, the schema drift detector (rules +
Isolation Forest) and the user behaviour baseline (DBSCAN + an MLP autoencoder).

None of them sees a label. Validation and promotion use *planted* anomalies: copies of held-out
rows with a few features pushed beyond their training range, scored against the untouched rows
(ROC AUC). Ground-truth incidents are used only by the evaluation report.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from health_monitor.batch.base import BatchModel, auc

#: Features that describe *when*, not *what*: planting never pushes these.
_CONTEXT_WORDS = ("sin", "cos", "is_weekend", "is_holiday", "is_month_end", "day_of", "hour_of")


def plant_anomalies(frame: pd.DataFrame, features: list[str], reference: pd.DataFrame, seed: int,
                    n: int | None = None, k: int = 3) -> tuple[pd.DataFrame, np.ndarray]:
    """``frame`` plus ``n`` planted rows; returns (rows, is_planted).

    A planted row is a random row of ``frame`` where ``k`` random behaviour features are set
    beyond the reference's 99th percentile (by 1-3 inter-quantile ranges), i.e. the kind of
    multi-signal excursion a real incident produces.
    """
    rng = np.random.default_rng(seed)
    cols = [c for c in features if not any(w in c for w in _CONTEXT_WORDS)]
    ref = reference[cols].apply(pd.to_numeric, errors="coerce")
    hi = ref.quantile(0.99)
    spread = (hi - ref.quantile(0.5)).abs().replace(0, 1.0).fillna(1.0)
    n = n or max(10, len(frame) // 10)
    base = frame.sample(n=n, replace=len(frame) < n, random_state=int(rng.integers(1 << 30))).copy()
    base[cols] = base[cols].apply(pd.to_numeric, errors="coerce").astype("float64")
    for i in range(n):
        picked = rng.choice(cols, size=min(k, len(cols)), replace=False)
        for c in picked:
            base.iloc[i, base.columns.get_loc(c)] = float(hi[c]) + float(spread[c]) * rng.uniform(1, 3)
    rows = pd.concat([frame, base], ignore_index=True)
    return rows, np.r_[np.zeros(len(frame)), np.ones(n)]


class _Unsupervised(BatchModel):
    """Shared: imputation, train-calibrated [0, 1] scores, planted-anomaly evaluation."""

    def _calibrate(self, raw: np.ndarray) -> None:
        contamination = float(self.params.get("contamination", 0.02))
        self.q_lo_, self.q_thr_, self.q_hi_ = (float(np.quantile(raw, q))
                                               for q in (0.01, 1 - contamination, 0.999))

    def _to_unit(self, raw: np.ndarray) -> np.ndarray:
        """Piecewise-linear map: the training (1 - contamination) quantile -> 0.5, its 99.9% -> 1."""
        lo, thr, hi = self.q_lo_, self.q_thr_, max(self.q_hi_, self.q_thr_ + 1e-9)
        below = 0.5 * (raw - lo) / max(thr - lo, 1e-9)
        above = 0.5 + 0.5 * (raw - thr) / (hi - thr)
        return np.clip(np.where(raw >= thr, above, below), 0.0, 1.0)

    def _impute(self, X: pd.DataFrame) -> np.ndarray:
        m = self.matrix(X)
        return np.where(np.isnan(m), self.medians_, m)

    def _fit_medians(self, train: pd.DataFrame) -> np.ndarray:
        m = self.matrix(train)
        med = np.nanmedian(np.where(np.isfinite(m), m, np.nan), axis=0) if len(m) else np.zeros(m.shape[1])
        self.medians_ = np.nan_to_num(med)
        return np.where(np.isnan(m), self.medians_, m)

    def raw_score(self, X: pd.DataFrame) -> np.ndarray:
        raise NotImplementedError

    def score(self, X: pd.DataFrame) -> np.ndarray:
        """Anomaly score in [0, 1] (0.5 = the training contamination threshold)."""
        return self._to_unit(self.raw_score(X))

    def _planted(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
        return plant_anomalies(frame, self.features, self.reference_, seed=self.seed + 1)

    def evaluate(self, frame: pd.DataFrame) -> dict[str, float]:
        rows, y = self._planted(frame)
        s = self.score(rows)
        flagged = s >= 0.5
        return {"planted_auc": auc(y, s), "planted_recall": float(flagged[y == 1].mean()),
                "flag_rate": float(flagged[y == 0].mean()), "n": float(len(frame))}

    def evaluate_baseline(self, frame: pd.DataFrame) -> dict[str, float]:
        col = self.params.get("baseline_col")
        if not col:
            return {}
        rows, y = self._planted(frame)
        if col in rows.columns:
            base = pd.to_numeric(rows[col], errors="coerce").abs().fillna(0).to_numpy(dtype=float)
        else:
            return {}
        return {"planted_auc": auc(y, base)}


class IsolationForestModel(_Unsupervised):
    """Isolation Forest on the catalog features, with each model's rules for its extra outputs."""

    def fit(self, train: pd.DataFrame, valid: pd.DataFrame | None = None) -> IsolationForestModel:
        from sklearn.ensemble import IsolationForest

        X = self._fit_medians(train)
        self.reference_ = train[self.features].apply(pd.to_numeric, errors="coerce").head(5000)
        self.model_ = IsolationForest(n_estimators=int(self.params.get("n_estimators", 200)),
                                      contamination="auto", random_state=self.seed, n_jobs=1).fit(X)
        self._calibrate(self.raw_score(train))
        return self

    def raw_score(self, X: pd.DataFrame) -> np.ndarray:
        return -self.model_.score_samples(self._impute(X))

    def predict(self, X: pd.DataFrame) -> pd.DataFrame:
        s = self.score(X)
        names = self.spec.outputs
        out = pd.DataFrame({names[0]: s, names[1]: s >= 0.5})
        col = lambda c: pd.to_numeric(X[c], errors="coerce").fillna(0).to_numpy(dtype=float)  # noqa: E731
        if "deviation_pct" in names:
            out["deviation_pct"] = col("pct_change_7d")  # the cost window's percent change vs 7 days
        if "threat_type" in names:
            out["threat_type"] = _threat_type(X)
            out["alert_priority"] = np.where(s >= 0.8, "HIGH", np.where(s >= 0.5, "MEDIUM", "LOW"))
        if "volume_anomaly" in names:
            # Threshold rule beside the forest: more than volume_gb read and exported in the window.
            vol = (col("read_gb") + col("export_gb")) >= float(self.params.get("volume_gb", 1.0))
            out["volume_anomaly"] = vol
            out[names[1]] = out[names[1]] | vol
        return out[list(names)]


def _threat_type(X: pd.DataFrame) -> np.ndarray:
    """Rule-based threat classification of a user's window from its strongest signal."""
    def c(name: str) -> np.ndarray:
        return pd.to_numeric(X[name], errors="coerce").fillna(0).to_numpy(dtype=float) if name in X else 0.0

    kinds = np.full(len(X), "anomalous_activity", dtype=object)
    events = np.maximum(c("events"), 1.0)
    kinds = np.where(c("off_hours_events") / events > 0.5, "off_hours_activity", kinds)
    kinds = np.where(c("new_networks") >= 1, "unusual_location", kinds)
    kinds = np.where(c("grants") >= 3, "privilege_change", kinds)
    kinds = np.where(c("sensitive_table_access") >= 5, "sensitive_data_access", kinds)
    kinds = np.where((c("failed_logins") >= 5) | (c("failed_login_rate") > 0.5), "credential_attack", kinds)
    return kinds


class SchemaDriftModel(_Unsupervised):
    """Breaking-change rules (removed, renamed, retyped columns) max-combined with an Isolation
    Forest over the change profile (how unusual this change is for tables like this one)."""

    def fit(self, train: pd.DataFrame, valid: pd.DataFrame | None = None) -> SchemaDriftModel:
        from sklearn.ensemble import IsolationForest

        X = self._fit_medians(train)
        self.reference_ = train[self.features].apply(pd.to_numeric, errors="coerce").head(5000)
        self.model_ = IsolationForest(n_estimators=int(self.params.get("n_estimators", 100)),
                                      contamination="auto", random_state=self.seed, n_jobs=1).fit(X)
        self._calibrate(-self.model_.score_samples(X))
        return self

    def _rules(self, X: pd.DataFrame) -> np.ndarray:
        c = lambda n: pd.to_numeric(X[n], errors="coerce").fillna(0).to_numpy(dtype=float)  # noqa: E731
        breaking = (c("columns_removed") + c("columns_renamed") + c("type_changes")) > 0
        # A breaking change on a table others read is worse than one on a leaf table.
        impact = np.clip((c("downstream_table_count") + c("downstream_job_count")) / 10.0, 0, 0.25)
        return np.where(breaking, 0.7 + impact, np.where(c("columns_added") > 0, 0.2, 0.0))

    def raw_score(self, X: pd.DataFrame) -> np.ndarray:
        return -self.model_.score_samples(self._impute(X))

    def score(self, X: pd.DataFrame) -> np.ndarray:
        return np.maximum(self._to_unit(self.raw_score(X)), self._rules(X))

    def predict(self, X: pd.DataFrame) -> pd.DataFrame:
        rules = self._rules(X)
        return pd.DataFrame({"drift_risk_score": self.score(X), "breaking_change_flag": rules >= 0.7})


class BehaviorBaselineModel(_Unsupervised):
    """User peer groups by DBSCAN over per-user profiles, and a deviation score from an MLP
    autoencoder (``MLPRegressor`` trained to reproduce standardised user-days through a
    bottleneck): a day it cannot reconstruct is unlike the behaviour it learned."""

    def fit(self, train: pd.DataFrame, valid: pd.DataFrame | None = None) -> BehaviorBaselineModel:
        from sklearn.cluster import DBSCAN
        from sklearn.neural_network import MLPRegressor

        X = self._fit_medians(train)
        self.reference_ = train[self.features].apply(pd.to_numeric, errors="coerce").head(5000)
        self.mu_ = X.mean(axis=0)
        self.sd_ = X.std(axis=0) + 1e-6
        Z = np.clip((X - self.mu_) / self.sd_, -10, 10)
        # Profiles: each user's mean standardised day; DBSCAN finds peer groups (-1 = no group).
        prof = pd.DataFrame(Z).groupby(train["user_id"].to_numpy()).mean()
        db = DBSCAN(eps=float(self.params.get("eps", 0.9)), min_samples=int(self.params.get("min_samples", 3)))
        labels = db.fit_predict(prof.to_numpy()) if len(prof) else np.array([])
        self.centroids_ = {int(k): prof.to_numpy()[labels == k].mean(axis=0) for k in set(labels) if k != -1}
        self.user_cluster_ = dict(zip(prof.index.astype(str), map(int, labels), strict=True))
        hidden = int(self.params.get("hidden", 6))
        self.ae_ = MLPRegressor(hidden_layer_sizes=(max(hidden * 2, 8), hidden, max(hidden * 2, 8)),
                                max_iter=int(self.params.get("max_iter", 300)), random_state=self.seed,
                                early_stopping=False, alpha=1e-3)
        sample = Z if len(Z) <= 20000 else Z[np.random.default_rng(self.seed).choice(len(Z), 20000, replace=False)]
        self.ae_.fit(sample, sample)
        self._calibrate(self.raw_score(train))
        return self

    def raw_score(self, X: pd.DataFrame) -> np.ndarray:
        Z = np.clip((self._impute(X) - self.mu_) / self.sd_, -10, 10)
        return np.sqrt(np.mean((self.ae_.predict(Z) - Z) ** 2, axis=1))

    def predict(self, X: pd.DataFrame) -> pd.DataFrame:
        Z = np.clip((self._impute(X) - self.mu_) / self.sd_, -10, 10)
        if self.centroids_:
            keys = list(self.centroids_)
            C = np.stack([self.centroids_[k] for k in keys])
            d = ((Z[:, None, :] - C[None, :, :]) ** 2).sum(axis=2)
            cluster = np.asarray(keys)[d.argmin(axis=1)]
        else:
            cluster = np.full(len(X), -1)
        return pd.DataFrame({"user_cluster": cluster.astype(int), "deviation_score": self.score(X)})
