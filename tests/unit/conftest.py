"""The unit tier: pure Python and pandas, no Spark, no JVM.

Any test here that asks for a Spark session (directly or through ``lake``/``tiny_estate``) fails
with a pointer to ``tests/integration``; and no JVM may start at all in this tier (the gateway
launcher is replaced for the session), so a test cannot reach Spark through the back door of a
CLI command either.
"""

from __future__ import annotations

import pytest


def _no_jvm(*_args: object, **_kwargs: object) -> None:
    raise RuntimeError("tests/unit must not start a JVM: move this test to tests/integration")


@pytest.fixture(autouse=True)
def _forbid_jvm(monkeypatch: pytest.MonkeyPatch) -> None:
    """Replace pyspark's gateway launcher for each unit test. Per test, not per session: `make
    test` runs both tiers in one pytest session, and the integration tests after these must
    start their JVM."""
    import pyspark.context
    import pyspark.java_gateway

    monkeypatch.setattr(pyspark.java_gateway, "launch_gateway", _no_jvm)
    monkeypatch.setattr(pyspark.context, "launch_gateway", _no_jvm)


@pytest.fixture(scope="session")
def spark() -> None:
    """Shadows the root ``spark`` fixture: the unit tier has no Spark session."""
    pytest.fail("tests/unit must not use Spark (the spark, lake or tiny_estate fixture): "
                "move this test to tests/integration", pytrace=False)
