"""The serving endpoints over real HTTP: a uvicorn server on 127.0.0.1 in this process, real
champions in a real MLflow registry, the inference table in Delta."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator

import pandas as pd
import pytest
import requests
from model_estate import featured_lake

from health_monitor.batch.registry import CHAMPION, alias_version, client
from health_monitor.batch.trainer import load_feature_frame, train_model
from health_monitor.catalog import ENDPOINTS, get_model
from health_monitor.runtime import Lakehouse
from health_monitor.serving.app import ServerConfig
from health_monitor.serving.models import ModelSet
from health_monitor.serving.server import BackgroundServer
from health_monitor.settings import load_settings

FAST = {"n_estimators": 12, "use_prophet": False, "max_iter": 60, "n_paths": 100, "horizon": 40}
TOKEN = "test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
#: Trained here: a classifier with keys (job runs) and an anomaly detector (workspace-days).
TRAINED = ("job_failure_predictor", "cost_anomaly_detector")


@pytest.fixture(scope="module")
def served_lake(tmp_path_factory, spark) -> Lakehouse:  # noqa: ANN001
    """A lake of its own (registry included) with two champions and their feature tables, so the
    training tests' registry is untouched."""
    source = featured_lake(tmp_path_factory, spark)
    lake = Lakehouse(load_settings(tmp_path_factory.mktemp("serving")), spark)
    for name in TRAINED:
        spec = get_model(name)
        dst = lake.location(spec.feature_table, "features")
        if not dst.exists():
            shutil.copytree(source.location(spec.feature_table, "features"), dst)
        train_model(lake, spec, FAST, frame=load_feature_frame(source, spec.feature_table))
    return lake


def _background(lake: Lakehouse) -> BackgroundServer:
    models = ModelSet(lake)
    models.reload()
    return BackgroundServer(models, ServerConfig(token=TOKEN, reload_s=3600))


@pytest.fixture(scope="module")
def server(served_lake: Lakehouse) -> Iterator[BackgroundServer]:
    srv = _background(served_lake).start()
    yield srv
    srv.stop()


def post(server: BackgroundServer, ep: str, body: object, headers: dict | None = None) -> requests.Response:
    data = body if isinstance(body, bytes | str) else json.dumps(body)
    return requests.post(f"{server.url}/{ep}", data=data, timeout=30,
                         headers={**AUTH, "Content-Type": "application/json", **(headers or {})})


def test_every_route_but_health_and_openapi_needs_the_token(server: BackgroundServer) -> None:
    assert requests.get(f"{server.url}/health", timeout=10).status_code == 200
    assert requests.get(f"{server.url}/openapi.json", timeout=10).status_code == 200
    for ep in ENDPOINTS:
        r = requests.post(f"{server.url}/{ep}", json={"keys": [{"job_id": "1"}]}, timeout=10)
        assert r.status_code == 401, ep
        wrong = requests.post(f"{server.url}/{ep}", json={}, timeout=10, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401, ep
    assert requests.get(f"{server.url}/metrics", timeout=10).status_code == 401
    assert requests.post(f"{server.url}/admin/reload", timeout=10).status_code == 401
    assert requests.get(f"{server.url}/no-such-route", timeout=10).status_code == 401


def test_predictions_by_keys_and_by_features_single_and_batch(server: BackgroundServer) -> None:
    spec = get_model("job_failure_predictor")
    doc = requests.get(f"{server.url}/openapi.json", timeout=10).json()
    examples = doc["paths"]["/job-failure-risk"]["post"]["requestBody"]["content"]["application/json"]["examples"]
    by_keys = post(server, "job-failure-risk", examples["by_keys"]["value"])
    assert by_keys.status_code == 200, by_keys.text
    body = by_keys.json()
    # The champion serves, whether the model or its naive baseline (where the model lost to it).
    champion = alias_version(server.models.lake.settings, spec, CHAMPION)
    assert body["model"] == spec.name and body["version"] == champion
    pred = body["predictions"][0]
    assert set(pred["prediction"]) == set(spec.outputs)
    assert 0.0 <= pred["prediction"]["failure_probability"] <= 1.0
    assert pred["risk_level"] in {"LOW", "MEDIUM", "HIGH", "CRITICAL"}
    assert pred["key"]["job_id"] == examples["by_keys"]["value"]["keys"][0]["job_id"]
    assert all({"feature", "value", "z"} <= set(r) for r in pred["top_reasons"])
    # The same entity by its features gives the same prediction.
    record = examples["by_features"]["value"]["records"][0]
    by_features = post(server, "job-failure-risk", {"records": [record]})
    assert by_features.status_code == 200, by_features.text
    # Batch: every known job at once, one answer per key, in order.
    jobs = list(server.models.store.table("job-failure-risk").by_entity)[:25]
    batch = post(server, "job-failure-risk", {"keys": [{"job_id": j[0]} for j in jobs]})
    assert batch.status_code == 200, batch.text
    assert [p["key"]["job_id"] for p in batch.json()["predictions"]] == [j[0] for j in jobs]
    # An anomaly detector keyed by workspace.
    ws = server.models.store.table("cost-anomaly").example_key
    cost = post(server, "cost-anomaly", {"keys": [ws]})
    assert cost.status_code == 200, cost.text
    assert "anomaly_score" in cost.json()["predictions"][0]["prediction"]


def test_bad_input_gets_a_4xx_or_503_that_says_why(server: BackgroundServer) -> None:
    doc = requests.get(f"{server.url}/openapi.json", timeout=10).json()
    ex = doc["paths"]["/job-failure-risk"]["post"]["requestBody"]["content"]["application/json"]["examples"]
    record = ex["by_features"]["value"]["records"][0]
    numeric = next(k for k, v in record.items() if isinstance(v, float))
    cases = {
        "not json": (b"{not json", 400, "not valid JSON"),
        "empty": (b"", 400, "empty body"),
        "missing field": ({"records": [{k: v for k, v in record.items() if k != numeric}]}, 422, numeric),
        "wrong type": ({"records": [{**record, numeric: "abc"}]}, 422, "must be a number"),
        "nan": ('{"records": [' + json.dumps({**record, numeric: 0}).replace(f'"{numeric}": 0', f'"{numeric}": NaN')
                + "]}", 422, "NaN"),
        "infinity": ('{"records": [' + json.dumps({**record, numeric: 0}).replace(
            f'"{numeric}": 0', f'"{numeric}": Infinity') + "]}", 422, "Infinity"),
        "unknown field": ({"records": [{**record, "bogus": 1}]}, 422, "bogus"),
        "unknown entity": ({"keys": [{"job_id": "no-such-job"}]}, 404, "unknown entity"),
        "both": ({"records": [record], "keys": [{"job_id": "1"}]}, 422, "exactly one"),
        "not a list": ({"records": 5}, 422, "non-empty list"),
        "too many": ({"records": [{}] * 1001}, 413, "at most"),
        "oversized": (b'{"records": [' + b" " * 1_100_000 + b"]}", 413, "bytes"),
        "array body": ([record], 422, "JSON object"),
    }
    for name, (body, status, text) in cases.items():
        r = post(server, "job-failure-risk", body)
        assert r.status_code == status, (name, r.status_code, r.text)
        assert text in r.json()["error"], (name, r.json())
    untrained = post(server, "retry-success", {"keys": [{"job_id": "1"}]})
    assert untrained.status_code == 503 and "no champion" in untrained.json()["error"]


def test_reload_moves_to_a_new_champion_while_requests_keep_succeeding(server: BackgroundServer,
                                                                      served_lake: Lakehouse) -> None:
    spec = get_model("job_failure_predictor")
    key = server.models.store.table("job-failure-risk").example_key
    statuses: list[int] = []
    versions: set[str] = set()
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            r = post(server, "job-failure-risk", {"keys": [key]})
            statuses.append(r.status_code)
            if r.status_code == 200:
                versions.add(r.json()["version"])

    before = alias_version(served_lake.settings, spec, CHAMPION)
    t = threading.Thread(target=hammer)
    t.start()
    try:
        frame = load_feature_frame(served_lake, spec.feature_table)
        result = train_model(served_lake, spec, {**FAST, "n_estimators": 20}, frame=frame)
        client(served_lake.settings).set_registered_model_alias(
            served_lake.settings.registered_model_name(spec.name), CHAMPION, result.version)
        r = requests.post(f"{server.url}/admin/reload", headers=AUTH, timeout=120)
        assert r.status_code == 200
        assert r.json()["changes"]["job-failure-risk"] == f"v{before} -> v{result.version}"
        time.sleep(0.3)
    finally:
        stop.set()
        t.join(30)
    assert statuses and set(statuses) == {200}
    assert {before, result.version} >= versions and result.version in versions


def test_inference_rows_land_in_delta_after_a_clean_shutdown_and_metrics_count_them(
        served_lake: Lakehouse) -> None:
    from deltalake import DeltaTable

    srv = _background(served_lake).start()
    key = srv.models.store.table("job-failure-risk").example_key
    path = served_lake.location("inference_log", "monitor")
    started = pd.Timestamp.now(tz="UTC")
    for _ in range(7):
        assert post(srv, "job-failure-risk", {"keys": [key]}).status_code == 200
    assert post(srv, "job-failure-risk", b"nope").status_code == 400
    metrics = requests.get(f"{srv.url}/metrics", headers=AUTH, timeout=10).text
    assert 'health_monitor_requests_total{endpoint="job-failure-risk",status="200"} 7' in metrics
    assert 'health_monitor_requests_total{endpoint="job-failure-risk",status="400"} 1' in metrics
    assert 'health_monitor_request_seconds_count{endpoint="job-failure-risk"} 8' in metrics
    srv.stop()  # what uvicorn does on SIGTERM: stop accepting, finish, run the lifespan shutdown
    log = DeltaTable(str(path)).to_pandas()
    mine = log[pd.to_datetime(log["request_time"], utc=True) >= started]
    assert len(mine) == 8
    assert sorted(mine["status"].tolist()) == [200] * 7 + [400]
    name = served_lake.settings.registered_model_name("job_failure_predictor")
    registered = {str(v.version) for v in client(served_lake.settings).search_model_versions(f"name = '{name}'")}
    assert set(mine["model_version"].dropna()) <= registered
    assert (mine["latency_ms"] > 0).all()
    assert json.loads(mine[mine["status"] == 200].iloc[0]["response"])["predictions"]


def test_fuzzing_the_published_openapi_finds_no_server_error(server: BackgroundServer) -> None:
    """Schemathesis generates valid and invalid requests from /openapi.json: none may get a 5xx.

    Endpoints without a champion answer 503 by design (tested above), so the fuzz covers the
    served ones plus health, metrics and reload."""
    import subprocess
    import sys
    from pathlib import Path

    cli = Path(sys.executable).with_name("schemathesis")
    unserved = [f"/{ep}" for ep in ENDPOINTS if ep not in server.models.served]
    excludes = [arg for path in unserved for arg in ("--exclude-path", path)]
    proc = subprocess.run(
        [str(cli), "run", f"{server.url}/openapi.json", "-H", f"Authorization: Bearer {TOKEN}", *excludes,
         "--checks", "not_a_server_error", "--max-examples", "12", "--generation-deterministic",
         "--request-timeout", "30"],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
