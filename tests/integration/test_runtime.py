"""The lakehouse runtime: naming, reads and writes, single-writer locks, Java check."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from health_monitor.errors import HealthMonitorError, TableBusyError
from health_monitor.runtime import Lakehouse, check_java
from health_monitor.settings import load_settings


def test_data_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("HEALTH_MONITOR_HOME", str(tmp_path / "env"))
    assert load_settings().data_dir == (tmp_path / "env").resolve()
    assert load_settings(tmp_path / "arg").data_dir == (tmp_path / "arg").resolve()
    monkeypatch.delenv("HEALTH_MONITOR_HOME")
    assert load_settings().data_dir.name == ".health-monitor"


def test_table_names_local_and_databricks(tmp_path, monkeypatch):
    local = Lakehouse(load_settings(tmp_path))
    assert local.table_name("fact_usage") == f"delta.`{tmp_path.resolve()}/lake/gold/fact_usage`"
    monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", "17.3")
    remote = Lakehouse(load_settings(catalog="prod"))
    assert remote.table_name("fact_usage") == "prod.gold.fact_usage"
    assert remote.table_name("billing.usage", "system") == "system.billing.usage"
    assert remote.settings.registry_uri == "databricks-uc"
    assert remote.settings.registered_model_name("budget_forecaster") == "prod.ml.budget_forecaster"
    with pytest.raises(ValueError):
        remote.table_name("x", "nolayer")


def test_write_merge_and_count(lake):
    lake.write(lake.spark.range(10), "numbers", "gold")
    lake.merge(lake.spark.range(5, 15), "numbers", ["id"], "gold")
    lake.merge(lake.spark.range(5, 15), "numbers", ["id"], "gold")  # rerun: no duplicates
    assert lake.count("numbers") == 15
    assert ("gold", "numbers") in lake.list_tables()


def test_missing_table_is_one_line_error(lake):
    with pytest.raises(HealthMonitorError, match="does not exist"):
        lake.read("fact_usage")


def test_second_writer_process_is_refused(lake):
    code = (
        "import sys; from health_monitor.runtime import Lakehouse; from health_monitor.settings import load_settings\n"
        f"lake = Lakehouse(load_settings({str(lake.settings.data_dir)!r}))\n"
        "with lake.writer_lock('fact_usage'):\n"
        "    print('locked', flush=True); sys.stdin.read()\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(TableBusyError, match=f"pid {holder.pid}"), lake.writer_lock("fact_usage"):
            pass
        with lake.writer_lock("other_table"), lake.writer_lock("other_table"):  # re-entrant in-process
            pass
    finally:
        holder.communicate("")
    with lake.writer_lock("fact_usage"):
        pass


def test_java_missing_is_one_line_error(monkeypatch, tmp_path):
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "nojava"))
    with pytest.raises(HealthMonitorError, match="Java 17 or 21 is required") as err:
        check_java()
    assert "\n" not in str(err.value)
    monkeypatch.delenv("JAVA_HOME")
    if os.environ.get("JAVA_HOME") is None:
        assert check_java()
