"""Counts over the tasks: the gateway's backpressure and metrics, and `herald status`.

Each function is one statement; they take a pool or a connection (`herald status` reads
three of them in one read-only snapshot).
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from herald.db.pool import Executor
from herald.db.sql import DUE_PREDICATE, literal
from herald.states import TaskStatus

_PENDING = literal(TaskStatus.PENDING)

# Stops counting at the cap: cheap however large the backlog grows (ix_tasks_due).
_DUE_BACKLOG = f"SELECT count(*) FROM (SELECT 1 FROM tasks WHERE {DUE_PREDICATE} LIMIT $1) due"

# A scan of tasks: 75 ms at 200,000 rows, so callers run it in the background.
_COUNTS = f"""
SELECT status, count(*) AS n, count(*) FILTER (WHERE {DUE_PREDICATE}) AS due,
       extract(epoch FROM now() - min(next_attempt_at) FILTER (WHERE {DUE_PREDICATE})) AS due_wait
FROM tasks GROUP BY status
"""

_OLDEST_PENDING = f"""
SELECT id, chat_id, created_at, next_attempt_at, attempt,
       extract(epoch FROM now() - created_at) AS age
FROM tasks WHERE status = {_PENDING} ORDER BY id LIMIT 1
"""

_UNCERTAIN = f"""
SELECT id, client, chat_id, attempt, updated_at, last_error
FROM tasks WHERE status = {literal(TaskStatus.UNCERTAIN)} ORDER BY id LIMIT $1
"""


async def due_backlog(pool: Executor, cap: int) -> int:
    """Pending tasks whose time has come, counted up to `cap`."""
    count: int = await pool.fetchval(_DUE_BACKLOG, cap)
    return count


class TaskCounts(NamedTuple):
    by_status: dict[TaskStatus, int]  # every status, 0 when none
    due: int  # the backlog: pending tasks whose time has come
    oldest_due_wait: float | None  # seconds the longest-due of them has waited


async def count_tasks(pool: Executor) -> TaskCounts:
    rows = await pool.fetch(_COUNTS)
    by_status = dict.fromkeys(TaskStatus, 0)
    by_status.update({TaskStatus(row["status"]): row["n"] for row in rows})
    waits = [float(row["due_wait"]) for row in rows if row["due_wait"] is not None]
    return TaskCounts(by_status, sum(row["due"] for row in rows), max(waits, default=None))


class PendingTask(NamedTuple):
    id: int
    chat_id: str
    created_at: datetime
    next_attempt_at: datetime
    attempt: int
    age_seconds: float


async def oldest_pending(pool: Executor) -> PendingTask | None:
    row = await pool.fetchrow(_OLDEST_PENDING)
    if row is None:
        return None
    return PendingTask(
        row["id"],
        row["chat_id"],
        row["created_at"],
        row["next_attempt_at"],
        row["attempt"],
        float(row["age"]),
    )


class UncertainTask(NamedTuple):
    id: int
    client: str
    chat_id: str
    attempt: int
    since: datetime  # its last change: when it became uncertain
    last_error: str | None


async def uncertain_tasks(pool: Executor, limit: int) -> list[UncertainTask]:
    """The first `limit` uncertain tasks by id."""
    return [UncertainTask._make(row) for row in await pool.fetch(_UNCERTAIN, limit)]
