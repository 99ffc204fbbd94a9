"""Champions for the streams' Python workers: the registry URIs MLflow 3 accepts, and champions
the driver loads once and hands to the workers (Databricks: workers have no registry access)."""

from __future__ import annotations

import cloudpickle
import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature

from health_monitor.settings import load_settings
from health_monitor.streaming.registered import (
    WorkerRegistry,
    domain_champions,
    preload,
    tracking_uri_for,
    worker_registry,
)


class Doubler(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):  # noqa: ANN001, ANN201, ARG002
        return model_input["x"].to_numpy() * 0.5


def test_unity_catalog_registry_goes_with_the_databricks_tracking_uri():
    assert tracking_uri_for("databricks-uc") == "databricks"
    assert tracking_uri_for("sqlite:///x/mlflow.db") == "sqlite:///x/mlflow.db"
    # What the workers used to build: MLflow 3 refuses Unity Catalog as a tracking store.
    with pytest.raises(MlflowException, match="tracking URI"):
        MlflowClient(tracking_uri="databricks-uc", registry_uri="databricks-uc")
    MlflowClient(tracking_uri=tracking_uri_for("databricks-uc"), registry_uri="databricks-uc")


def test_local_workers_look_champions_up_themselves(tmp_path):
    reg = worker_registry(load_settings(tmp_path), ("cost_anomaly_detector",))
    assert reg.preloaded is None and reg.registry_uri.startswith("sqlite:///")
    assert domain_champions(reg, ["health_monitor.nothing_registered"]) == []  # no store yet: cold start


@pytest.fixture
def mlflow_uris():
    """Put MLflow's process-wide URIs back after the test."""
    before = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    yield
    mlflow.set_tracking_uri(before[0])
    mlflow.set_registry_uri(before[1])


def test_preloaded_champions_travel_to_workers_without_the_registry(tmp_path, mlflow_uris):  # noqa: ARG001
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    x = pd.DataFrame({"x": [0.2, 1.0]})
    experiment = mlflow.create_experiment("workers", artifact_location=(tmp_path / "artifacts").as_uri())
    with mlflow.start_run(experiment_id=experiment):
        info = mlflow.pyfunc.log_model(name="model", python_model=Doubler(), registered_model_name="hm.doubler",
                                       signature=infer_signature(x, np.array([0.1, 0.5])))
    MlflowClient(tracking_uri=uri, registry_uri=uri).set_registered_model_alias(
        "hm.doubler", "champion", info.registered_model_version)

    reg = preload(uri, ["hm.doubler", "hm.never_trained"])
    assert [(m.name, m.version, m.inputs) for m in reg.preloaded] == [("hm.doubler", "1", ["x"])]
    # The worker side: the context arrives pickled and the store is gone; the champion still scores.
    (tmp_path / "mlflow.db").unlink()
    shipped = cloudpickle.loads(cloudpickle.dumps({"registry_uri": reg}))["registry_uri"]
    assert isinstance(shipped, WorkerRegistry)
    (champ,) = domain_champions(shipped, ["hm.doubler"])
    assert champ.score(pd.DataFrame({"x": [0.4, 2.0]})).tolist() == [0.2, 1.0]
