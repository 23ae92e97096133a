"""The task list (filters, newest first, the API's cursor) and one task's page."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from starlette.responses import Response

from herald.api.views import InvalidCursor, decode_cursor, encode_cursor
from herald.callbacks.endpoints import task_events
from herald.chat_id import ChatId
from herald.console.actions import ACTIONS, UNCERTAIN_RESEND_WARNING, available
from herald.console.filters import parse_filter
from herald.console.message import message_html, preview
from herald.console.web import BASE, ConsoleError, ConsoleRoute, core, operator, page
from herald.db import console as console_db
from herald.db import tasks as repo
from herald.states import TaskStatus

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)
PAGE_SIZE = 50
TaskId = Annotated[int, Path(ge=1, le=2**63 - 1)]


async def _rows(pool: Any, f: console_db.ConsoleFilter, before: int | None) -> list[Any]:
    if f.by_time or f.idempotency_key is not None:
        return await console_db.list_page(pool, f, before, PAGE_SIZE)
    # The API's own listing: the same query and order as GET /api/tasks.
    where = repo.TaskFilter(client=f.client, status=f.status, chat_id=f.chat_id, before_id=before)
    return [task._asdict() for task in await repo.list_tasks(pool, where, PAGE_SIZE)]


@router.get(f"{BASE}/tasks")
async def task_list(request: Request) -> Response:
    await operator(request)
    params = request.query_params
    parsed = parse_filter(params.get)
    before = None
    cursor = params.get("cursor")
    if cursor:
        try:
            before = decode_cursor(cursor[:64])
        except InvalidCursor:
            parsed.errors["cursor"] = "this page link is not one the console made"
    pool = core(request).pool
    rows: list[Any] = []
    clients: list[str]
    if parsed.errors:
        clients = await console_db.clients(pool)
    else:
        rows, clients = await asyncio.gather(
            _rows(pool, parsed.filter, before), console_db.clients(pool)
        )
    next_cursor = encode_cursor(rows[-1]["id"]) if len(rows) == PAGE_SIZE else None
    return page(
        request,
        "tasks.html",
        {
            "parsed": parsed,
            "rows": [(row, preview(row["content"])) for row in rows],
            "clients": clients,
            "statuses": [s.value for s in TaskStatus],
            "next_query": parsed.query(cursor=next_cursor) if next_cursor else None,
            "paged": before is not None,
            "first_query": parsed.query(),
            "actions": list(ACTIONS.values()),
            "status_code": 422 if parsed.errors else 200,
        },
        status=422 if parsed.errors else 200,
    )


async def load_task(request: Request, task_id: int) -> Any:
    task = await repo.get_task(core(request).pool, task_id, None)
    if task is None:
        raise ConsoleError(404, "No such task", f"There is no task {task_id}.")
    # The pages read tasks by column name, like the console's own queries' rows.
    return task._asdict()


def task_context(row: Any) -> dict[str, Any]:
    content = row["content"]
    body = content.get("text", content.get("caption"))
    return {
        "task": row,
        "content": content,
        "chat_id": ChatId(row["chat_id"]).ref,
        "message": message_html(body, content.get("parse_mode")),
        "media": next(
            ((k, content[k]) for k in ("photo", "document") if k in content), (None, None)
        ),
        "buttons": content.get("buttons") or [],
    }


@router.get(BASE + "/tasks/{task_id}")
async def task_page(task_id: TaskId, request: Request) -> Response:
    await operator(request)
    row = await load_task(request, task_id)
    pool = core(request).pool
    events = [e._asdict() for e in await repo.list_events(pool, task_id)]
    callbacks = await task_events(pool, task_id)  # what its producer was told, if anything
    done = request.query_params.get("done")
    return page(
        request,
        "task.html",
        {
            **task_context(row),
            "events": events,
            "callbacks": callbacks,
            "actions": available(row["status"]),
            "done": ACTIONS.get(done or ""),
            "uncertain_warning": UNCERTAIN_RESEND_WARNING,
        },
    )
