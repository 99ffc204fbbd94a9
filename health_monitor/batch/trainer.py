"""One generic trainer for every catalog entry.

For an entry it reads the entry's feature table, splits it by time (train / validation / test:
earliest 70% of time stamps, next 15%, last 15%), fits the entry's algorithm, scores model and
naive baseline on validation and test, logs everything to MLflow (parameters, metrics, signature,
input example, feature importances, the training data's time range) and registers the pyfunc,
which becomes ``challenger``. Which version serves as ``champion`` is :func:`choose_champion`'s
decision: a model that loses to its naive baseline on the validation or the test split is
registered but not promoted, and the baseline itself (logged as a pyfunc with the same
signature, tagged ``role=baseline``) serves in its place.

Why one module over 400 lines: split, fit, log, register and promote share one
:class:`TrainResult`; the promotion decision is a pure function (:func:`choose_champion`).
"""

from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from health_monitor import progress
from health_monitor.batch.algorithms import build_model
from health_monitor.batch.base import BatchModel, CatalogPyfunc
from health_monitor.batch.registry import (
    BASELINE_ROLE,
    CHAMPION,
    MODEL_ROLE,
    alias_version,
    configure_mlflow,
    load_champion,
    set_serving,
    tag_version,
    version_role,
)
from health_monitor.catalog import ModelSpec
from health_monitor.errors import HealthMonitorError
from health_monitor.runtime import Lakehouse

#: What a logged model needs at load time besides its own code (shipped with it, see
#: :func:`model_code_paths`): pinned to the versions it was trained with, so `mlflow models serve`
#: and a Databricks serving endpoint rebuild the same environment from PyPI.
_RUNTIME_PACKAGES = ("mlflow", "pandas", "numpy", "scikit-learn", "xgboost", "scipy", "holidays")
#: Forecasting models may hold a fitted Prophet model.
_FORECAST_PACKAGES = ("prophet",)


def pip_requirements(spec: ModelSpec) -> list[str]:
    """Pinned requirements of one logged model (never this package: it travels as code)."""
    from importlib.metadata import PackageNotFoundError, version

    names = _RUNTIME_PACKAGES + (_FORECAST_PACKAGES if spec.problem_type == "forecasting" else ())
    out = []
    for name in names:
        try:
            out.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            out.append(name)
    return out


def model_code_paths() -> list[str]:
    """The ``health_monitor`` package folder, logged beside each model: the pyfunc's classes are
    ours, and no package index serves this project, so the code travels with the model."""
    import health_monitor

    return [str(Path(health_monitor.__file__).parent)]


@dataclass
class TrainResult:
    """What training one catalog entry produced."""

    name: str
    version: str | None
    promoted: bool
    key_metric: str
    val: dict[str, float]
    test: dict[str, float]
    baseline_test: dict[str, float]
    rows: dict[str, int]
    seconds: float
    run_id: str | None = None
    data_range: tuple[str, str] = ("", "")
    notes: list[str] = field(default_factory=list)
    baseline_val: dict[str, float] = field(default_factory=dict)
    #: The champion after this training: ``model v3``, ``baseline v4`` or ``previous model v1``.
    serving: str = ""
    serving_reason: str = ""
    #: Why the entry was not trained on this estate (its inputs are missing); empty if trained.
    skipped: str = ""

    @property
    def test_metric(self) -> float | None:
        return _clean(self.test.get(self.key_metric))

    @property
    def baseline_metric(self) -> float | None:
        return _clean(self.baseline_test.get(self.key_metric))


def _clean(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else x


def time_split(frame: pd.DataFrame, time_key: str, fractions: tuple[float, float] = (0.70, 0.85)
               ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Split by distinct time stamps so no time stamp is in two splits (no look-ahead)."""
    times = pd.Series(frame[time_key].dropna().unique()).sort_values().reset_index(drop=True)
    if len(times) < 3:
        raise HealthMonitorError(f"too little history to split on {time_key}: {len(times)} time stamps")
    cut1 = times.iloc[min(max(int(len(times) * fractions[0]) - 1, 0), len(times) - 3)]
    cut2 = times.iloc[min(max(int(len(times) * fractions[1]) - 1, 1), len(times) - 2)]
    t = frame[time_key]
    return frame[t <= cut1], frame[(t > cut1) & (t <= cut2)], frame[t > cut2]


def entity_split(frame: pd.DataFrame, keys: list[str], fractions: tuple[float, float] = (0.70, 0.85)
                 ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Split by a stable hash of the entity keys (for one-row-per-entity models such as tags)."""
    h = pd.util.hash_pandas_object(frame[keys].astype(str), index=False).to_numpy() % 1000 / 1000.0
    return frame[h < fractions[0]], frame[(h >= fractions[0]) & (h < fractions[1])], frame[h >= fractions[1]]


def load_feature_frame(lake: Lakehouse, table: str) -> pd.DataFrame:
    """A feature table as pandas (feature tables are per-entity aggregates: small enough).

    Date columns become ``datetime64`` so model signatures and splits see one time type.
    """
    if not lake.exists(table, "features"):
        raise HealthMonitorError(
            f"feature table {table} does not exist: run 'health-monitor train' (it builds features) "
            "or health_monitor.features.build_features first")
    from pyspark.sql import types as T

    df = lake.read(table, "features")
    dates = [f.name for f in df.schema.fields if isinstance(f.dataType, T.DateType)]
    frame = df.toPandas()
    for c in dates:
        frame[c] = pd.to_datetime(frame[c])
    return frame


def signature_frame(frame: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """The pyfunc input shape: numbers and flags as float64 (nullable everywhere, and MLflow
    accepts int32 / 0-1 inputs for double columns), times as datetime64, the rest as strings."""
    out = pd.DataFrame(index=frame.index)
    for c in features:
        col = frame[c]
        if pd.api.types.is_bool_dtype(col) or pd.api.types.is_numeric_dtype(col):
            out[c] = col.astype("float64")
        elif pd.api.types.is_datetime64_any_dtype(col):
            out[c] = col
        else:
            out[c] = col.map(lambda v: None if pd.isna(v) else str(v)).astype(object)
    return out


def fit_model(spec: ModelSpec, frame: pd.DataFrame, params: dict[str, Any] | None = None
              ) -> tuple[BatchModel, dict[str, pd.DataFrame]]:
    """Filter, split and fit one model (no MLflow); returns the model and its splits."""
    model = build_model(spec, params)
    rows = model.row_filter(frame)
    if rows.empty:
        raise HealthMonitorError(f"{spec.name}: no training rows in {spec.feature_table}")
    if model.params.get("split") == "entity":
        train, valid, test = entity_split(rows, list(spec.entity_keys))
    else:
        train, valid, test = time_split(rows, spec.time_key)
    model.fit(train, valid)
    return model, {"train": train, "valid": valid, "test": test}


@dataclass(frozen=True)
class Contender:
    """One candidate for ``champion``, with its key metric on this training's validation and
    test splits (the same rows for every contender)."""

    label: str
    val: float | None
    test: float | None


@dataclass(frozen=True)
class Decision:
    """Which contender serves (``new``, ``baseline`` or ``incumbent``), and why, in words."""

    winner: str
    reason: str


def _m(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def loses_to_baseline(spec: ModelSpec, c: Contender, baseline: Contender | None) -> str | None:
    """Why ``c`` loses to the naive baseline (strictly worse on validation or test), or None."""
    if baseline is None:
        return None
    for split, mine, theirs in (("validation", c.val, baseline.val), ("test", c.test, baseline.test)):
        if theirs is not None and spec.beats(theirs, mine):
            return f"{spec.key_metric} {_m(mine)} vs naive baseline {_m(theirs)} on {split}"
    return None


def choose_champion(spec: ModelSpec, new: Contender, baseline: Contender | None,
                    incumbent: Contender | None = None, baseline_servable: bool = True) -> Decision:
    """The promotion rule: no champion worse than naive.

    A model (the new version, or the current champion model re-scored on the same rows) may
    serve only if it is not worse than the naive baseline on validation nor on test. Among those
    that may, the new version takes ``champion`` only when strictly better than the incumbent on
    validation (ties keep the incumbent: no churn). If neither may, the baseline serves; where
    the baseline cannot serve (it reads a column that is not a model input), the better model
    on validation serves and the reason says so.
    """
    new_loss = loses_to_baseline(spec, new, baseline)
    inc_loss = loses_to_baseline(spec, incumbent, baseline) if incumbent is not None else "none"
    base_txt = "" if baseline is None else f" (naive baseline {_m(baseline.val)})"
    if new_loss is None and inc_loss is None:
        if spec.beats(new.val, incumbent.val):
            return Decision("new", f"beats the previous champion {incumbent.label} on validation "
                                   f"({spec.key_metric} {_m(new.val)} vs {_m(incumbent.val)}) and its naive baseline")
        return Decision("incumbent", f"{incumbent.label} kept: the new version is not better on validation "
                                     f"({spec.key_metric} {_m(new.val)} vs {_m(incumbent.val)}){base_txt}")
    if new_loss is None:
        why = "no naive baseline to compare" if baseline is None else (
            f"not worse than its naive baseline ({spec.key_metric} {_m(new.val)} vs {_m(baseline.val)} on "
            f"validation, {_m(new.test)} vs {_m(baseline.test)} on test)")
        if incumbent is not None:
            why += f"; the previous champion {incumbent.label} loses to the baseline ({inc_loss})"
        return Decision("new", why)
    if inc_loss is None:
        return Decision("incumbent", f"{incumbent.label} kept: the new version loses ({new_loss})")
    if baseline_servable:
        return Decision("baseline", f"the model loses to its naive baseline ({new_loss}): the baseline serves")
    if incumbent is not None and not spec.beats(new.val, incumbent.val):
        return Decision("incumbent", f"{incumbent.label} kept: the new version loses ({new_loss}) and the "
                                     "baseline reads columns the model's inputs lack, so it cannot serve")
    return Decision("new", f"loses to its naive baseline ({new_loss}), but the baseline reads columns the "
                           "model's inputs lack, so it cannot serve")


def _incumbent(lake: Lakehouse, spec: ModelSpec, splits: dict[str, pd.DataFrame]
               ) -> tuple[str | None, Contender | None, str]:
    """The current champion *model* re-scored on this training's splits: (version, contender, note).

    A baseline champion is no contender (the new training's baseline replaces it); a champion
    that cannot be loaded or scored any more (its features changed) is none either.
    """
    version = alias_version(lake.settings, spec, CHAMPION)
    if version is None or version_role(lake.settings, spec, version) != MODEL_ROLE:
        return version, None, ""
    try:
        old = load_champion(lake.settings, spec.name).unwrap_python_model().model
        val = old.evaluate(splits["valid"]) if len(splits["valid"]) else {}
        test = old.evaluate(splits["test"]) if len(splits["test"]) else {}
    except Exception as exc:  # noqa: BLE001 - an old champion that no longer scores is replaced
        return version, None, f"previous champion v{version} cannot score the new data ({type(exc).__name__})"
    return version, Contender(f"v{version}", _clean(val.get(spec.key_metric)),
                              _clean(test.get(spec.key_metric))), ""


def _prefixed(prefix: str, metrics: dict[str, float]) -> dict[str, float]:
    return {f"{prefix}{k}": float(v) for k, v in metrics.items() if v is not None and not math.isnan(float(v))}


def train_model(lake: Lakehouse, spec: ModelSpec, params: dict[str, Any] | None = None,
                frame: pd.DataFrame | None = None, register: bool = True) -> TrainResult:
    """Train, evaluate, log and register one catalog entry."""
    import mlflow
    from mlflow.models import infer_signature

    start = time.monotonic()
    frame = load_feature_frame(lake, spec.feature_table) if frame is None else frame
    model, splits = fit_model(spec, frame, params)
    val = model.evaluate(splits["valid"]) if len(splits["valid"]) else {}
    test = model.evaluate(splits["test"]) if len(splits["test"]) else {}
    base_val = model.evaluate_baseline(splits["valid"]) if len(splits["valid"]) else {}
    base_test = model.evaluate_baseline(splits["test"]) if len(splits["test"]) else {}
    tkey = spec.time_key
    data_range = (str(splits["train"][tkey].min()), str(splits["train"][tkey].max()))
    rows = {k: len(v) for k, v in splits.items()}
    result = TrainResult(spec.name, None, False, spec.key_metric, val, test, base_test, rows, 0.0,
                         data_range=data_range, baseline_val=base_val)
    if not register:
        result.seconds = time.monotonic() - start
        return result

    experiment_id = configure_mlflow(lake.settings)
    key = spec.key_metric
    baseline = model.naive()
    base_contender = (Contender("naive baseline", _clean(base_val.get(key)), _clean(base_test.get(key)))
                      if base_val.get(key) is not None or base_test.get(key) is not None else None)
    inc_version, incumbent, inc_note = _incumbent(lake, spec, splits)
    if inc_note:
        result.notes.append(inc_note)
    decision = choose_champion(spec, Contender("new", _clean(val.get(key)), _clean(test.get(key))),
                               base_contender, incumbent, baseline_servable=baseline is not None)
    example_src = splits["test"] if len(splits["test"]) else splits["train"]
    example = signature_frame(example_src[model.features].head(5).reset_index(drop=True), model.features)
    with warnings.catch_warnings():
        # MLflow hints that integer columns cannot hold missing values: scoring casts every
        # feature to the signature's types first (scoring.signature_frame), so the hint is noise.
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer", category=UserWarning)
        signature = infer_signature(example, model.predict(example))
    name = lake.settings.registered_model_name(spec.name)
    with mlflow.start_run(experiment_id=experiment_id, run_name=spec.name) as run:
        mlflow.set_tags({
            "model": spec.name, "domain": spec.domain, "algorithm": spec.algorithm,
            "feature_table": spec.feature_table, "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "train_start": data_range[0], "train_end": data_range[1],
            "valid_end": str(splits["valid"][tkey].max()) if len(splits["valid"]) else "",
            "test_end": str(splits["test"][tkey].max()) if len(splits["test"]) else "",
        })
        mlflow.log_params({k: json.dumps(v) if isinstance(v, dict | list | tuple) else v
                           for k, v in model.params.items()})
        mlflow.log_params({"problem_type": spec.problem_type, "label": spec.label or "",
                           "n_features": len(model.features),
                           **{f"rows_{k}": v for k, v in rows.items()}})
        mlflow.log_metrics({**_prefixed("val_", val), **_prefixed("test_", test),
                            **_prefixed("baseline_val_", base_val), **_prefixed("baseline_test_", base_test)})
        imp = model.importances()
        if imp:
            mlflow.log_dict(dict(sorted(imp.items(), key=lambda kv: -kv[1])), "feature_importances.json")
        mlflow.set_tag("serving_decision", f"{decision.winner}: {decision.reason}")
        logged = {}
        for role, pyfunc_model in ((MODEL_ROLE, model), (BASELINE_ROLE, baseline)):
            if role == BASELINE_ROLE and decision.winner != "baseline":
                continue
            # The baseline has the model's signature: serving and the streams need no change.
            info = mlflow.pyfunc.log_model(
                name=role, python_model=CatalogPyfunc(pyfunc_model), signature=signature, input_example=example,
                pip_requirements=pip_requirements(spec), code_paths=model_code_paths(),
                registered_model_name=name, await_registration_for=0,
            )
            logged[role] = str(info.registered_model_version)
        result.run_id = run.info.run_id
    result.version = logged[MODEL_ROLE]
    tag_version(lake.settings, spec, result.version, MODEL_ROLE, _clean(val.get(key)))
    if BASELINE_ROLE in logged:
        tag_version(lake.settings, spec, logged[BASELINE_ROLE], BASELINE_ROLE, _clean(base_val.get(key)),
                    baseline_of=result.version)
    champion = {"new": result.version, "baseline": logged.get(BASELINE_ROLE), "incumbent": inc_version}[decision.winner]
    set_serving(lake.settings, spec, result.version, champion, decision.reason)
    result.promoted = champion == result.version
    result.serving = {"new": f"model v{champion}", "baseline": f"baseline v{champion}",
                      "incumbent": f"previous model v{champion}"}[decision.winner]
    result.serving_reason = decision.reason
    result.seconds = time.monotonic() - start
    return result


def train_models(lake: Lakehouse, specs: list[ModelSpec], params: dict[str, Any] | None = None,
                 build: bool = True) -> list[TrainResult]:
    """Train several entries (building their feature tables first), one feature read per table.

    An entry whose feature table cannot be built on this estate (its driving Gold table is
    missing: the account lacks that system table) is skipped with a note and comes back as a
    result with ``skipped`` set; the others train as usual.
    """
    from health_monitor.features import build_features, missing_driving, source_hint

    if build:
        with progress.step("building feature tables"):
            build_features(lake, tables=sorted({s.feature_table for s in specs}))
    frames: dict[str, pd.DataFrame] = {}
    results = []
    for i, spec in enumerate(specs, 1):
        driving = missing_driving(lake, spec.feature_table)
        if driving:
            why = f"no Gold {driving} (from {source_hint(driving)}) for {spec.feature_table}"
            progress.info(f"[{i}/{len(specs)}] skip {spec.name}: {why}")
            results.append(TrainResult(spec.name, None, False, spec.key_metric, {}, {}, {}, {}, 0.0,
                                       skipped=why))
            continue
        with progress.step(f"[{i}/{len(specs)}] training {spec.name} ({spec.algorithm})"):
            if spec.feature_table not in frames:
                frames[spec.feature_table] = load_feature_frame(lake, spec.feature_table)
            try:
                res = train_model(lake, spec, params, frame=frames[spec.feature_table])
            except HealthMonitorError as exc:
                # No rows to learn from because an input of this model is absent (an SLA model
                # without SLA definitions): skip it by name; without a missing input it is a bug.
                absent = [t for t in spec.gold_tables if not lake.exists(t, "gold")]
                if not absent:
                    raise
                reason = str(exc).removeprefix(f"{spec.name}: ")
                why = f"{reason} (no Gold {', '.join(f'{t} (from {source_hint(t)})' for t in absent)})"
                progress.info(f"[{i}/{len(specs)}] skip {spec.name}: {why}")
                results.append(TrainResult(spec.name, None, False, spec.key_metric, {}, {}, {}, {}, 0.0,
                                           skipped=why))
                continue
            progress.info(f"    {spec.key_metric}: test {_fmt(res.test_metric)} "
                          f"(baseline {_fmt(res.baseline_metric)}, target {spec.target_text}); "
                          f"version {res.version}; serving {res.serving}: {res.serving_reason}")
        results.append(res)
    return results


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"
