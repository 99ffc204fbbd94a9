"""Shared fixtures: one SparkSession for the whole test session, small lakehouses per test.

Spark start-up costs seconds and a JVM's memory; every test shares the one session and gets its
own data directory instead. ``tiny_estate`` simulates one small estate once per session for the
tests that need realistic Gold data; treat it as read-only.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from health_monitor.runtime import Lakehouse, get_spark, stop_spark
from health_monitor.settings import Settings, load_settings

#: The one estate the whole suite shares (small on purpose: CI has 2 cores).
TINY_ESTATE = {"days": 45, "workspaces": 2, "seed": 11, "scale": 0.25}


@pytest.fixture(scope="session")
def spark_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("spark-home")


@pytest.fixture(scope="session")
def spark(spark_home: Path) -> Iterator:
    session = get_spark(load_settings(spark_home))
    yield session
    stop_spark()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings for a fresh, empty local lakehouse in this test's temp folder."""
    return load_settings(tmp_path / "hm")


@pytest.fixture
def lake(settings: Settings, spark) -> Lakehouse:  # noqa: ANN001
    """An empty lakehouse on the shared SparkSession."""
    return Lakehouse(settings, spark)


@pytest.fixture(scope="session")
def tiny_estate(tmp_path_factory: pytest.TempPathFactory, spark) -> Lakehouse:  # noqa: ANN001
    """A small simulated estate (system tables, Gold, ground truth), built once per session."""
    from health_monitor.gold.simulator import simulate

    lake = Lakehouse(load_settings(tmp_path_factory.mktemp("tiny-estate")), spark)
    simulate(lake, **TINY_ESTATE)
    return lake
