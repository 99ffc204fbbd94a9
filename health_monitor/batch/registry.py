"""MLflow tracking and the model registry: champion / challenger promotion.

Locally the tracking store is SQLite and artifacts live in the data directory; on Databricks the
workspace tracking server and Unity Catalog. Every new version becomes ``challenger``; it takes
``champion`` only when its validation metric beats the current champion's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from health_monitor.catalog import ModelSpec
from health_monitor.settings import Settings

EXPERIMENT = "health_monitor_training"
CHAMPION = "champion"
CHALLENGER = "challenger"


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


def _version_metric(cl, version) -> float | None:  # noqa: ANN001
    tag = version.tags.get("val_metric") if version.tags else None
    if tag not in (None, "", "nan"):
        return float(tag)
    return None


def alias_version(settings: Settings, spec: ModelSpec, alias: str) -> str | None:
    """The version number holding ``alias`` or None."""
    from mlflow.exceptions import MlflowException

    cl = client(settings)
    try:
        return str(cl.get_model_version_by_alias(settings.registered_model_name(spec.name), alias).version)
    except MlflowException:
        return None


def promote(settings: Settings, spec: ModelSpec, version: str, val_metric: float | None) -> bool:
    """Give ``version`` the challenger alias, and champion if it beats the current champion.

    The comparison is on the validation split's key metric (direction from the catalog). The
    metric is stored as a version tag so later promotions compare like with like.
    Returns True when the version became champion.
    """
    from mlflow.exceptions import MlflowException

    cl = client(settings)
    name = settings.registered_model_name(spec.name)
    metric_text = "nan" if val_metric is None or val_metric != val_metric else repr(float(val_metric))
    cl.set_model_version_tag(name, version, "val_metric", metric_text)
    cl.set_model_version_tag(name, version, "key_metric", spec.key_metric)
    cl.set_registered_model_alias(name, CHALLENGER, version)
    try:
        current = cl.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        current = None
    if current is not None and str(current.version) == str(version):
        return True
    current_metric = _version_metric(cl, current) if current is not None else None
    new_metric = None if metric_text == "nan" else float(metric_text)
    wins = current is None or spec.beats(new_metric, current_metric) or (
        current_metric is None and new_metric is None)
    if wins:
        cl.set_registered_model_alias(name, CHAMPION, version)
        cl.set_model_version_tag(name, version, "promoted", "true")
    else:
        cl.set_model_version_tag(name, version, "promoted", "false")
    return wins


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
    metric = baseline = None
    trained_at = None
    if shown.run_id:
        run = cl.get_run(shown.run_id)
        metric = run.data.metrics.get(f"test_{spec.key_metric}")
        baseline = run.data.metrics.get(f"baseline_test_{spec.key_metric}")
        trained_at = run.data.tags.get("trained_at")
    return VersionInfo(spec.name, str(latest.version), champ, chall, metric, baseline, trained_at, shown.run_id)
