"""OpenAPI additions for routes that read their own body (to skip FastAPI's double work).

Their request schemas are declared here, so the document still describes every body, and
the bearer scheme is declared once for the whole API.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from herald.api.schemas import (
    BatchRequest,
    CallbackEndpointIn,
    ErrorEnvelope,
    TaskIn,
    TaskPatch,
)

ERROR_DESCRIPTIONS = {
    400: "malformed JSON or cursor",
    401: "no token, or an invalid or expired one",
    403: "the token lacks the scope",
    404: "no such task (or another client's), or no callback endpoint",
    409: "a transition the state machine does not allow, or an endpoint HERALD_CALLBACKS sets",
    413: "body too large",
    422: "invalid request",
    429: "over the client's intake quota (Retry-After)",
    503: "intake paused by backpressure, or a dependency down (Retry-After)",
}
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorEnvelope, "description": text}
    for status, text in ERROR_DESCRIPTIONS.items()
}

_BODY_MODELS: tuple[type[BaseModel], ...] = (TaskIn, BatchRequest, TaskPatch, CallbackEndpointIn)
# No bearer token: /telegram/webhook is authenticated by its secret header.
_PUBLIC_PATHS = {"/health", "/ready", "/metrics", "/telegram/webhook"}


def body_of(model_name: str) -> dict[str, Any]:
    schema = {"$ref": f"#/components/schemas/{model_name}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def idempotency_header() -> dict[str, Any]:
    return {
        "parameters": [
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": True,
                "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                "description": "the same key and body again return the stored task",
            }
        ]
    }


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        doc = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        components = doc.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        for model in _BODY_MODELS:
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(schema.pop("$defs", {}))
            schemas[model.__name__] = schema
        components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        for path, operations in doc["paths"].items():
            if path not in _PUBLIC_PATHS:
                for operation in operations.values():
                    operation["security"] = [{"bearer": []}]
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]
