"""Intake SQL: the gateway's hot path, on the asyncpg pool.

Round trips to PostgreSQL (each statement runs in its own implicit transaction):
- a new task: 1. One statement inserts the task and its `created` audit event and
  returns the row (a CTE; `ON CONFLICT DO NOTHING`, so a concurrent request with the same
  key waits for the first to commit and then inserts nothing).
- a retried request (key already used): 2. The insert returns nothing; a second
  statement loads the stored task to compare request hashes.
- a batch: 1, plus 1 when any key was already used. Items are inserted in key order so
  two batches sharing keys cannot deadlock.

`enqueued_at` is written in the same statement for tasks that are due now, because the
gateway pushes their ids right after the commit; if that push fails the gateway clears it
again (`clear_enqueued`), and if the process dies in between the sweeper finds the task
once `enqueued_at` is stale.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

TASK_COLUMNS = (
    "id, client, idempotency_key, status, chat_id, content, metadata, priority, delivery,"
    " send_at, expires_at, max_attempts, attempt, failures, next_attempt_at, enqueued_at,"
    " telegram_message_id, last_error_code, last_error, correlation_id, created_at, updated_at"
)

_INSERT_ONE = """
WITH ins AS (
    INSERT INTO tasks (client, idempotency_key, request_hash, chat_id, content, metadata,
                       priority, delivery, send_at, expires_at, max_attempts,
                       next_attempt_at, enqueued_at, correlation_id)
    VALUES ($1, $2, $3, $4, $5::text::jsonb, $6::text::jsonb, $7, $8, $9, $10, $11,
            coalesce($9, now()), CASE WHEN coalesce($9, now()) <= now() THEN now() END, $12)
    ON CONFLICT (client, idempotency_key) DO NOTHING
    RETURNING id, next_attempt_at, enqueued_at, created_at
), ev AS (
    INSERT INTO task_events (task_id, actor, to_status, reason)
    SELECT id, $13, 'pending', 'created' FROM ins
)
SELECT * FROM ins
"""

_EXISTING_ONE = f"""
SELECT {TASK_COLUMNS}, request_hash FROM tasks WHERE client = $1 AND idempotency_key = $2
"""

# The items travel as one JSON document: asyncpg encoding eleven arrays of 500 values
# checks every value for nesting (an ABC isinstance each) and cost more than the rest of
# the statement's client side; PostgreSQL takes the content objects as they are.
_INSERT_MANY = """
WITH input AS (
    SELECT * FROM jsonb_to_recordset($2::text::jsonb)
        AS i(key text, hash text, chat_id text, content jsonb, metadata jsonb, priority int2,
             delivery text, send_at timestamptz, expires_at timestamptz, max_attempts int4)
), ins AS (
    INSERT INTO tasks (client, idempotency_key, request_hash, chat_id, content, metadata,
                       priority, delivery, send_at, expires_at, max_attempts,
                       next_attempt_at, enqueued_at, correlation_id)
    SELECT $1, key, decode(hash, 'hex'), chat_id, content, metadata, priority, delivery,
           send_at, expires_at, max_attempts, coalesce(send_at, now()),
           CASE WHEN coalesce(send_at, now()) <= now() THEN now() END, $3
    FROM input ORDER BY key
    ON CONFLICT (client, idempotency_key) DO NOTHING
    RETURNING id, idempotency_key, enqueued_at
), ev AS (
    INSERT INTO task_events (task_id, actor, to_status, reason)
    SELECT id, $4, 'pending', 'created' FROM ins
)
SELECT * FROM ins
"""

_EXISTING_MANY = """
SELECT id, idempotency_key, request_hash FROM tasks
WHERE client = $1 AND idempotency_key = ANY($2::text[])
"""


@dataclass(slots=True)
class NewTask:
    idempotency_key: str
    request_hash: bytes
    chat_id: str
    content: dict[str, Any]
    metadata: dict[str, Any] | None
    priority: int
    delivery: str
    send_at: datetime | None
    expires_at: datetime | None
    max_attempts: int


@dataclass(slots=True)
class Stored:
    """The outcome of one intake: the task row, and whether this request created it."""

    created: bool
    # Created: id, next_attempt_at, enqueued_at, created_at (the rest is what was sent;
    # see `created_row`). Not created: the stored task's TASK_COLUMNS and request_hash.
    row: Any


async def insert_task(
    pool: Any, client: str, task: NewTask, correlation_id: str | None, actor: str
) -> Stored:
    row = await pool.fetchrow(
        _INSERT_ONE,
        client,
        task.idempotency_key,
        task.request_hash,
        task.chat_id,
        _json(task.content),
        _json(task.metadata),
        task.priority,
        task.delivery,
        task.send_at,
        task.expires_at,
        task.max_attempts,
        correlation_id,
        actor,
    )
    if row is not None:
        return Stored(True, row)
    existing = await pool.fetchrow(_EXISTING_ONE, client, task.idempotency_key)
    if existing is None:  # pragma: no cover - tasks are never deleted
        raise RuntimeError("idempotency conflict without a stored task")
    return Stored(False, existing)


def created_row(task: NewTask, returned: Any, correlation_id: str | None) -> dict[str, Any]:
    """The full row of a task just inserted, from what was sent and what came back.

    Returning only the server-made columns spares decoding the JSONB just written.
    """
    return {
        "id": returned["id"],
        "idempotency_key": task.idempotency_key,
        "status": "pending",
        "chat_id": task.chat_id,
        "content": task.content,
        "metadata": task.metadata,
        "priority": task.priority,
        "delivery": task.delivery,
        "send_at": task.send_at,
        "expires_at": task.expires_at,
        "max_attempts": task.max_attempts,
        "attempt": 0,
        "failures": 0,
        "next_attempt_at": returned["next_attempt_at"],
        "enqueued_at": returned["enqueued_at"],
        "telegram_message_id": None,
        "last_error_code": None,
        "last_error": None,
        "correlation_id": correlation_id,
        "created_at": returned["created_at"],
        "updated_at": returned["created_at"],
    }


def _json(value: dict[str, Any] | None) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


@dataclass(slots=True)
class BatchStored:
    created: dict[str, tuple[int, bool]]  # key -> (id, enqueue now)
    existing: dict[str, tuple[int, bytes]]  # key -> (id, stored request hash)


async def insert_tasks(
    pool: Any, client: str, tasks: Sequence[NewTask], correlation_id: str | None, actor: str
) -> BatchStored:
    """Insert tasks with distinct keys; keys already used come back in `existing`."""
    items = orjson.dumps(
        [
            {
                "key": t.idempotency_key,
                "hash": t.request_hash.hex(),
                "chat_id": t.chat_id,
                "content": t.content,
                "metadata": t.metadata,
                "priority": t.priority,
                "delivery": t.delivery,
                "send_at": t.send_at,
                "expires_at": t.expires_at,
                "max_attempts": t.max_attempts,
            }
            for t in tasks
        ]
    ).decode()
    rows = await pool.fetch(_INSERT_MANY, client, items, correlation_id, actor)
    created = {r["idempotency_key"]: (r["id"], r["enqueued_at"] is not None) for r in rows}
    existing: dict[str, tuple[int, bytes]] = {}
    if len(created) < len(tasks):
        missing = [t.idempotency_key for t in tasks if t.idempotency_key not in created]
        for r in await pool.fetch(_EXISTING_MANY, client, missing):
            existing[r["idempotency_key"]] = (r["id"], r["request_hash"])
    return BatchStored(created, existing)


async def clear_enqueued(pool: Any, task_ids: Sequence[int]) -> None:
    """The push to the queue failed: record that these tasks were never handed over."""
    await pool.execute(
        "UPDATE tasks SET enqueued_at = NULL WHERE id = ANY($1::bigint[]) AND status = 'pending'",
        list(task_ids),
    )
