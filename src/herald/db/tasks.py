"""Task reads and operator transitions (the gateway's cooler paths), on the asyncpg pool.

`client` narrows every query to one producer's tasks; None means any client (a token
with `tasks:read` or `tasks:manage`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from herald.db.models import EVENT_COLUMNS, TASK_COLUMNS, EventRecord, TaskRecord
from herald.db.pool import Executor, Pool
from herald.db.sql import literal
from herald.states import TaskStatus

_GET = f"SELECT {TASK_COLUMNS} FROM tasks WHERE id = $1 AND ($2::text IS NULL OR client = $2)"


async def get_task(pool: Executor, task_id: int, client: str | None) -> TaskRecord | None:
    row = await pool.fetchrow(_GET, task_id, client)
    return None if row is None else TaskRecord._make(row)


@dataclass(slots=True)
class TaskFilter:
    client: str | None = None
    status: TaskStatus | None = None
    chat_id: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    before_id: int | None = None  # the cursor: ids below the last one seen


async def list_tasks(pool: Executor, where: TaskFilter, limit: int) -> list[TaskRecord]:
    """Newest first by id: a task inserted while a client pages is never shown twice."""
    clauses: list[str] = []
    args: list[Any] = []

    def add(sql: str, value: Any) -> None:
        args.append(value)
        clauses.append(sql.format(f"${len(args)}"))

    if where.client is not None:
        add("client = {}", where.client)
    if where.status is not None:
        add("status = {}", where.status.value)
    if where.chat_id is not None:
        add("chat_id = {}", where.chat_id)
    if where.created_after is not None:
        add("created_at >= {}", where.created_after)
    if where.created_before is not None:
        add("created_at < {}", where.created_before)
    if where.before_id is not None:
        add("id < {}", where.before_id)
    condition = " AND ".join(clauses) or "true"
    args.append(limit)
    sql = f"SELECT {TASK_COLUMNS} FROM tasks WHERE {condition} ORDER BY id DESC LIMIT ${len(args)}"
    return [TaskRecord._make(row) for row in await pool.fetch(sql, *args)]


_EVENTS = f"SELECT {EVENT_COLUMNS} FROM task_events WHERE task_id = $1 ORDER BY id"


async def list_events(pool: Executor, task_id: int) -> list[EventRecord]:
    return [EventRecord._make(row) for row in await pool.fetch(_EVENTS, task_id)]


class TransitionRefused(Exception):
    def __init__(self, current: str) -> None:
        super().__init__(current)
        self.current = current


_PENDING = literal(TaskStatus.PENDING)
_FAILED = literal(TaskStatus.FAILED)

_LOCK = "SELECT status FROM tasks WHERE id = $1 AND ($2::text IS NULL OR client = $2) FOR UPDATE"

_TRANSITION = f"""
UPDATE tasks SET
    status = $2,
    updated_at = now(),
    next_attempt_at = CASE WHEN $2 = {_PENDING} THEN now() ELSE next_attempt_at END,
    -- A resend starts over: it gets max_attempts again.
    failures = CASE WHEN $2 = {_PENDING} THEN 0 ELSE failures END,
    enqueued_at = CASE WHEN $2 = {_PENDING} THEN now() ELSE enqueued_at END,
    lease_owner = NULL,
    lease_expires_at = NULL,
    telegram_message_id = coalesce($3, telegram_message_id),
    last_error = CASE WHEN $2 = {_FAILED} THEN coalesce($4, last_error) ELSE last_error END
WHERE id = $1
RETURNING {TASK_COLUMNS}
"""

_EVENT = (
    "INSERT INTO task_events (task_id, actor, from_status, to_status, attempt, reason)"
    " VALUES ($1, $2, $3, $4, $5, $6)"
)


async def transition(
    pool: Pool,
    task_id: int,
    to: TaskStatus,
    *,
    allowed: Mapping[tuple[TaskStatus, TaskStatus], str],
    actor: str,
    client: str | None,
    reason: str | None = None,
    telegram_message_id: int | None = None,
) -> TaskRecord | None:
    """Move a task to `to` if (its status, to) is in `allowed`, with its audit event.

    `allowed` maps (from, to) to the event's reason when none is given: a slice of the
    transition table (`herald.states.allowed`).

    One transaction, the row locked first, so a worker's concurrent claim or record either
    happens before (and the check sees its status) or waits. Returns the updated row, None
    when no such task is visible; raises TransitionRefused.
    """
    async with pool.acquire() as conn, conn.transaction():
        current = await conn.fetchval(_LOCK, task_id, client)
        if current is None:
            return None
        default_reason = allowed.get((TaskStatus(current), to))
        if default_reason is None:
            raise TransitionRefused(current)
        row = await conn.fetchrow(_TRANSITION, task_id, to.value, telegram_message_id, reason)
        assert row is not None  # locked above
        task = TaskRecord._make(row)
        await conn.execute(
            _EVENT, task_id, actor, current, to.value, task.attempt, reason or default_reason
        )
        return task
