"""The ASGI application: nine model endpoints, health, OpenAPI, metrics and reload.

Starlette on uvicorn: Starlette is the routing core FastAPI is built on, without FastAPI's
per-request pydantic layer. Our request models are not Python classes but the MLflow signatures
of whatever version is champion now (they change on reload), so we validate against those
directly and write the OpenAPI document from them; that keeps a single-record request at about a
millisecond of server time.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from health_monitor.serving.contracts import MAX_BODY_BYTES, MAX_RECORDS, RequestError, jsonable
from health_monitor.serving.models import ModelSet, Served
from health_monitor.serving.openapi import openapi_document
from health_monitor.serving.telemetry import InferenceLogger, Metrics

log = logging.getLogger(__name__)

#: Routes anyone may call: a load balancer's probe and the published contract.
PUBLIC_PATHS = {"/health", "/openapi.json"}
#: Batches above this many records are scored off the event loop, so one large call cannot
#: hold up the small ones behind it.
INLINE_RECORDS = 32
_LOGGED_TEXT = 65_536  # request/response text kept per inference row


@dataclass
class ServerConfig:
    """Runtime settings of one server process."""

    token: str
    reload_s: float = 30.0
    refresh_s: float = 300.0


class _Auth:
    """Pure ASGI bearer-token check (no per-request middleware object, constant-time compare)."""

    def __init__(self, app: Callable, token: str, metrics: Metrics) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()
        self.metrics = metrics

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "http" and scope["path"] not in PUBLIC_PATHS:
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                self.metrics.observe(scope["path"].lstrip("/") or "/", 401, 0.0)
                resp = JSONResponse({"error": "missing or invalid bearer token (Authorization: Bearer ...)"},
                                    status_code=401, headers={"WWW-Authenticate": "Bearer"})
                await resp(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _reject_constant(name: str) -> Any:
    raise RequestError(f"{name} is not a number JSON allows: send a finite number or null")


async def _read_json(request: Request) -> Any:
    """The request body as JSON, within the size limit, with a 4xx that says what is wrong."""
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
        raise RequestError(f"request body over {MAX_BODY_BYTES} bytes: send fewer records per call", 413)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise RequestError(f"request body over {MAX_BODY_BYTES} bytes: send fewer records per call", 413)
    if not body:
        raise RequestError("empty body: send a JSON object with 'records' or 'keys'", 400)
    try:
        return json.loads(bytes(body), parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        if isinstance(exc, RequestError):
            raise
        raise RequestError(f"body is not valid JSON: {exc}", 400) from None


def create_app(models: ModelSet, config: ServerConfig, metrics: Metrics | None = None,
               logger: InferenceLogger | None = None) -> Callable:
    """The ASGI app serving ``models``: wrap it in uvicorn (``health-monitor serve``)."""
    metrics = metrics or Metrics()
    logger = logger or InferenceLogger(models.lake, metrics)
    stop = threading.Event()

    def _reloader() -> None:
        last_refresh = time.monotonic()
        while not stop.wait(config.reload_s):
            refresh = time.monotonic() - last_refresh >= config.refresh_s
            try:
                changes = models.reload(refresh_features=refresh)
                if refresh:
                    last_refresh = time.monotonic()
                moved = {k: v for k, v in changes.items() if "->" in v or v.startswith("loaded")}
                if moved:
                    log.warning("reloaded: %s", moved)
            except Exception as exc:  # noqa: BLE001 - keep serving what is loaded
                log.error("reload failed, still serving the loaded versions: %s", exc)

    @asynccontextmanager
    async def lifespan(app: Starlette):  # noqa: ANN202
        logger.start()
        t = threading.Thread(target=_reloader, name="champion-reload", daemon=True)
        t.start()
        try:
            yield
        finally:
            stop.set()
            # SIGTERM / Ctrl-C: uvicorn stops accepting, finishes requests, then we drain the log.
            await run_in_threadpool(logger.close)

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok",
                             "served": {ep: s.version for ep, s in models.served.items()},
                             "not_served": models.missing})

    async def openapi(request: Request) -> Response:
        return JSONResponse(openapi_document(models))

    async def metrics_route(request: Request) -> Response:
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4")

    async def reload_route(request: Request) -> Response:
        started = time.perf_counter()
        changes = await run_in_threadpool(models.reload, True)
        metrics.observe("admin/reload", 200, time.perf_counter() - started)
        return JSONResponse({"changes": changes,
                             "served": {ep: s.version for ep, s in models.served.items()}})

    def endpoint_route(ep: str) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            started = time.perf_counter()
            served = models.served.get(ep)  # one read: a reload mid-request does not change it
            payload: Any = None
            try:
                if served is None:
                    raise RequestError(models.missing.get(ep, f"{ep} is not loaded"), 503)
                payload = await _read_json(request)
                items = payload.get("records", payload.get("keys")) if isinstance(payload, dict) else None
                if isinstance(items, list) and len(items) > INLINE_RECORDS:
                    body = await run_in_threadpool(_answer, models, served, payload)
                else:
                    body = _answer(models, served, payload)
                status = 200
            except RequestError as exc:
                body, status = {"error": str(exc)}, exc.status
            except Exception as exc:  # noqa: BLE001 - a model failure is reported, never a bare 500
                log.exception("%s: scoring failed", ep)
                body, status = {"error": f"the model could not score these records: {exc}"}, 422
            elapsed = time.perf_counter() - started
            metrics.observe(ep, status, elapsed)
            logger.put({
                "request_id": str(uuid.uuid4()), "request_time": datetime.now(UTC), "endpoint": ep,
                "model_name": served.model_name if served else None,
                "model_version": served.version if served else None, "status": status,
                "latency_ms": elapsed * 1000.0,
                "n_records": len(body.get("predictions", [])) if status == 200 else 0,
                "request": _clip(payload), "response": _clip(body),
            })
            return JSONResponse(body, status_code=status)

        return handle

    routes = [Route("/health", health, methods=["GET"]), Route("/openapi.json", openapi, methods=["GET"]),
              Route("/metrics", metrics_route, methods=["GET"]),
              Route("/admin/reload", reload_route, methods=["POST"])]
    routes += [Route(f"/{ep}", endpoint_route(ep), methods=["POST"]) for ep in models.endpoints]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.models = models
    app.state.metrics = metrics
    app.state.logger = logger
    return _Auth(app, config.token, metrics)


def _answer(models: ModelSet, served: Served, payload: Any) -> dict[str, Any]:
    """Validate a request, look keys up, score, and build the response body."""
    if not isinstance(payload, dict):
        raise RequestError("body must be a JSON object with 'records' or 'keys'")
    extra = [k for k in payload if k not in {"records", "keys"}]
    if extra:
        raise RequestError(f"unknown field(s) {', '.join(map(str, extra[:5]))}: send 'records' or 'keys'")
    if ("records" in payload) == ("keys" in payload):
        raise RequestError("send exactly one of 'records' (features) or 'keys' (entity keys)")
    items = payload.get("records", payload.get("keys"))
    if not isinstance(items, list) or not items:
        raise RequestError("'records' / 'keys' must be a non-empty list")
    if len(items) > MAX_RECORDS:
        raise RequestError(f"{len(items)} records in one call: at most {MAX_RECORDS}", 413)
    contract = served.contract
    keys_out: list[dict] | None = None
    if "keys" in payload:
        records, keys_out = [], []
        for i, key in enumerate(items):
            if not isinstance(key, dict):
                raise RequestError(f"keys[{i}] must be an object like {contract.example_keys or {}}")
            need = [k for k in contract.lookup_keys if k != "workspace_id" or len(contract.lookup_keys) == 1]
            absent = [k for k in need if key.get(k) is None]
            unknown = [k for k in key if k not in contract.lookup_keys]
            if absent or unknown:
                raise RequestError(f"keys[{i}] must name {', '.join(need)}"
                                   + (" (workspace_id optional)" if "workspace_id" not in need
                                      and "workspace_id" in contract.lookup_keys else "")
                                   + (f"; unknown: {', '.join(map(str, unknown))}" if unknown else ""))
            row = models.store.lookup(served.endpoint, key)
            if row is None:
                raise RequestError(f"keys[{i}]: no features for {json.dumps(key, default=str)} in "
                                   f"{contract.spec.feature_table} (unknown entity)", 404)
            records.append({f.name: jsonable(row.get(f.name)) for f in contract.fields})
            keys_out.append({k: jsonable(row.get(k)) for k in contract.lookup_keys})
    else:
        records = items
    frame = contract.records_frame(records)
    out = served.predict(frame)
    table = models.store.table(served.endpoint)
    reasons = served.reasons(frame, table.stats if table else {}) if contract.risk_output else None
    predictions = []
    for i, row in enumerate(out.to_dict("records")):
        item: dict[str, Any] = {"prediction": {k: jsonable(v) for k, v in row.items()}}
        if keys_out is not None:
            item["key"] = keys_out[i]
        if contract.risk_output:
            # A model that states its own level (tuned on its validation threshold) is believed;
            # the others get the shared probability bands.
            own = row.get("risk_level")
            item["risk_level"] = own if isinstance(own, str) else contract.risk_level(
                jsonable(row.get(contract.risk_output)))
            item["top_reasons"] = reasons[i] if reasons else []
        predictions.append(item)
    return {"model": served.model_name, "version": served.version, "endpoint": served.endpoint,
            "predictions": predictions}


def _clip(obj: Any) -> str | None:
    if obj is None:
        return None
    text = json.dumps(obj, default=str)
    return text if len(text) <= _LOGGED_TEXT else text[:_LOGGED_TEXT]
