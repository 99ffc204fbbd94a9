"""The pipeline health scorer: the spec's five weighted component scores (0-100)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from health_monitor.batch.base import BatchModel


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3:
        return float("nan")
    ra, rb = pd.Series(a[ok]).rank().to_numpy(), pd.Series(b[ok]).rank().to_numpy()
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


class PipelineHealthModel(BatchModel):
    """Success rate (30%), duration stability (20%), SLA compliance (25%), error diversity (10%)
    and recovery speed (15%) are the spec's starting weights. ``fit`` calibrates the recovery-time
    scale on the training rows and then refits the weights by non-negative least squares of the
    next 7 days' success rate on the five components (normalised to sum to one; the spec's weights
    stay when that fit is degenerate), so a component that does not predict the pipeline's
    future counts less. Quality is measured as the rank correlation between today's score and
    the next 7 days' success rate."""

    def row_filter(self, frame: pd.DataFrame) -> pd.DataFrame:
        return frame.dropna(subset=self.label_columns)

    def fit(self, train: pd.DataFrame, valid: pd.DataFrame | None = None) -> PipelineHealthModel:
        rec = pd.to_numeric(train["recovery_hours_30d"], errors="coerce").dropna()
        self.recovery_scale_h_ = float(max(rec.median(), 1.0)) if len(rec) else 24.0
        self.weights_ = dict(self.params["weights"])
        if self.params.get("learn_weights", True) and len(train) >= 20:
            from scipy.optimize import nnls

            comp = self.components(train)
            y = pd.to_numeric(train[self.label_columns[0]], errors="coerce").to_numpy(dtype=float)
            ok = np.isfinite(y)
            names = list(self.weights_)
            A = np.column_stack([comp[names].to_numpy(dtype=float)[ok] / 100.0, np.ones(int(ok.sum()))])
            coef, _ = nnls(A, y[ok])
            total = float(coef[:-1].sum())
            if total > 1e-9:
                self.weights_ = {n: float(c) / total for n, c in zip(names, coef[:-1], strict=True)}
        return self

    def components(self, X: pd.DataFrame) -> pd.DataFrame:
        """The five component scores, 0-100 each (no runs / no SLA / no failures score 100)."""
        c = lambda n: pd.to_numeric(X[n], errors="coerce").to_numpy(dtype=float)  # noqa: E731
        success = np.nan_to_num(c("success_rate_7d"), nan=1.0)
        cv = np.nan_to_num(c("duration_cv_7d"), nan=0.0)
        sla = np.nan_to_num(c("sla_compliance_7d"), nan=1.0)
        errors = np.nan_to_num(c("error_type_count_30d"), nan=0.0)
        recovery = np.nan_to_num(c("recovery_hours_30d"), nan=0.0)
        return pd.DataFrame({
            "success_rate_score": 100 * np.clip(success, 0, 1),
            "duration_stability_score": 100 * np.clip(1 - cv, 0, 1),
            "sla_compliance_score": 100 * np.clip(sla, 0, 1),
            "error_diversity_score": 100 * np.clip(1 - errors / 5.0, 0, 1),
            "recovery_speed_score": 100 * np.exp(-recovery / (2 * self.recovery_scale_h_)),
        })

    def predict(self, X: pd.DataFrame) -> pd.DataFrame:
        comp = self.components(X)
        weights = getattr(self, "weights_", self.params["weights"])
        health = sum(comp[name] * w for name, w in weights.items())
        return pd.concat([pd.DataFrame({"health_score": health.to_numpy()}), comp], axis=1)[list(self.spec.outputs)]

    def evaluate(self, frame: pd.DataFrame) -> dict[str, float]:
        y = pd.to_numeric(frame[self.label_columns[0]], errors="coerce").to_numpy(dtype=float)
        return {"spearman": _spearman(self.predict(frame)["health_score"].to_numpy(dtype=float), y),
                "n": float(len(frame))}

    def baseline_inputs(self) -> list[str] | None:
        return ["success_rate_7d"]

    def _become_naive(self) -> None:
        # The 7-day success rate alone (the same ranking as the success-rate component).
        self.weights_ = {name: float(name == "success_rate_score") for name in self.params["weights"]}
