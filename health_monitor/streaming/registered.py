"""Registered MLflow models (alias ``champion``) for the streaming scorers, loaded once per executor.

The stateful scoring function runs in Spark's Python workers, which are reused across batches;
a module-level cache keeps each loaded model there, so a model is loaded once per worker, not
once per key or batch. Before the MODELS jobs have registered anything the lookup finds nothing
and the streams run on their online detectors and rules alone (cold start), re-checking the
registry every few minutes so a newly promoted champion is picked up without a restart.

On Databricks the workers do not query the registry: the query's driver loads the champions
(where the job's credentials are, and with MLflow's tracking URI ``databricks`` beside the
``databricks-uc`` registry) and hands them to the workers in the query's context
(:func:`worker_registry`). Serverless Python workers have neither the driver's credentials nor
internet access; a scheduled available-now run starts with the champions current at that time.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from health_monitor.detectors.base import DECADES

if TYPE_CHECKING:
    from health_monitor.runtime import Lakehouse
    from health_monitor.settings import Settings

log = logging.getLogger(__name__)

#: Seconds before the registry is asked again (for a new champion, or for a first one).
RECHECK_S = 300.0
#: A model is used only if the window frame supplies all of its input columns: the blended
#: champions train on the stream's own window features (features/windows.py), so a champion that
#: lacks one was trained on another definition and would score filler values.
MIN_FEATURE_COVERAGE = 1.0

_CACHE: dict[tuple[str, str], tuple[float, LoadedModel | None]] = {}


@dataclass
class LoadedModel:
    """A champion pyfunc with the input columns its signature declares."""

    name: str
    version: str
    model: Any
    inputs: list[str]

    def score(self, features: pd.DataFrame) -> np.ndarray | None:
        """Anomaly scores in [0, 1] for rows of window features, or None if the frame does not fit."""
        have = [c for c in self.inputs if c in features.columns]
        if not self.inputs or len(have) / len(self.inputs) < MIN_FEATURE_COVERAGE:
            return None
        # Missing values stay missing: the model imputes them as it did in training and as batch
        # scoring and serving let it (filling 0 here scored a user's first days as "never read").
        x = pd.DataFrame({c: pd.to_numeric(features[c], errors="coerce").astype("float64") for c in self.inputs})
        try:
            out = self.model.predict(x)
        except Exception as exc:  # noqa: BLE001 - a bad model must not stop the stream
            log.warning("registered model %s v%s failed to score: %s", self.name, self.version, exc)
            return None
        return to_unit_score(out)


def to_unit_score(out: Any) -> np.ndarray:
    """Map a pyfunc prediction to anomaly scores in [0, 1].

    Accepts a column named like a score, a vector of scores, or scikit-learn's -1/1 labels.
    """
    if isinstance(out, pd.DataFrame):
        for col in ("anomaly_score", "score", "risk_score", "probability", "prediction"):
            if col in out.columns:
                out = out[col]
                break
        else:
            out = out.select_dtypes("number").iloc[:, 0]
    v = np.asarray(out, dtype=float).reshape(len(out), -1)[:, -1]
    if set(np.unique(v[~np.isnan(v)])) <= {-1.0, 1.0}:
        v = (1.0 - v) / 2.0  # IsolationForest.predict: -1 = outlier
    return np.clip(np.nan_to_num(v, nan=0.0), 0.0, 1.0)


def blend_scores(online: np.ndarray, champion_scores: np.ndarray) -> np.ndarray:
    """Add a champion's evidence to the online detector's scores; the champion never lowers them.

    Both are calibrated tail probabilities on one scale (score = -log10(p) / DECADES). They are
    combined with Fisher's method (two independent p-values: p = q * (1 - ln q), q = p1 * p2),
    and the online score is the floor: the online model knows this entity's history, the champion
    knows the whole estate, so agreement strengthens an alarm while a champion that finds the window
    ordinary cannot veto one. (A weighted average did: seed 23's billing error scored 1.0 online
    and was pulled under the threshold by a champion that saw nothing.) A champion alone needs
    overwhelming evidence (about p < 2e-5 against an ordinary online score) to raise an alarm.
    """
    on = np.clip(np.nan_to_num(np.asarray(online, dtype=float), nan=0.0), 0.0, 1.0)
    ch = np.clip(np.nan_to_num(np.asarray(champion_scores, dtype=float), nan=0.0), 0.0, 1.0)
    # log10 q with q = p1 * p2, and p = 10 ** (-DECADES * score)
    log10_q = -DECADES * (on + ch)
    ln_q = log10_q * math.log(10.0)
    combined_p_log10 = log10_q + np.log10(1.0 - ln_q)
    combined = np.clip(-combined_p_log10 / DECADES, 0.0, 1.0)
    return np.maximum(on, combined)


def _registry_exists(registry_uri: str) -> bool:
    # Importing mlflow costs seconds per worker: skip it while the local store does not exist.
    if registry_uri.startswith("sqlite:///"):
        return Path(registry_uri[len("sqlite:///"):]).exists()
    return True


def tracking_uri_for(registry_uri: str) -> str:
    """The MLflow tracking URI that goes with a registry URI.

    Unity Catalog (``databricks-uc``) is a registry only: MLflow 3 rejects it as a tracking URI,
    whose workspace counterpart is ``databricks``. A local SQLite store is both.
    """
    return "databricks" if registry_uri.startswith("databricks-uc") else registry_uri


def _registry_client(registry_uri: str):  # noqa: ANN202 - mlflow.MlflowClient, imported lazily
    """A client for ``registry_uri`` with its tracking store, also set as MLflow's defaults (model
    URIs such as ``models:/name@champion`` resolve through them)."""
    import mlflow
    from mlflow import MlflowClient

    tracking_uri = tracking_uri_for(registry_uri)
    mlflow.set_registry_uri(registry_uri)
    mlflow.set_tracking_uri(tracking_uri)
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri)


def champion(registry_uri: str, registered_name: str) -> LoadedModel | None:
    """The ``champion`` version of a registered model, cached per worker; None if there is none."""
    key = (registry_uri, registered_name)
    now = time.monotonic()
    hit = _CACHE.get(key)
    if hit and now - hit[0] < RECHECK_S:
        return hit[1]
    loaded = hit[1] if hit else None
    if _registry_exists(registry_uri):
        try:
            import mlflow

            mv = _registry_client(registry_uri).get_model_version_by_alias(registered_name, "champion")
            if loaded is None or loaded.version != str(mv.version):
                model = mlflow.pyfunc.load_model(f"models:/{registered_name}@champion")
                schema = model.metadata.get_input_schema()
                inputs = list(schema.input_names()) if schema is not None else []
                loaded = LoadedModel(registered_name, str(mv.version), model, inputs)
        except Exception as exc:  # noqa: BLE001 - nothing registered yet: cold start on online models
            log.info("no champion for %s: %s", registered_name, exc)
            loaded = None
    _CACHE[key] = (now, loaded)
    return loaded


@dataclass(frozen=True)
class WorkerRegistry:
    """How the scoring workers get a domain's champions: from the registry themselves (local),
    or already loaded by the driver (``preloaded``, on Databricks)."""

    registry_uri: str
    preloaded: tuple[LoadedModel, ...] | None = None


def worker_registry(settings: Settings, registered_names: list[str] | tuple[str, ...]) -> WorkerRegistry:
    """The registry access for a query's workers, resolved where the query starts (the driver)."""
    if not settings.is_databricks:
        return WorkerRegistry(settings.registry_uri)
    return preload(settings.registry_uri, registered_names)


def preload(registry_uri: str, registered_names: list[str] | tuple[str, ...]) -> WorkerRegistry:
    """Load the champions here (the driver) so the workers get them with the query's context."""
    loaded = [m for m in (champion(registry_uri, n) for n in registered_names) if m is not None]
    return WorkerRegistry(registry_uri, tuple(loaded))


def domain_champions(registry: WorkerRegistry | str | None, registered_names: list[str]) -> list[LoadedModel]:
    """The champions available for a domain (empty before any model is registered).

    ``registry`` is the query context's ``registry_uri`` entry: a :class:`WorkerRegistry` (the
    champions preloaded by the driver, or where to find them) or a plain registry URI.
    """
    if not registry:
        return []
    if isinstance(registry, WorkerRegistry):
        if registry.preloaded is not None:
            return list(registry.preloaded)
        registry = registry.registry_uri
    return [m for m in (champion(registry, n) for n in registered_names) if m is not None]


def blend_plan(registry_uri: str | None, models: dict[str, str], window_columns: list[str]) -> list[str]:
    """One line per model a stream is meant to blend in: blended (name, version) or not, and why.

    ``models`` maps catalog names to registered names. Reads each champion's signature only (the
    stream's workers load the models); called once when a stream starts.
    """
    if not models:
        return ["blends no registered model (none declared for the domain)"]
    if not registry_uri or not _registry_exists(registry_uri):
        return [f"cannot blend {m}: no model registry yet (train it: health-monitor train --model {m})"
                for m in models]
    import mlflow

    # the signature sits with the logged model, in the tracking store
    client = _registry_client(registry_uri)
    out = []
    for name, registered in models.items():
        try:
            mv = client.get_model_version_by_alias(registered, "champion")
        except Exception:  # noqa: BLE001 - no such model or alias: not trained yet
            out.append(f"cannot blend {name}: no champion registered (train it: health-monitor train --model {name})")
            continue
        try:
            schema = mlflow.models.get_model_info(f"models:/{registered}/{mv.version}").signature.inputs
            inputs = list(schema.input_names())
        except Exception as exc:  # noqa: BLE001 - an unreadable model must not stop the stream
            out.append(f"cannot blend {name} v{mv.version}: its signature cannot be read ({exc})")
            continue
        missing = [c for c in inputs if c not in window_columns]
        if missing:
            out.append(f"cannot blend {name} v{mv.version}: the window frame lacks {len(missing)} of its "
                       f"{len(inputs)} inputs ({', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}); "
                       "retrain it on the window table")
        else:
            out.append(f"blends {name} v{mv.version} ({len(inputs)} window features)")
    return out


def log_blend(lake: Lakehouse, domain: str) -> list[str]:
    """Say (progress line) when a stream starts which champions it blends in, which it cannot and
    why; returns the lines."""
    from health_monitor import progress
    from health_monitor.domains import spec
    from health_monitor.features.windows import window_columns

    dom = spec(domain)
    models = {m: lake.settings.registered_model_name(m) for m in dom.models}
    lines = blend_plan(lake.settings.registry_uri, models, list(window_columns(domain)))
    for line in lines:
        progress.info(f"{domain} stream {line}")
        log.info("%s stream %s", domain, line)
    return lines
