"""Task reads and operator transitions (the gateway's cooler paths), on the asyncpg pool.

`client` narrows every query to one producer's tasks; None means any client (a token
with `tasks:read` or `tasks:manage`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from herald.db.intake import TASK_COLUMNS
from herald.states import TaskStatus

EVENT_COLUMNS = "id, at, actor, from_status, to_status, attempt, reason, error_code, details"


async def get_task(pool: Any, task_id: int, client: str | None) -> Any:
    return await pool.fetchrow(
        f"SELECT {TASK_COLUMNS} FROM tasks WHERE id = $1 AND ($2::text IS NULL OR client = $2)",
        task_id,
        client,
    )


@dataclass(slots=True)
class TaskFilter:
    client: str | None = None
    status: TaskStatus | None = None
    chat_id: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    before_id: int | None = None  # the cursor: ids below the last one seen


async def list_tasks(pool: Any, where: TaskFilter, limit: int) -> list[Any]:
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
    return list(await pool.fetch(sql, *args))


async def list_events(pool: Any, task_id: int) -> list[Any]:
    return list(
        await pool.fetch(
            f"SELECT {EVENT_COLUMNS} FROM task_events WHERE task_id = $1 ORDER BY id", task_id
        )
    )


class TransitionRefused(Exception):
    def __init__(self, current: str) -> None:
        super().__init__(current)
        self.current = current


_TRANSITION = f"""
UPDATE tasks SET
    status = $2,
    updated_at = now(),
    next_attempt_at = CASE WHEN $2 = 'pending' THEN now() ELSE next_attempt_at END,
    -- A resend starts over: it gets max_attempts again.
    failures = CASE WHEN $2 = 'pending' THEN 0 ELSE failures END,
    enqueued_at = CASE WHEN $2 = 'pending' THEN now() ELSE enqueued_at END,
    lease_owner = NULL,
    lease_expires_at = NULL,
    telegram_message_id = coalesce($3, telegram_message_id),
    last_error = CASE WHEN $2 = 'failed' THEN coalesce($4, last_error) ELSE last_error END
WHERE id = $1
RETURNING {TASK_COLUMNS}
"""


async def transition(
    pool: Any,
    task_id: int,
    to: TaskStatus,
    *,
    allowed: Mapping[tuple[TaskStatus, TaskStatus], str],
    actor: str,
    client: str | None,
    reason: str | None = None,
    telegram_message_id: int | None = None,
) -> Any:
    """Move a task to `to` if (its status, to) is in `allowed`, with its audit event.

    One transaction, the row locked first, so a worker's concurrent claim or record either
    happens before (and the check sees its status) or waits. Returns the updated row, None
    when no such task is visible; raises TransitionRefused.
    """
    async with pool.acquire() as conn, conn.transaction():
        current = await conn.fetchval(
            "SELECT status FROM tasks WHERE id = $1 AND ($2::text IS NULL OR client = $2)"
            " FOR UPDATE",
            task_id,
            client,
        )
        if current is None:
            return None
        action = allowed.get((TaskStatus(current), to))
        if action is None:
            raise TransitionRefused(current)
        row = await conn.fetchrow(_TRANSITION, task_id, to.value, telegram_message_id, reason)
        await conn.execute(
            "INSERT INTO task_events (task_id, actor, from_status, to_status, attempt, reason)"
            " VALUES ($1, $2, $3, $4, $5, $6)",
            task_id,
            actor,
            current,
            to.value,
            row["attempt"],
            reason or action,
        )
        return row
