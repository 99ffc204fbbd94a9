"""One settings object for both places the monitor runs: the local lakehouse and Databricks.

Only the session, the table names and the registry URI differ between the two; everything
else reads these settings and never branches on the environment by itself.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

DEFAULT_DATA_DIR = ".health-monitor"

#: Logical layers. Each maps to one schema on Databricks and one folder locally.
LAYERS = ("system", "gold", "features", "ml", "monitor", "simulator")


def running_on_databricks() -> bool:
    """True inside a Databricks cluster or serverless job (the runtime sets this variable)."""
    return "DATABRICKS_RUNTIME_VERSION" in os.environ


@dataclass(frozen=True)
class Settings:
    """Where tables, checkpoints and models live.

    Attributes:
        environment: ``"local"`` (embedded lakehouse) or ``"databricks"``.
        data_dir: root of the local lakehouse (Delta tables, checkpoints, MLflow store).
        catalog: Unity Catalog catalog for the monitor's own tables on Databricks.
        system_catalog: where the system tables come from (``system`` on Databricks).
        schemas: logical layer -> schema name.
    """

    environment: str = "local"
    data_dir: Path = field(default_factory=lambda: Path(DEFAULT_DATA_DIR).resolve())
    catalog: str = "health_monitor"
    system_catalog: str = "system"
    schemas: dict[str, str] = field(
        default_factory=lambda: {
            "system": "system",
            "gold": "gold",
            "features": "features",
            "ml": "ml",
            "monitor": "monitor",
            "simulator": "simulator",
        }
    )

    @property
    def is_databricks(self) -> bool:
        return self.environment == "databricks"

    @property
    def gold_schema(self) -> str:
        return self.schemas["gold"]

    @property
    def lake_dir(self) -> Path:
        """Folder holding the local Delta tables, one sub-folder per layer."""
        return self.data_dir / "lake"

    @property
    def checkpoint_dir(self) -> Path:
        return self.data_dir / "checkpoints"

    @property
    def mlflow_dir(self) -> Path:
        return self.data_dir / "mlflow"

    @property
    def tracking_uri(self) -> str:
        """MLflow tracking store: SQLite in the data directory locally, the workspace on Databricks."""
        if self.is_databricks:
            return "databricks"
        return f"sqlite:///{self.mlflow_dir / 'mlflow.db'}"

    @property
    def registry_uri(self) -> str:
        """Model registry: the same SQLite store locally, Unity Catalog on Databricks."""
        if self.is_databricks:
            return "databricks-uc"
        return self.tracking_uri

    @property
    def artifact_dir(self) -> Path:
        return self.mlflow_dir / "artifacts"

    def registered_model_name(self, model: str) -> str:
        """``health_monitor.<model>`` locally, ``<catalog>.<ml schema>.<model>`` in Unity Catalog."""
        if self.is_databricks:
            return f"{self.catalog}.{self.schemas['ml']}.{model}"
        return f"health_monitor.{model}"

    def with_data_dir(self, data_dir: str | Path) -> Settings:
        return replace(self, data_dir=Path(data_dir).expanduser().resolve())


def load_settings(data_dir: str | Path | None = None, catalog: str | None = None) -> Settings:
    """Settings from arguments, then environment variables, then defaults.

    ``data_dir`` (``--data-dir``) wins over ``HEALTH_MONITOR_HOME``, which wins over ``./.health-monitor``.
    """
    env = "databricks" if running_on_databricks() else "local"
    catalog = catalog or os.environ.get("HEALTH_MONITOR_CATALOG") or Settings.catalog
    # On Databricks the working directory is ephemeral: build state and stream checkpoints live in
    # the Unity Catalog volume that 'health-monitor setup' creates.
    default_root = volume_path(catalog) if env == "databricks" else DEFAULT_DATA_DIR
    root = data_dir or os.environ.get("HEALTH_MONITOR_HOME") or default_root
    return Settings(environment=env, data_dir=Path(root).expanduser().resolve(), catalog=catalog)


#: The Unity Catalog volume (in the monitor schema) that holds build state and checkpoints.
STATE_VOLUME = "state"


def volume_path(catalog: str, schema: str = "monitor") -> str:
    """``/Volumes/<catalog>/<schema>/state``: the monitor's file state on Databricks."""
    return f"/Volumes/{catalog}/{schema}/{STATE_VOLUME}"
