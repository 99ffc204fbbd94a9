"""The one contract every batch model follows, and its MLflow pyfunc wrapper.

A batch model is built from its catalog entry, ``fit`` on a pandas training frame (feature
columns, label, keys and time), ``predict`` on a frame of the catalog's feature columns and
returns the catalog's output columns. ``evaluate`` and ``evaluate_baseline`` score it and its
naive baseline on a labelled frame with the same metric names, so the trainer, the promotion
rule and the model report never special-case an algorithm. Parameters live in ``params``;
fitted state lives in attributes ending in ``_`` (scikit-learn's convention).

Every model also carries its naive baseline: :meth:`BatchModel.naive` is a twin of the fitted
model whose ``predict`` and ``evaluate`` use the baseline rule (a history column, a per-entity
mean, the last value) instead of the learned part, with the same inputs and outputs. The
baseline's metrics are the twin's ``evaluate``, and where the learned model loses to it the
twin is what the registry serves (:func:`health_monitor.batch.registry.promote`).
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd

from health_monitor.catalog import ModelSpec


class BatchModel(ABC):
    """Base class of the 23 catalog models."""

    #: True on the twin :meth:`naive` returns: predictions come from the baseline rule.
    naive_: bool = False

    def __init__(self, spec: ModelSpec, params: dict[str, Any] | None = None) -> None:
        self.spec = spec
        self.params = {**spec.params, **(params or {})}

    @property
    def seed(self) -> int:
        return int(self.params.get("seed", 42))

    @property
    def features(self) -> list[str]:
        return list(self.spec.features)

    @property
    def label_columns(self) -> list[str]:
        """The label column(s); several for multi-label models (comma-separated in the catalog)."""
        return [c for c in (self.spec.label or "").split(",") if c]

    # ------------------------------------------------------------------ contract
    @abstractmethod
    def fit(self, train: pd.DataFrame, valid: pd.DataFrame | None = None) -> BatchModel:
        """Learn from ``train`` (validation rows may be used for thresholds / early stopping)."""

    @abstractmethod
    def predict(self, X: pd.DataFrame) -> pd.DataFrame:
        """Outputs (the catalog's ``outputs`` columns) for rows of the catalog's feature columns."""

    @abstractmethod
    def evaluate(self, frame: pd.DataFrame) -> dict[str, float]:
        """Metrics on a labelled frame; always includes the catalog's ``key_metric``."""

    def evaluate_baseline(self, frame: pd.DataFrame) -> dict[str, float]:
        """The naive baseline's metrics on the same frame (same metric names); {} without one."""
        twin = self.naive(servable=False)
        return twin.evaluate(frame) if twin is not None and len(frame) else {}

    # ------------------------------------------------------------------ naive baseline
    def baseline_inputs(self) -> list[str] | None:
        """Columns the naive baseline reads (None: this algorithm has no naive baseline)."""
        return None

    def _become_naive(self) -> None:
        """Adjust a shallow copy of the fitted model into its baseline (thresholds, weights)."""
        return None

    def naive(self, servable: bool = True) -> BatchModel | None:
        """The fitted model's naive-baseline twin: same inputs and outputs, baseline predictions.

        With ``servable`` (the default), None unless every column the baseline reads is one of
        the model's features: only then can the twin answer from the signature's inputs alone.
        Evaluation (``servable=False``) may read other columns of the labelled frame.
        """
        cols = self.baseline_inputs()
        if cols is None or (servable and any(c not in self.features for c in cols)):
            return None
        twin = copy.copy(self)
        twin.naive_ = True
        twin._become_naive()
        return twin

    def importances(self) -> dict[str, float] | None:
        """Feature importances (None where the algorithm has none); the naive twin's are its
        baseline columns, equally weighted (serving explains answers with them)."""
        if self.naive_:
            cols = [c for c in self.baseline_inputs() or [] if c in self.features]
            return {c: 1.0 / len(cols) for c in cols} or None
        return self._importances()

    def _importances(self) -> dict[str, float] | None:
        """The learned model's importances (tree models override)."""
        return None

    def row_filter(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Rows this model trains and is evaluated on (supervised: rows with a label)."""
        labels = [c for c in self.label_columns if c in frame.columns]
        if labels and self.spec.problem_type in {"classification", "regression", "multilabel"}:
            frame = frame.dropna(subset=labels)
        flag = self.params.get("row_filter")
        if flag:
            frame = frame[frame[flag].fillna(False).astype(bool)]
        return frame

    # ------------------------------------------------------------------ helpers
    def matrix(self, X: pd.DataFrame, columns: list[str] | None = None) -> np.ndarray:
        """Numeric float matrix of ``columns`` (default: the features); nulls become NaN."""
        cols = columns or self.features
        sub = X[cols]
        if all(dt.kind == "f" for dt in sub.dtypes):
            # Already floats (signature-typed input, the serving path): no per-column conversion.
            return sub.to_numpy(dtype="float64")
        return sub.apply(pd.to_numeric, errors="coerce").astype("float64").to_numpy()


class CatalogPyfunc(mlflow.pyfunc.PythonModel):
    """MLflow pyfunc around a fitted :class:`BatchModel`: input = the catalog's feature columns."""

    def __init__(self, model: BatchModel) -> None:
        self.model = model

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:  # noqa: ANN001
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        missing = [c for c in self.model.features if c not in frame.columns]
        if missing:
            raise ValueError(f"{self.model.spec.name}: input lacks feature columns {missing}")
        return self.model.predict(frame[self.model.features].reset_index(drop=True))


# ---------------------------------------------------------------------------- metrics
def f1_at(y: np.ndarray, p: np.ndarray, threshold: float) -> float:
    """F1 of ``p >= threshold`` against binary ``y``."""
    pred = p >= threshold
    tp = float(np.sum(pred & (y == 1)))
    fp = float(np.sum(pred & (y == 0)))
    fn = float(np.sum(~pred & (y == 1)))
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


def best_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """Threshold maximising F1 (chosen on the validation split, never on test)."""
    if len(y) == 0 or y.sum() == 0:
        return 0.5
    grid = np.unique(np.quantile(p, np.linspace(0.02, 0.98, 49)))
    scores = [f1_at(y, p, t) for t in grid]
    return float(grid[int(np.argmax(scores))]) if len(grid) else 0.5


def classification_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    """F1, precision, recall, AUC and positive rate."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y).astype(int)
    pred = np.asarray(p) >= threshold
    tp = float(np.sum(pred & (y == 1)))
    precision = tp / max(float(pred.sum()), 1.0)
    recall = tp / max(float(y.sum()), 1.0)
    out = {"f1": f1_at(y, np.asarray(p), threshold), "precision": precision, "recall": recall,
           "positive_rate": float(y.mean()) if len(y) else 0.0, "n": float(len(y))}
    out["auc"] = float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan")
    return out


def regression_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """MAPE (rows with |y| > 0), WAPE, MAE, RMSE."""
    y = np.asarray(y, dtype=float)
    pred = np.asarray(pred, dtype=float)
    nz = np.abs(y) > 1e-9
    mape = float(np.mean(np.abs(pred[nz] - y[nz]) / np.abs(y[nz]))) if nz.any() else float("nan")
    err = np.abs(pred - y)
    return {"mape": mape, "wape": float(err.sum() / max(np.abs(y).sum(), 1e-9)),
            "mae": float(err.mean()) if len(y) else float("nan"),
            "rmse": float(np.sqrt(np.mean((pred - y) ** 2))) if len(y) else float("nan"),
            "n": float(len(y))}


def auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC, NaN when only one class is present."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y).astype(int)
    return float(roc_auc_score(y, score)) if 0 < y.sum() < len(y) else float("nan")
