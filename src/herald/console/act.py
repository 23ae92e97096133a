"""One task's actions: a confirmation page that says what will happen, then the change.

The change is the API's: `db.tasks.transition` with the operator table
(`states.OPERATOR_TRANSITIONS`), the row locked, the audit event naming the operator, and a
resend handed to the workers after the commit. So a task that moved meanwhile (a worker
claimed it, another operator acted) is refused with what it is now, and nothing changes.
"""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import APIRouter, Path, Request
from starlette.responses import Response

from herald.api.state import correlation_id
from herald.console.actions import ACTIONS, UNCERTAIN_RESEND_WARNING, Action
from herald.console.tasks import load_task, task_context
from herald.console.web import (
    BASE,
    ConsoleError,
    ConsoleRoute,
    core,
    field,
    manager_form,
    operator,
    page,
    redirect,
)
from herald.db import tasks as repo
from herald.states import OPERATOR_TRANSITIONS, TaskStatus

log = structlog.get_logger(__name__)
router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)
TaskId = Annotated[int, Path(ge=1, le=2**63 - 1)]
MAX_REASON = 500


def _action(name: str) -> Action:
    action = ACTIONS.get(name)
    if action is None:
        raise ConsoleError(404, "No such action", f"The console has no action {name!r}.")
    return action


@router.get(BASE + "/tasks/{task_id}/{name}")
async def confirm_page(task_id: TaskId, name: str, request: Request) -> Response:
    await operator(request)
    action = _action(name)
    row = await load_task(request, task_id)
    return page(
        request,
        "confirm.html",
        {
            **task_context(row),
            "action": action,
            "allowed": action.allowed_from(row["status"]),
            "uncertain_warning": UNCERTAIN_RESEND_WARNING
            if action.name == "resend" and row["status"] == TaskStatus.UNCERTAIN
            else None,
        },
    )


def _message_id(value: str | None) -> int | None:
    if not value:
        return None
    if not value.isdigit() or not 0 < int(value) < 2**63:
        raise ConsoleError(422, "Not a message id", "A Telegram message_id is a positive integer.")
    return int(value)


@router.post(BASE + "/tasks/{task_id}/{name}")
async def act(task_id: TaskId, name: str, request: Request) -> Response:
    session, form = await manager_form(request)
    action = _action(name)
    reason = (field(form, "reason") or "").strip()[:MAX_REASON] or None
    message_id = _message_id((field(form, "telegram_message_id") or "").strip())
    if message_id is not None and action.target is not TaskStatus.DELIVERED:
        raise ConsoleError(422, "Not allowed", "A message_id goes only with delivered.")
    gw = core(request)
    try:
        row = await repo.transition(
            gw.pool,
            task_id,
            action.target,
            allowed=OPERATOR_TRANSITIONS,
            actor=session.actor,
            client=None,
            reason=reason,
            telegram_message_id=message_id,
        )
    except repo.TransitionRefused as exc:
        raise ConsoleError(
            409,
            "Not changed",
            f"Task {task_id} is {exc.current} now, and a {exc.current} task cannot"
            f" become {action.target.value}. Nothing was changed.",
        ) from None
    if row is None:
        raise ConsoleError(404, "No such task", f"There is no task {task_id}.")
    if action.target is TaskStatus.PENDING:  # committed: hand it to the workers
        await gw.enqueuer.enqueue([task_id], correlation_id(request))
    log.info("console_action", operator=session.operator, task_id=task_id, action=action.name)
    if field(form, "then") == "resolve":
        return redirect(f"{BASE}/resolve?after={task_id}&done={action.name}")
    return redirect(f"{BASE}/tasks/{task_id}?done={action.name}")
