"""MLflow tracking and the model registry: champion / challenger promotion.

Locally the tracking store is SQLite and artifacts live in the data directory; on Databricks the
workspace tracking server and Unity Catalog. Every newly trained version becomes ``challenger``;
which version is ``champion`` (the model, its naive baseline, or the previous champion) is the
trainer's decision (:func:`health_monitor.batch.trainer.choose_champion`), recorded here with
its reason.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from health_monitor.catalog import ModelSpec
from health_monitor.settings import Settings

EXPERIMENT = "health_monitor_training"
CHAMPION = "champion"
CHALLENGER = "challenger"
#: Version tag saying what a version is: the trained model or its naive baseline (see
#: :meth:`health_monitor.batch.base.BatchModel.naive`), logged where the model loses to it.
ROLE_TAG = "role"
MODEL_ROLE, BASELINE_ROLE = "model", "baseline"


def configure_mlflow(settings: Settings) -> str:
    """Point MLflow at this data directory's store (or Databricks); returns the experiment id."""
    import mlflow

    # Model loading elsewhere must not try to rebuild environments or reach the network.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if not settings.is_databricks:
        settings.artifact_dir.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.registry_uri)
    name = EXPERIMENT if not settings.is_databricks else f"/Shared/health_monitor/{EXPERIMENT}"
    exp = mlflow.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    if settings.is_databricks:
        return mlflow.create_experiment(name)
    return mlflow.create_experiment(name, artifact_location=settings.artifact_dir.as_uri())


def client(settings: Settings):  # noqa: ANN201 - MlflowClient imported lazily
    """An MlflowClient on this settings' tracking and registry stores."""
    from mlflow.tracking import MlflowClient

    configure_mlflow(settings)
    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.registry_uri)


@dataclass
class VersionInfo:
    """What ``models list`` shows for one registered model."""

    name: str
    version: str | None
    champion_version: str | None
    challenger_version: str | None
    metric: float | None
    baseline: float | None
    trained_at: str | None
    run_id: str | None
    serving_role: str | None = None
    serving_reason: str | None = None


def alias_version(settings: Settings, spec: ModelSpec, alias: str) -> str | None:
    """The version number holding ``alias`` or None."""
    from mlflow.exceptions import MlflowException

    cl = client(settings)
    try:
        return str(cl.get_model_version_by_alias(settings.registered_model_name(spec.name), alias).version)
    except MlflowException:
        return None


def tag_version(settings: Settings, spec: ModelSpec, version: str, role: str, val_metric: float | None,
                baseline_of: str | None = None) -> None:
    """Record a version's role (``model`` or ``baseline``) and validation metric as version tags."""
    cl = client(settings)
    name = settings.registered_model_name(spec.name)
    metric_text = "nan" if val_metric is None or val_metric != val_metric else repr(float(val_metric))
    tags = {ROLE_TAG: role, "val_metric": metric_text, "key_metric": spec.key_metric}
    if baseline_of:
        tags["baseline_of"] = baseline_of
    for key, value in tags.items():
        cl.set_model_version_tag(name, version, key, value)


def version_role(settings: Settings, spec: ModelSpec, version: str | None) -> str | None:
    """``model`` or ``baseline`` for a registered version (versions from before roles: ``model``)."""
    if version is None:
        return None
    cl = client(settings)
    mv = cl.get_model_version(settings.registered_model_name(spec.name), version)
    return (mv.tags or {}).get(ROLE_TAG, MODEL_ROLE)


def set_serving(settings: Settings, spec: ModelSpec, challenger: str, champion: str, reason: str) -> None:
    """Point ``challenger`` at the newest trained version and ``champion`` at the one that serves,
    with the reason on the champion version (``models list`` and the report show it)."""
    cl = client(settings)
    name = settings.registered_model_name(spec.name)
    cl.set_registered_model_alias(name, CHALLENGER, challenger)
    cl.set_registered_model_alias(name, CHAMPION, champion)
    cl.set_model_version_tag(name, champion, "serving_reason", reason)
    cl.set_model_version_tag(name, challenger, "promoted", str(challenger == champion).lower())


def load_champion(settings: Settings, name: str, alias: str = CHAMPION):  # noqa: ANN201
    """The registered pyfunc of catalog model ``name`` at ``alias`` (``champion`` by default)."""
    import mlflow.pyfunc

    configure_mlflow(settings)
    return mlflow.pyfunc.load_model(f"models:/{settings.registered_model_name(name)}@{alias}")


def describe(settings: Settings, spec: ModelSpec) -> VersionInfo:
    """Latest version, aliases, champion's metrics and training time of one catalog model."""
    from mlflow.exceptions import MlflowException

    cl = client(settings)
    name = settings.registered_model_name(spec.name)
    try:
        versions = cl.search_model_versions(f"name = '{name}'")
    except MlflowException:
        versions = []
    if not versions:
        return VersionInfo(spec.name, None, None, None, None, None, None, None)
    latest = max(versions, key=lambda v: int(v.version))
    champ = alias_version(settings, spec, CHAMPION)
    chall = alias_version(settings, spec, CHALLENGER)
    shown = next((v for v in versions if str(v.version) == champ), latest)
    tags = shown.tags or {}
    role = tags.get(ROLE_TAG, MODEL_ROLE) if champ else None
    metric = baseline = None
    trained_at = None
    if shown.run_id:
        # A baseline version is logged in its model's run: its test metric is the run's baseline one.
        run = cl.get_run(shown.run_id)
        prefix = "baseline_test_" if role == BASELINE_ROLE else "test_"
        metric = run.data.metrics.get(f"{prefix}{spec.key_metric}")
        baseline = run.data.metrics.get(f"baseline_test_{spec.key_metric}")
        trained_at = run.data.tags.get("trained_at")
    return VersionInfo(spec.name, str(latest.version), champ, chall, metric, baseline, trained_at, shown.run_id,
                       role, tags.get("serving_reason"))
