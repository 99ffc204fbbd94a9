"""On Databricks the monitor's file state and schemas resolve to Unity Catalog, not the working directory."""

from __future__ import annotations

from pathlib import Path

from health_monitor.cli.setup import statements
from health_monitor.settings import load_settings


def test_state_resolves_to_the_catalog_volume_on_databricks(monkeypatch):
    monkeypatch.delenv("HEALTH_MONITOR_HOME", raising=False)
    monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", "17.3")
    s = load_settings(catalog="prod")
    assert s.data_dir == Path("/Volumes/prod/monitor/state")
    assert s.checkpoint_dir == Path("/Volumes/prod/monitor/state/checkpoints")
    monkeypatch.delenv("DATABRICKS_RUNTIME_VERSION")
    assert load_settings(catalog="prod").data_dir.name == ".health-monitor"


def test_setup_creates_every_schema_and_the_state_volume():
    sql = statements("prod", load_settings().schemas)
    assert "CREATE SCHEMA IF NOT EXISTS `prod`.`gold`" in sql
    assert sql[-1] == "CREATE VOLUME IF NOT EXISTS `prod`.`monitor`.`state`"
    assert len(sql) == 5
