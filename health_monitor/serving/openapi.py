"""The OpenAPI document of the running server, written from the served models' signatures."""

from __future__ import annotations

from typing import Any

from health_monitor import __version__
from health_monitor.catalog import CATALOG, ENDPOINTS
from health_monitor.serving.models import ModelSet

_ERROR = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}


def _err(text: str) -> dict[str, Any]:
    return {"description": text, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def openapi_document(models: ModelSet) -> dict[str, Any]:
    """OpenAPI 3.1 for every endpoint: request and response schemas from the champion's MLflow
    signature, each with working examples drawn from the feature tables."""
    paths: dict[str, Any] = {
        "/health": {"get": {"summary": "Liveness and which versions are served", "security": [],
                            "responses": {"200": {"description": "served versions"}}}},
        "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {
            "200": {"description": "text exposition format",
                    "content": {"text/plain": {"schema": {"type": "string"}}}}, "401": _err("no token")}}},
        "/admin/reload": {"post": {"summary": "Load champions whose alias moved; refresh the online store",
                                   "responses": {"200": {"description": "what changed"}, "401": _err("no token")}}},
    }
    schemas: dict[str, Any] = {"Error": _ERROR}
    for ep in models.endpoints:
        spec = CATALOG[ENDPOINTS[ep]]
        served = models.served.get(ep)
        op: dict[str, Any] = {"summary": f"{spec.name}: {spec.algorithm}", "description": spec.description,
                              "responses": {"401": _err("missing or invalid token"),
                                            "503": _err("no champion loaded yet")}}
        if served is not None:
            c = served.contract
            name = ep.replace("-", "_")
            schemas[f"{name}_request"] = c.request_schema()
            schemas[f"{name}_response"] = c.response_schema()
            examples = {}
            if c.example:
                examples["by_features"] = {"summary": "one record of features", "value": {"records": [c.example]}}
            if c.example_keys:
                examples["by_keys"] = {"summary": "entity keys (latest features from the store)",
                                       "value": {"keys": [c.example_keys]}}
            op["description"] = f"{spec.description}\n\nServing {spec.name} v{served.version}."
            op["requestBody"] = {"required": True, "content": {"application/json": {
                "schema": {"$ref": f"#/components/schemas/{name}_request"}, "examples": examples}}}
            op["responses"].update({
                "200": {"description": "predictions", "content": {"application/json": {
                    "schema": {"$ref": f"#/components/schemas/{name}_response"}}}},
                "400": _err("not JSON / empty"), "404": _err("unknown entity"),
                "413": _err("too large"), "422": _err("invalid records")})
        paths[f"/{ep}"] = {"post": op}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Databricks Health Monitor serving", "version": __version__},
        "paths": paths,
        "components": {"schemas": schemas,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
    }
