"""Liveness, readiness (PostgreSQL and Redis answer) and Prometheus metrics."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from starlette.responses import PlainTextResponse, Response

from herald.api.errors import error_response
from herald.api.responses import OrjsonResponse
from herald.api.state import gateway
from herald.db.pool import ping
from herald.metrics import CONTENT_TYPE_LATEST, render_gateway_metrics

router = APIRouter(tags=["system"])
READY_TIMEOUT = 2.0


@router.get("/health", summary="Liveness: the process answers")
async def health() -> Response:
    return OrjsonResponse({"status": "ok"})


@router.get("/ready", summary="Readiness: PostgreSQL and Redis answer")
async def ready(request: Request) -> Response:
    gw = gateway(request)
    checks: dict[str, str] = {}
    try:
        await asyncio.wait_for(ping(gw.pool), READY_TIMEOUT)
        checks["postgres"] = "ok"
    except Exception as exc:
        checks["postgres"] = f"error: {exc!r}"
    try:
        await asyncio.wait_for(gw.redis.ping(), READY_TIMEOUT)
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"error: {exc!r}"
    if all(v == "ok" for v in checks.values()):
        return OrjsonResponse({"status": "ready", "checks": checks})
    return error_response(503, "not_ready", "a dependency is not answering", checks)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    # Documented as the text it is (schemathesis caught the default, application/json).
    response_class=PlainTextResponse,
)
async def metrics() -> Response:
    return Response(render_gateway_metrics(), media_type=CONTENT_TYPE_LATEST)
