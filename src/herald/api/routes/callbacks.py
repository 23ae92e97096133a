"""Status callbacks: an operator sets a client's endpoint (PUT /api/callbacks), rotates
its secret, resumes a paused one; anyone who may read a task sees its callbacks
(GET /api/tasks/{id}/callbacks, in `routes/tasks.py`). docs/callbacks.md.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Path, Request
from starlette.responses import Response

from herald.api.auth import SCOPE_MANAGE, PrincipalDep
from herald.api.body import parse_json, read_body
from herald.api.errors import Conflict, NotFound
from herald.api.openapi import ERRORS, body_of
from herald.api.responses import OrjsonResponse
from herald.api.schemas import CallbackEndpointIn, CallbackEndpointOut, CallbackEventList
from herald.api.state import gateway
from herald.callbacks import endpoints
from herald.db.pool import Executor
from herald.states import Actor

router = APIRouter(prefix="/api/callbacks", tags=["callbacks"])

Client = Annotated[str, Path(min_length=1, max_length=200)]


@router.put(
    "",
    response_model=CallbackEndpointOut,
    responses=ERRORS,
    summary="Set a client's callback endpoint; a new one or a rotation answers its secret once",
    openapi_extra=body_of("CallbackEndpointIn"),
)
async def put_endpoint(principal: PrincipalDep, request: Request) -> Response:
    principal.require_any(SCOPE_MANAGE)
    gw = gateway(request)
    body = parse_json(CallbackEndpointIn, await read_body(request, gw.settings.max_body_bytes))
    grace = body.grace_seconds
    try:
        result = await endpoints.put(
            gw.pool,
            body.client,
            body.url,
            body.hosts,
            rotate=body.rotate,
            grace_seconds=gw.settings.callback_rotation_grace_seconds if grace is None else grace,
            actor=f"{Actor.OPERATOR}:{principal.client}",
            updates=body.updates,
        )
    except endpoints.ManagedByEnvironment:
        raise Conflict(
            f"client {body.client!r} is configured by HERALD_CALLBACKS; change it there",
            code="configured_by_environment",
            details={"client": body.client},
        ) from None
    view = result.endpoint.view()
    if result.secret is not None:
        view["secret"] = result.secret
    # No store may keep the one answer that shows the secret.
    return OrjsonResponse(view, headers={"Cache-Control": "no-store"})


@router.get(
    "/{client}",
    response_model=CallbackEndpointOut,
    responses=ERRORS,
    summary="A client's callback endpoint (never its secret)",
)
async def get_endpoint(client: Client, principal: PrincipalDep, request: Request) -> Response:
    principal.require_any(SCOPE_MANAGE)
    endpoint = await endpoints.get(gateway(request).pool, client)
    if endpoint is None:
        raise _no_endpoint(client)
    return OrjsonResponse(endpoint.view())


@router.post(
    "/{client}/resume",
    response_model=CallbackEndpointOut,
    responses=ERRORS,
    summary="Resume a paused endpoint: its waiting events are due at once",
)
async def resume_endpoint(client: Client, principal: PrincipalDep, request: Request) -> Response:
    principal.require_any(SCOPE_MANAGE)
    try:
        endpoint = await endpoints.resume(
            gateway(request).pool, client, f"{Actor.OPERATOR}:{principal.client}"
        )
    except endpoints.NoEndpoint:
        raise _no_endpoint(client) from None
    return OrjsonResponse(endpoint.view())


def _no_endpoint(client: str) -> NotFound:
    return NotFound(f"client {client!r} has no callback endpoint", details={"client": client})


async def task_callbacks(pool: Executor, task_id: int) -> Response:
    """The body of GET /api/tasks/{id}/callbacks (the route checks the task is visible)."""
    events = await endpoints.task_events(pool, task_id)
    return OrjsonResponse({"items": [asdict(e) for e in events]})


__all__ = ["CallbackEventList", "router", "task_callbacks"]
