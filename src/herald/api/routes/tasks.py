"""Reading tasks and their audit trail; operator transitions (PATCH) and cancel (DELETE).

Visibility: a token with `tasks:read` (or `tasks:manage`) sees every task; one with only
`tasks:write` sees its own client's, and gets 404 for any other, as if it did not exist.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import Response

from herald.api.auth import SCOPE_MANAGE, SCOPE_READ, SCOPE_WRITE, Principal, PrincipalDep
from herald.api.body import parse_json, read_body
from herald.api.errors import Conflict, NotFound, Unprocessable
from herald.api.openapi import ERRORS
from herald.api.responses import OrjsonResponse
from herald.api.routes.callbacks import CallbackEventList, task_callbacks
from herald.api.schemas import EventList, TaskOut, TaskPage, TaskPatch, UtcDatetime
from herald.api.state import correlation_id, gateway
from herald.api.views import decode_cursor, encode_cursor, event_json, task_json
from herald.chat_id import ChatId
from herald.db import tasks as repo
from herald.states import OPERATOR_TRANSITIONS, Actor, TaskStatus, allowed

router = APIRouter(prefix="/api/tasks", tags=["tasks"])

TaskId = Annotated[int, Path(ge=1, le=2**63 - 1)]
# DELETE: each actor's transitions to cancelled, from the table.
CANCEL = {
    actor: allowed(actor, to=TaskStatus.CANCELLED) for actor in (Actor.CLIENT, Actor.OPERATOR)
}


def _visible_client(principal: Principal) -> str | None:
    """None: every client's tasks; else only this client's."""
    if principal.has(SCOPE_READ) or principal.has(SCOPE_MANAGE):
        return None
    principal.require_any(SCOPE_WRITE, SCOPE_READ, SCOPE_MANAGE)
    return principal.client


def _not_found(task_id: int) -> NotFound:
    return NotFound(f"task {task_id} not found", details={"id": task_id})


@router.get("/{task_id}", response_model=TaskOut, responses=ERRORS, summary="One task")
async def get_task(task_id: TaskId, principal: PrincipalDep, request: Request) -> Response:
    task = await repo.get_task(gateway(request).pool, task_id, _visible_client(principal))
    if task is None:
        raise _not_found(task_id)
    return OrjsonResponse(task_json(task))


@router.get("", response_model=TaskPage, responses=ERRORS, summary="List tasks, newest first")
async def list_tasks(
    principal: PrincipalDep,
    request: Request,
    status: TaskStatus | None = None,
    chat_id: Annotated[str | None, Query(max_length=64)] = None,
    created_after: UtcDatetime | None = None,
    created_before: UtcDatetime | None = None,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Response:
    where = repo.TaskFilter(
        client=_visible_client(principal),
        status=status,
        chat_id=_chat_filter(chat_id),
        created_after=created_after,
        created_before=created_before,
        before_id=decode_cursor(cursor) if cursor else None,
    )
    tasks = await repo.list_tasks(gateway(request).pool, where, limit)
    next_cursor = encode_cursor(tasks[-1].id) if len(tasks) == limit else None
    return OrjsonResponse({"items": [task_json(t) for t in tasks], "next_cursor": next_cursor})


def _chat_filter(chat_id: str | None) -> ChatId | None:
    if chat_id is None:
        return None
    try:
        return ChatId.parse(chat_id)
    except ValueError:
        raise Unprocessable(
            "chat_id must be an integer or @channelusername", details={"chat_id": chat_id}
        ) from None


@router.get("/{task_id}/events", response_model=EventList, responses=ERRORS, summary="Audit trail")
async def list_events(task_id: TaskId, principal: PrincipalDep, request: Request) -> Response:
    pool = gateway(request).pool
    if await repo.get_task(pool, task_id, _visible_client(principal)) is None:
        raise _not_found(task_id)
    events = await repo.list_events(pool, task_id)
    return OrjsonResponse({"items": [event_json(e) for e in events]})


@router.get(
    "/{task_id}/callbacks",
    response_model=CallbackEventList,
    responses=ERRORS,
    summary="Status callbacks of a task: each event with its attempts",
)
async def list_callbacks(task_id: TaskId, principal: PrincipalDep, request: Request) -> Response:
    pool = gateway(request).pool
    if await repo.get_task(pool, task_id, _visible_client(principal)) is None:
        raise _not_found(task_id)
    return await task_callbacks(pool, task_id)


@router.patch(
    "/{task_id}",
    response_model=TaskOut,
    responses=ERRORS,
    summary="Operator transition: resend (pending), cancel, or resolve uncertain",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/TaskPatch"}}},
        }
    },
)
async def patch_task(task_id: TaskId, principal: PrincipalDep, request: Request) -> Response:
    principal.require_any(SCOPE_MANAGE)
    gw = gateway(request)
    patch = parse_json(TaskPatch, await read_body(request, gw.settings.max_body_bytes))
    target = TaskStatus(patch.status)
    if patch.telegram_message_id is not None and target is not TaskStatus.DELIVERED:
        raise Unprocessable("telegram_message_id goes only with status delivered")
    return await _transition(
        request,
        task_id,
        target,
        allowed=OPERATOR_TRANSITIONS,
        actor=f"{Actor.OPERATOR}:{principal.client}",
        client=None,
        reason=patch.reason,
        telegram_message_id=patch.telegram_message_id,
    )


@router.delete(
    "/{task_id}", response_model=TaskOut, responses=ERRORS, summary="Cancel a task not yet sent"
)
async def cancel_task(task_id: TaskId, principal: PrincipalDep, request: Request) -> Response:
    if principal.has(SCOPE_MANAGE):
        kind, client = Actor.OPERATOR, None
    else:
        principal.require_any(SCOPE_WRITE, SCOPE_MANAGE)
        kind, client = Actor.CLIENT, principal.client
    return await _transition(
        request,
        task_id,
        TaskStatus.CANCELLED,
        allowed=CANCEL[kind],
        actor=f"{kind}:{principal.client}",
        client=client,
    )


async def _transition(
    request: Request,
    task_id: int,
    target: TaskStatus,
    *,
    allowed: Mapping[tuple[TaskStatus, TaskStatus], str],
    actor: str,
    client: str | None,
    reason: str | None = None,
    telegram_message_id: int | None = None,
) -> Response:
    gw = gateway(request)
    try:
        task = await repo.transition(
            gw.pool,
            task_id,
            target,
            allowed=allowed,
            actor=actor,
            client=client,
            reason=reason,
            telegram_message_id=telegram_message_id,
        )
    except repo.TransitionRefused as exc:
        raise Conflict(
            f"a {exc.current} task cannot become {target.value}",
            details={
                "from": exc.current,
                "to": target.value,
                "allowed": sorted(to.value for frm, to in allowed if frm.value == exc.current),
            },
        ) from None
    if task is None:
        raise _not_found(task_id)
    if target is TaskStatus.PENDING:  # resend: the transaction committed, hand it over
        await gw.enqueuer.enqueue([task_id], correlation_id(request))
    return OrjsonResponse(task_json(task))
