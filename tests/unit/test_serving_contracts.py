"""Serving contracts and start-up rules without a server or Spark: validation messages, risk
levels, the token and bind-address rules, Prometheus text."""

from __future__ import annotations

import pandas as pd
import pytest
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema

from health_monitor.catalog import ENDPOINTS, get_model
from health_monitor.errors import HealthMonitorError
from health_monitor.serving.contracts import RequestError, build_contract
from health_monitor.serving.server import TOKEN_ENV, is_loopback, resolve_token
from health_monitor.serving.telemetry import Metrics
from health_monitor.settings import load_settings


def _contract():  # noqa: ANN202
    spec = get_model("job_failure_predictor")
    sig = ModelSignature(
        inputs=Schema([ColSpec("double", "prior_run_count"), ColSpec("string", "job_name"),
                       ColSpec("datetime", "start_time")]),
        outputs=Schema([ColSpec("double", "failure_probability"), ColSpec("string", "risk_level")]))
    return build_contract("job-failure-risk", spec, sig)


def test_records_are_typed_from_the_signature_and_mistakes_are_named() -> None:
    c = _contract()
    frame = c.records_frame([{"prior_run_count": 3, "job_name": "etl", "start_time": "2026-11-01T10:00:00+01:00"},
                             {"prior_run_count": None, "job_name": None, "start_time": None}])
    assert frame["prior_run_count"].dtype == "float64"
    assert frame["start_time"].iloc[0] == pd.Timestamp("2026-11-01 09:00:00")  # aware -> UTC, naive
    bad = {
        "lacks 1 feature(s): start_time": {"prior_run_count": 1, "job_name": "x"},
        "must be a number": {"prior_run_count": "1", "job_name": "x", "start_time": None},
        "must be a finite number": {"prior_run_count": float("inf"), "job_name": "x", "start_time": None},
        "not an ISO-8601": {"prior_run_count": 1, "job_name": "x", "start_time": "yesterday-ish"},
        "unknown field(s): extra": {"prior_run_count": 1, "job_name": "x", "start_time": None, "extra": 1},
        "must be a string": {"prior_run_count": 1, "job_name": {"a": 1}, "start_time": None},
    }
    for message, record in bad.items():
        with pytest.raises(RequestError, match=message.replace("(", r"\(").replace(")", r"\)")):
            c.records_frame([record])


def test_risk_levels_and_schemas() -> None:
    c = _contract()
    assert [c.risk_level(p) for p in (0.1, 0.3, 0.6, 0.9)] == ["LOW", "MEDIUM", "HIGH", "CRITICAL"]
    assert c.lookup_keys == ["workspace_id", "job_id"]  # a run id is not what a caller knows
    req = c.request_schema()
    assert req["properties"]["records"]["items"]["required"] == ["prior_run_count", "job_name", "start_time"]
    assert set(c.response_schema()["required"]) == {"model", "version", "predictions"}
    assert set(ENDPOINTS) >= {"job-failure-risk", "cost-anomaly"}


def test_token_rules(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    from health_monitor.runtime import Lakehouse

    lake = Lakehouse(load_settings(tmp_path / "hm"))
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3")
    with pytest.raises(HealthMonitorError, match="refusing to serve on 0.0.0.0 without a token"):
        resolve_token(lake, "0.0.0.0", None)
    token, source = resolve_token(lake, "127.0.0.1", None)
    assert len(token) >= 32 and "generated" in source
    assert (tmp_path / "hm" / "serving" / "token").stat().st_mode & 0o077 == 0
    assert resolve_token(lake, "127.0.0.1", None)[0] == token  # stable across restarts
    monkeypatch.setenv(TOKEN_ENV, "short")
    with pytest.raises(HealthMonitorError, match="shorter than 16"):
        resolve_token(lake, "0.0.0.0", None)
    monkeypatch.setenv(TOKEN_ENV, "x" * 20)
    assert resolve_token(lake, "0.0.0.0", None) == ("x" * 20, f"${TOKEN_ENV}")
    with pytest.raises(HealthMonitorError, match="cannot read token file"):
        resolve_token(lake, "0.0.0.0", str(tmp_path / "absent"))


def test_prometheus_text() -> None:
    m = Metrics()
    m.observe("cost-anomaly", 200, 0.004)
    m.observe("cost-anomaly", 200, 0.03)
    m.observe("cost-anomaly", 422, 0.001)
    text = m.render()
    assert 'health_monitor_requests_total{endpoint="cost-anomaly",status="200"} 2' in text
    assert 'health_monitor_request_seconds_bucket{endpoint="cost-anomaly",le="0.005"} 2' in text
    assert 'health_monitor_request_seconds_bucket{endpoint="cost-anomaly",le="+Inf"} 3' in text
    assert 'health_monitor_request_seconds_count{endpoint="cost-anomaly"} 3' in text
