"""Supervised catalog models: XGBoost classifiers and regressors, logistic regression, a
multi-label classifier and the tag recommender (TF-IDF character n-grams + random forest).

Why one module over 400 lines: seven small classes over one :class:`BatchModel` contract; the
algorithms are grouped by family (supervised, anomaly, optimizers), one module each.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from health_monitor.batch.base import (
    BatchModel,
    best_threshold,
    classification_metrics,
    regression_metrics,
)


def _baseline_flags(values: pd.Series, rule: str) -> np.ndarray:
    """Naive rule on one column: ``gt0.5`` (rate above one half), ``gt0`` (any), ``lt24`` (hours)."""
    v = pd.to_numeric(values, errors="coerce")
    if rule == "gt0":
        return (v.fillna(0) > 0).to_numpy()
    if rule == "lt24":
        return (v.fillna(np.inf) < 24).to_numpy()
    return (v.fillna(0) > 0.5).to_numpy()


def _xgb_common(params: dict, seed: int, early_stopping: bool = False) -> dict:
    extra = {"early_stopping_rounds": int(params.get("early_stopping_rounds", 30))} if early_stopping else {}
    return {**extra,
        "n_estimators": int(params.get("n_estimators", 200)), "max_depth": int(params.get("max_depth", 5)),
        "learning_rate": float(params.get("learning_rate", 0.08)), "subsample": 0.9, "colsample_bytree": 0.9,
        "min_child_weight": float(params.get("min_child_weight", 2.0)), "tree_method": "hist",
        "random_state": seed, "n_jobs": int(params.get("n_jobs", 2)),
    }


# ---------------------------------------------------------------------------- classification
class _BinaryClassifier(BatchModel):
    """Shared logic: threshold chosen on validation, F1 on test, rule baseline."""

    threshold_: float = 0.5

    def _proba(self, X: pd.DataFrame) -> np.ndarray:
        raise NotImplementedError

    def _y(self, frame: pd.DataFrame) -> np.ndarray:
        return pd.to_numeric(frame[self.label_columns[0]], errors="coerce").fillna(0).astype(int).to_numpy()

    def _tune(self, valid: pd.DataFrame | None) -> None:
        if valid is not None and len(valid) and self._y(valid).sum() > 0:
            self.threshold_ = best_threshold(self._y(valid), self._proba(valid))
        else:
            self.threshold_ = 0.5

    def baseline_inputs(self) -> list[str] | None:
        col = self.params.get("baseline_col")
        return [col] if col else None

    def _become_naive(self) -> None:
        self.threshold_ = 0.5  # the rule's flags are 0 or 1

    def _scores(self, X: pd.DataFrame) -> np.ndarray:
        """The model's probability, or the naive rule's 0/1 flag on the twin."""
        if self.naive_:
            col = self.params["baseline_col"]
            return _baseline_flags(X[col], self.params.get("baseline_rule", "gt0.5")).astype(float)
        return self._proba(X)

    def predict(self, X: pd.DataFrame) -> pd.DataFrame:
        return self._outputs(self._scores(X), X)

    def evaluate(self, frame: pd.DataFrame) -> dict[str, float]:
        return classification_metrics(self._y(frame), self._scores(frame), self.threshold_)

    def _outputs(self, p: np.ndarray, X: pd.DataFrame) -> pd.DataFrame:
        """Map probability to the catalog's output columns."""
        names = self.spec.outputs
        out = pd.DataFrame({names[0]: p})
        second = names[1] if len(names) > 1 else None
        if second == "risk_level":
            out[second] = np.where(p >= max(self.threshold_, 0.5), "HIGH",
                                   np.where(p >= self.threshold_ / 2, "MEDIUM", "LOW"))
        elif second == "recommended_action":
            out[second] = np.where(p >= 0.5, "RETRY", np.where(p >= 0.2, "RETRY_AFTER_WAIT", "INVESTIGATE"))
        elif second == "breaking_change_probability":
            out[names[0]] = np.round(100 * p, 1)
            out[second] = p
        elif second == "expected_duration_s":
            avg = pd.to_numeric(X.get("avg_duration_s"), errors="coerce").to_numpy(dtype=float)
            worst = pd.to_numeric(X.get("max_duration_s"), errors="coerce").to_numpy(dtype=float)
            out[second] = np.where(p >= self.threshold_, worst, avg)
        elif second == "freshness_score":
            hours = pd.to_numeric(X.get("hours_since_same_hash"), errors="coerce").to_numpy(dtype=float)
            out[second] = np.where(np.isnan(hours), 0.0, np.exp(-hours / 24.0))
        elif second is not None:
            out[second] = p >= self.threshold_
        return out


class XGBClassifierModel(_BinaryClassifier):
    """Gradient-boosted trees (XGBoost) with class weighting and a validation-tuned threshold."""

    def fit(self, train: pd.DataFrame, valid: pd.DataFrame | None = None) -> XGBClassifierModel:
        from xgboost import XGBClassifier

        y = self._y(train)
        pos = max(int(y.sum()), 1)
        # Early stopping on the validation split (time-later rows): the number of trees is
        # chosen on data the trees never saw, instead of a fixed count that overfits noise.
        stop = valid is not None and len(valid) > 0 and 0 < self._y(valid).sum() < len(valid)
        self.model_ = XGBClassifier(**_xgb_common(self.params, self.seed, stop), eval_metric="logloss",
                                    scale_pos_weight=float(max(len(y) - pos, 1)) / pos)
        if y.min() == y.max():
            # One class only (tiny estates): a constant model is the honest answer.
            self.constant_ = float(y[0]) if len(y) else 0.0
        else:
            self.constant_ = None
            evals = {"eval_set": [(self.matrix(valid), self._y(valid))], "verbose": False} if stop else {}
            self.model_.fit(self.matrix(train), y, **evals)
        self._tune(valid)
        return self

    def _proba(self, X: pd.DataFrame) -> np.ndarray:
        if self.constant_ is not None:
            return np.full(len(X), self.constant_)
        return self.model_.predict_proba(self.matrix(X))[:, 1]

    def _importances(self) -> dict[str, float] | None:
        if self.constant_ is not None:
            return None
        return dict(zip(self.features, map(float, self.model_.feature_importances_), strict=True))


class LogisticModel(_BinaryClassifier):
    """Standardised logistic regression with balanced class weights."""

    def fit(self, train: pd.DataFrame, valid: pd.DataFrame | None = None) -> LogisticModel:
        from sklearn.impute import SimpleImputer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        y = self._y(train)
        X = self._prep(train)
        self.constant_ = float(y[0]) if len(y) and y.min() == y.max() else None
        if self.constant_ is None:
            self.model_ = make_pipeline(
                SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler(),
                LogisticRegression(C=float(self.params.get("C", 1.0)), class_weight="balanced", max_iter=500,
                                   random_state=self.seed)).fit(X, y)
        self._tune(valid)
        return self

    def _prep(self, X: pd.DataFrame) -> np.ndarray:
        m = self.matrix(X)
        # Hours since the same text ran: unseen texts are "very long ago", and the effect is
        # logarithmic (a minute vs an hour matters more than a day vs a week).
        if "hours_since_same_hash" in self.features:
            i = self.features.index("hours_since_same_hash")
            m[:, i] = np.log1p(np.nan_to_num(m[:, i], nan=24 * 365.0))
        return m

    def _proba(self, X: pd.DataFrame) -> np.ndarray:
        if self.constant_ is not None:
            return np.full(len(X), self.constant_)
        return self.model_.predict_proba(self._prep(X))[:, 1]

    def _importances(self) -> dict[str, float] | None:
        if self.constant_ is not None:
            return None
        coef = np.abs(self.model_[-1].coef_[0])
        return dict(zip(self.features, map(float, coef / max(coef.sum(), 1e-12)), strict=True))


# ---------------------------------------------------------------------------- regression
def mape_multiplier(y: np.ndarray, pred: np.ndarray) -> float:
    """The factor ``c`` that minimises the MAPE of ``c * pred`` against ``y`` (rows with both
    positive; 1.0 when there are none).

    Why: a model fitted on log targets predicts the conditional median, but MAPE weighs each
    error by 1 / y, so under log-normal noise its minimiser lies below the median (exp(mu -
    sigma^2) against exp(mu)). MAPE(c) = sum_i (pred_i / y_i) |c - y_i / pred_i| / n, so the
    best ``c`` is the median of the ratios y_i / pred_i weighted by pred_i / y_i: exact, no grid.
    """
    y = np.asarray(y, dtype=float)
    pred = np.asarray(pred, dtype=float)
    ok = np.isfinite(y) & np.isfinite(pred) & (y > 0) & (pred > 0)
    if not ok.any():
        return 1.0
    ratio, weight = y[ok] / pred[ok], pred[ok] / y[ok]
    order = np.argsort(ratio)
    cum = np.cumsum(weight[order])
    return float(ratio[order][np.searchsorted(cum, 0.5 * cum[-1])])


class XGBRegressorModel(BatchModel):
    """XGBoost regression (optionally on log1p of the target) with a P90 from validation residuals.

    ``params``: ``log_target``; ``baseline_col`` (naive prediction column); ``output_scale`` (unit
    change for the outputs, e.g. ms -> s); ``optimizer: right_size`` adds the job cost optimizer's
    recommendation and savings estimate; ``mape_multiplier`` (default: on when the key metric is
    MAPE) scales the point forecast by :func:`mape_multiplier` chosen on the validation split.
    """

    multiplier_: float = 1.0

    def _y(self, frame: pd.DataFrame) -> np.ndarray:
        return pd.to_numeric(frame[self.label_columns[0]], errors="coerce").to_numpy(dtype=float)

    def fit(self, train: pd.DataFrame, valid: pd.DataFrame | None = None) -> XGBRegressorModel:
        from xgboost import XGBRegressor

        self.log_ = bool(self.params.get("log_target", True))
        y = self._y(train)
        def transform(v: np.ndarray) -> np.ndarray:
            return np.log1p(np.clip(v, 0, None)) if self.log_ else v

        # Early stopping on the (time-later) validation split, as for the classifiers.
        stop = valid is not None and len(valid) > 0
        self.model_ = XGBRegressor(**_xgb_common(self.params, self.seed, stop), objective="reg:squarederror")
        evals = {"eval_set": [(self.matrix(valid), transform(self._y(valid)))], "verbose": False} if stop else {}
        self.model_.fit(self.matrix(train), transform(y), **evals)
        self.fallback_ = float(np.nanmedian(y)) if len(y) else 0.0
        self.multiplier_ = 1.0
        if valid is not None and len(valid) and self.params.get("mape_multiplier", self.spec.key_metric == "mape"):
            # The point forecast MAPE is judged on, fitted on the time-later validation rows.
            self.multiplier_ = mape_multiplier(self._y(valid), self._raw(valid))
        # P90 multiplier (log) or offset from validation residuals: calibrated, not assumed.
        self.p90_ = self.naive_p90_ = 0.0
        if valid is not None and len(valid):
            self.p90_ = self._p90_offset(valid, self._raw(valid))
            twin = self.naive(servable=False)
            if twin is not None:
                self.naive_p90_ = self._p90_offset(valid, twin._raw(valid))
        return self

    def _p90_offset(self, valid: pd.DataFrame, pred: np.ndarray) -> float:
        yv = self._y(valid)
        resid = (np.log1p(np.clip(yv, 0, None)) - np.log1p(np.clip(pred, 0, None))) if self.log_ else yv - pred
        return float(np.nanquantile(resid, 0.9)) if np.isfinite(resid).any() else 0.0

    def _raw(self, X: pd.DataFrame) -> np.ndarray:
        if self.naive_:
            col = self.params["baseline_col"]
            return pd.to_numeric(X[col], errors="coerce").fillna(self.fallback_).to_numpy(dtype=float)
        out = self.model_.predict(self.matrix(X)).astype(float)
        return (np.expm1(out) if self.log_ else out) * self.multiplier_

    def baseline_inputs(self) -> list[str] | None:
        col = self.params.get("baseline_col")
        return [col] if col else None

    def _become_naive(self) -> None:
        self.p90_ = getattr(self, "naive_p90_", self.p90_)

    def _p90(self, pred: np.ndarray) -> np.ndarray:
        return np.expm1(np.log1p(np.clip(pred, 0, None)) + self.p90_) if self.log_ else pred + self.p90_

    def predict(self, X: pd.DataFrame) -> pd.DataFrame:
        pred = self._raw(X)
        scale = float(self.params.get("output_scale", 1.0))
        names = self.spec.outputs
        out = pd.DataFrame({names[0]: pred * scale})
        if self.params.get("optimizer") == "right_size":
            cpu = pd.to_numeric(X.get("hist_avg_cpu"), errors="coerce").to_numpy(dtype=float)
            # The spec's right-sizing rule: < 30% CPU -> halve, < 50% -> cut a third.
            frac = np.where(cpu < 30, 0.5, np.where(cpu < 50, 0.3, 0.0))
            frac = np.where(np.isnan(cpu), 0.0, frac)
            out["recommendation"] = np.where(frac >= 0.5, "DOWNSIZE_AGGRESSIVE",
                                             np.where(frac > 0, "DOWNSIZE_MODERATE", "KEEP"))
            out["savings_estimate"] = pred * frac * scale
        elif len(names) > 1:
            out[names[1]] = self._p90(pred) * scale
        return out

    def evaluate(self, frame: pd.DataFrame) -> dict[str, float]:
        y = self._y(frame)
        pred = self._raw(frame)
        m = regression_metrics(y, pred)
        p90 = self._p90(pred)
        m["p90_coverage"] = float(np.mean(y <= p90)) if len(y) else float("nan")
        return m

    def _importances(self) -> dict[str, float] | None:
        return dict(zip(self.features, map(float, self.model_.feature_importances_), strict=True))


# ---------------------------------------------------------------------------- multi-label
class MultiLabelModel(BatchModel):
    """One XGBoost classifier per label (binary relevance); thresholds tuned per label on validation."""

    def _Y(self, frame: pd.DataFrame) -> np.ndarray:
        return frame[self.label_columns].apply(pd.to_numeric, errors="coerce").fillna(0).astype(int).to_numpy()

    def fit(self, train: pd.DataFrame, valid: pd.DataFrame | None = None) -> MultiLabelModel:
        from xgboost import XGBClassifier

        Y = self._Y(train)
        X = self.matrix(train)
        self.models_: list = []
        for j in range(Y.shape[1]):
            y = Y[:, j]
            if y.min() == y.max():
                self.models_.append(float(y[0]) if len(y) else 0.0)
                continue
            pos = max(int(y.sum()), 1)
            clf = XGBClassifier(**_xgb_common(self.params, self.seed), eval_metric="logloss",
                                scale_pos_weight=float(max(len(y) - pos, 1)) / pos)
            self.models_.append(clf.fit(X, y))
        self.thresholds_ = [0.5] * Y.shape[1]
        if valid is not None and len(valid):
            P, Yv = self._proba(valid), self._Y(valid)
            self.thresholds_ = [best_threshold(Yv[:, j], P[:, j]) for j in range(Yv.shape[1])]
        return self

    def baseline_inputs(self) -> list[str] | None:
        cols = list(self.params.get("baseline_cols") or [])
        return cols if cols and len(cols) == len(self.label_columns) else None

    def _become_naive(self) -> None:
        self.thresholds_ = [0.5] * len(self.label_columns)

    def _proba(self, X: pd.DataFrame) -> np.ndarray:
        if self.naive_:
            # The rule per label: the same query text's historical rate of that problem > 0.5.
            return np.column_stack([_baseline_flags(X[c], "gt0.5").astype(float) for c in self.baseline_inputs()])
        M = self.matrix(X)
        cols = [np.full(len(X), m) if isinstance(m, float) else m.predict_proba(M)[:, 1] for m in self.models_]
        return np.column_stack(cols) if cols else np.zeros((len(X), 0))

    def predict(self, X: pd.DataFrame) -> pd.DataFrame:
        probs = self._proba(X)
        names = [c.removeprefix("label_") for c in self.label_columns]
        out = pd.DataFrame({f"p_{n}": probs[:, j] for j, n in enumerate(names)})
        hits = probs >= np.asarray(self.thresholds_)
        advice = {"spill": "increase warehouse size or reduce join fan-out",
                  "poor_pruning": "add a partition/cluster-key filter (Z-ORDER/liquid clustering)",
                  "excessive_shuffle": "pre-aggregate or broadcast the small side",
                  "large_scan": "select needed columns only / materialize"}
        recs = [", ".join(advice.get(n, n) for j, n in enumerate(names) if row[j]) for row in hits]
        out.insert(0, "recommendations", recs)
        return out[list(self.spec.outputs)]

    @staticmethod
    def _micro(Y: np.ndarray, H: np.ndarray) -> dict[str, float]:
        tp = float(np.sum(H & (Y == 1)))
        fp = float(np.sum(H & (Y == 0)))
        fn = float(np.sum(~H & (Y == 1)))
        f1 = 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)
        return {"f1": f1, "precision": tp / max(tp + fp, 1.0), "recall": tp / max(tp + fn, 1.0),
                "n": float(len(Y)), "positive_rate": float(Y.mean()) if Y.size else 0.0}

    def evaluate(self, frame: pd.DataFrame) -> dict[str, float]:
        Y = self._Y(frame)
        H = self._proba(frame) >= np.asarray(self.thresholds_)
        out = self._micro(Y, H)
        for j, c in enumerate(self.label_columns):
            out[f"f1_{c.removeprefix('label_')}"] = self._micro(Y[:, [j]], H[:, [j]])["f1"]
        return out

    def _importances(self) -> dict[str, float] | None:
        trees = [m for m in self.models_ if not isinstance(m, float)]
        if not trees:
            return None
        imp = np.mean([m.feature_importances_ for m in trees], axis=0)
        return dict(zip(self.features, map(float, imp), strict=True))


# ---------------------------------------------------------------------------- tag recommender
class TagRecommenderModel(BatchModel):
    """Team tag from the job name: word tokens + character n-gram TF-IDF (offline, no download),
    plus workspace, primary SKU and schedule, into a random forest."""

    text_col = "job_name"

    def _texts(self, X: pd.DataFrame) -> list[str]:
        return X[self.text_col].fillna("").astype(str).str.lower().tolist()

    def _meta(self, X: pd.DataFrame) -> list[str]:
        return (X["workspace_id"].fillna("").astype(str) + " " + X["primary_sku"].fillna("").astype(str)).tolist()

    def _design(self, X: pd.DataFrame, fit: bool = False):  # noqa: ANN202 - scipy sparse matrix
        from scipy import sparse
        from sklearn.feature_extraction.text import TfidfVectorizer

        if fit:
            self.char_ = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), min_df=1, sublinear_tf=True)
            self.word_ = TfidfVectorizer(token_pattern=r"[a-z0-9]+", min_df=1)
            self.meta_ = TfidfVectorizer(token_pattern=r"[^ ]+", min_df=1)
            parts = [self.char_.fit_transform(self._texts(X)), self.word_.fit_transform(self._texts(X)),
                     self.meta_.fit_transform(self._meta(X))]
        else:
            parts = [self.char_.transform(self._texts(X)), self.word_.transform(self._texts(X)),
                     self.meta_.transform(self._meta(X))]
        num = X[["schedule_hour", "run_count_30d", "avg_duration_s_30d"]].apply(pd.to_numeric, errors="coerce")
        num = np.log1p(num.fillna(-1).clip(lower=0).to_numpy(dtype=float))
        return sparse.hstack(parts + [sparse.csr_matrix(num)]).tocsr()

    def fit(self, train: pd.DataFrame, valid: pd.DataFrame | None = None) -> TagRecommenderModel:
        from sklearn.ensemble import RandomForestClassifier

        y = train[self.label_columns[0]].astype(str).to_numpy()
        self.model_ = RandomForestClassifier(n_estimators=int(self.params.get("n_estimators", 200)),
                                             random_state=self.seed, n_jobs=2, class_weight="balanced")
        self.model_.fit(self._design(train, fit=True), y)
        # Baseline: the most frequent team per workspace (global mode for unseen workspaces).
        self.mode_ = train.groupby("workspace_id")[self.label_columns[0]].agg(lambda s: s.mode().iloc[0]).to_dict()
        self.global_mode_ = str(pd.Series(y).mode().iloc[0]) if len(y) else ""
        # The baseline's confidence: the share of the workspace's jobs that carry its mode.
        label = train[self.label_columns[0]].astype(str)
        self.mode_share_ = label.groupby(train["workspace_id"]).agg(
            lambda s: float((s == s.mode().iloc[0]).mean())).to_dict()
        return self

    def baseline_inputs(self) -> list[str] | None:
        return ["workspace_id"]

    def row_filter(self, frame: pd.DataFrame) -> pd.DataFrame:
        # One row per job (its latest snapshot): tags are a property of the job, not of a day.
        frame = frame.sort_values(self.spec.time_key).groupby(list(self.spec.entity_keys), as_index=False).tail(1)
        return frame.dropna(subset=self.label_columns)

    def predict(self, X: pd.DataFrame) -> pd.DataFrame:
        if self.naive_:
            ws = X["workspace_id"]
            share = getattr(self, "mode_share_", {})
            return pd.DataFrame({
                "recommended_tag": ws.map(self.mode_).fillna(self.global_mode_).astype(str).to_numpy(),
                "confidence": ws.map(share).astype(float).fillna(0.0).to_numpy()})
        P = self.model_.predict_proba(self._design(X))
        best = P.argmax(axis=1)
        return pd.DataFrame({"recommended_tag": self.model_.classes_[best], "confidence": P.max(axis=1)})

    def _f1(self, y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
        from sklearn.metrics import accuracy_score, f1_score

        if not len(y):
            return {}
        return {"f1": float(f1_score(y, pred, average="weighted", zero_division=0)),
                "accuracy": float(accuracy_score(y, pred)), "n": float(len(y))}

    def evaluate(self, frame: pd.DataFrame) -> dict[str, float]:
        return self._f1(frame[self.label_columns[0]].astype(str).to_numpy(),
                        self.predict(frame)["recommended_tag"].to_numpy())
