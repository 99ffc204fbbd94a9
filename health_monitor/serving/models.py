"""The served models: each endpoint's champion version, loaded from the registry and hot-swapped.

At start every endpoint of the catalog loads the version its ``champion`` alias points at. A
reload (periodic, or ``POST /admin/reload``) asks the registry where each alias points now and
loads only the versions that moved; the new model, its contract and its online-store table are
built completely first and then swapped in with one assignment, so requests in flight finish on
the old version and the next ones use the new: nothing is dropped.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from health_monitor.batch.registry import CHAMPION, client, configure_mlflow
from health_monitor.catalog import CATALOG, ENDPOINTS
from health_monitor.runtime import Lakehouse
from health_monitor.serving.contracts import Contract, build_contract, jsonable
from health_monitor.serving.store import EntityTable, OnlineStore, index_latest, read_feature_table

log = logging.getLogger(__name__)

#: How many features a response names as the reasons behind a prediction.
TOP_REASONS = 3


@dataclass
class Served:
    """One endpoint's loaded champion."""

    endpoint: str
    model_name: str
    version: str
    contract: Contract
    model: Any  # the fitted BatchModel inside the pyfunc
    importances: dict[str, float]

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The model's outputs for a validated input frame (the contract's columns and types)."""
        return self.model.predict(frame[self.model.features].reset_index(drop=True))

    def reasons(self, frame: pd.DataFrame, stats: dict[str, tuple[float, float]]) -> list[list[dict]]:
        """Per record, the features that drove it most: how unusual each value is against the
        population of the feature table (a z-score), weighted by the model's importance where
        the algorithm has one."""
        names = [f.name for f in self.contract.fields if f.kind == "number" and f.name in stats]
        if not names:
            return [[] for _ in range(len(frame))]
        x = frame[names].to_numpy(dtype=float)
        mean = np.array([stats[n][0] for n in names])
        std = np.array([stats[n][1] for n in names])
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(std > 0, (x - mean) / np.where(std > 0, std, 1.0), 0.0)
        z = np.nan_to_num(z, nan=0.0, posinf=0.0, neginf=0.0)
        weight = np.array([self.importances.get(n, 0.0 if self.importances else 1.0) for n in names])
        strength = np.abs(z) * weight
        out: list[list[dict]] = []
        for r in range(len(frame)):
            top = [c for c in np.argsort(-strength[r])[:TOP_REASONS] if strength[r, c] > 0]
            out.append([{"feature": names[c], "value": jsonable(x[r, c]), "population_mean": round(float(mean[c]), 6),
                         "z": round(float(z[r, c]), 2), "direction": "above" if z[r, c] > 0 else "below"}
                        for c in top])
        return out


class ModelSet:
    """Every endpoint's champion plus the online store, reloadable as a whole."""

    def __init__(self, lake: Lakehouse, endpoints: list[str] | None = None) -> None:
        self.lake = lake
        self.endpoints = endpoints or list(ENDPOINTS)
        self.served: dict[str, Served] = {}
        self.missing: dict[str, str] = {}
        self.store = OnlineStore()
        self._reload_lock = threading.Lock()

    def reload(self, refresh_features: bool = True) -> dict[str, str]:
        """Load champions whose alias moved (all at first); refresh the online store.

        Returns what changed, per endpoint (``"v3 -> v4"``, ``"loaded v2"``, or why not served).
        """
        with self._reload_lock:
            configure_mlflow(self.lake.settings)
            cl = client(self.lake.settings)
            served = dict(self.served)
            missing: dict[str, str] = {}
            changes: dict[str, str] = {}
            for ep in self.endpoints:
                spec = CATALOG[ENDPOINTS[ep]]
                name = self.lake.settings.registered_model_name(spec.name)
                try:
                    version = str(cl.get_model_version_by_alias(name, CHAMPION).version)
                except Exception:  # noqa: BLE001 - no model / no alias yet: not an error of the server
                    served.pop(ep, None)
                    missing[ep] = (f"model {spec.name} has no champion yet: run "
                                   f"'health-monitor train --model {spec.name}'")
                    continue
                old = served.get(ep)
                if old is not None and old.version == version:
                    continue
                try:
                    served[ep] = _load(ep, spec, name, version)
                except Exception as exc:  # noqa: BLE001 - keep serving the old version
                    log.error("%s: could not load %s v%s: %s", ep, name, version, exc)
                    if old is None:
                        missing[ep] = f"model {spec.name} v{version} could not be loaded: {exc}"
                    continue
                changes[ep] = f"v{old.version} -> v{version}" if old else f"loaded v{version}"
            tables = self._tables(served) if refresh_features or changes else None
            # Swap in one step each: requests see the old set or the new one, never a mix.
            if tables is not None:
                self.store.replace(tables)
            self.served = served
            self.missing = missing
            for ep, why in missing.items():
                changes.setdefault(ep, why)
            return changes

    def _tables(self, served: dict[str, Served]) -> dict[str, EntityTable]:
        tables: dict[str, EntityTable] = {}
        frames: dict[str, pd.DataFrame | None] = {}
        for ep, s in served.items():
            spec = s.contract.spec
            if spec.feature_table not in frames:
                frames[spec.feature_table] = read_feature_table(self.lake, spec.feature_table)
            frame = frames[spec.feature_table]
            if frame is None or frame.empty:
                continue
            t = index_latest(frame, spec, s.contract.lookup_keys, [f.name for f in s.contract.fields])
            tables[ep] = t
            if t.example_row is not None:
                s.contract.example = {f.name: jsonable(t.example_row.get(f.name)) for f in s.contract.fields}
                s.contract.example_keys = dict(t.example_key or {})
        return tables


def _load(endpoint: str, spec: Any, registered: str, version: str) -> Served:
    import mlflow.pyfunc

    pyfunc = mlflow.pyfunc.load_model(f"models:/{registered}/{version}")
    signature = pyfunc.metadata.signature
    if signature is None:
        raise ValueError("the logged model has no signature")
    model = pyfunc.unwrap_python_model().model
    _single_threaded(model)
    imp = model.importances() or {}
    total = sum(v for v in imp.values() if v > 0) or 1.0
    return Served(endpoint, spec.name, version, build_contract(endpoint, spec, signature), model,
                  {k: float(v) / total for k, v in imp.items() if v > 0})


def _single_threaded(model: Any) -> None:
    """Score with one thread per call: a server answers many small requests at once, and an
    XGBoost booster that wakes every core's OpenMP thread for one row spends most of its CPU
    spinning (about 70 ms of CPU per single-row call on a busy 2-core machine, measured)."""
    for value in vars(model).values():
        # scikit-learn estimators and XGBoost's sklearn wrappers alike take n_jobs.
        if hasattr(value, "n_jobs") and hasattr(value, "set_params"):
            value.set_params(n_jobs=1)
