"""Intake SQL: the gateway's hot path, on the asyncpg pool.

Round trips to PostgreSQL (each statement runs in its own implicit transaction):
- a new task: 1. One statement inserts the task and its `created` audit event and
  returns the row (a CTE; `ON CONFLICT DO NOTHING`, so a concurrent request with the same
  key waits for the first to commit and then inserts nothing).
- a retried request (key already used): 2. The insert returns nothing; a second
  statement loads the stored task to compare request hashes.
- a batch: 1, plus 1 when any key was already used. Items are inserted in key order so
  two batches sharing keys cannot deadlock.

The statements are rendered from `NewTask` and the table (`herald.db.models`): the
columns, their bind parameters by name, the JSON record type of a batch. A column that
intake fills from the request is a field of `NewTask` and nothing else here.

`enqueued_at` is written in the same statement for tasks that are due now, because the
gateway pushes their ids right after the commit; if that push fails the gateway clears it
again (`clear_enqueued`), and if the process dies in between the sweeper finds the task
once `enqueued_at` is stale.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import orjson
from sqlalchemy import LargeBinary
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql.base import PGDialect

from herald.db.models import TASK_COLUMNS, NewTask, Task, TaskRecord
from herald.db.pool import Executor
from herald.db.sql import literal
from herald.states import CREATED, TaskStatus

__all__ = ["BatchStored", "NewTask", "Stored", "clear_enqueued", "insert_task", "insert_tasks"]

_FIELDS = NewTask._fields
_TYPES = {name: Task.__table__.columns[name].type for name in _FIELDS}
# JSONB goes over the wire as orjson's text (`$n::text::jsonb`): faster than asyncpg's
# codec, and PostgreSQL parses it once either way.
_JSON_AT = tuple(i for i, name in enumerate(_FIELDS) if isinstance(_TYPES[name], JSONB))
_COLUMN_LIST = f"client, correlation_id, {', '.join(_FIELDS)}, next_attempt_at, enqueued_at"
# Due now (send_at absent or past): the gateway pushes the id right after the commit.
_DUE = "coalesce({send_at}, now())"
_ENQUEUED = f"CASE WHEN {_DUE} <= now() THEN now() END"
_CREATED_EVENT = f"{literal(CREATED.to)}, {literal(CREATED.reason)}"

# One task: $1 client, $2 correlation id, $3 actor, then NewTask's fields in order.
_ARG = {name: f"${i}" for i, name in enumerate(("client", "correlation", "actor", *_FIELDS), 1)}
_VALUES = ", ".join(
    _ARG[name] + ("::text::jsonb" if i in _JSON_AT else "") for i, name in enumerate(_FIELDS)
)
# The new row comes back whole but for the JSON just sent, which would only be decoded
# again: those columns return NULL and are filled in from the NewTask.
_ECHOED = tuple((TaskRecord._fields.index(_FIELDS[i]), i) for i in _JSON_AT)
_RETURNING = ", ".join(
    f"NULL AS {name}" if isinstance(_TYPES.get(name), JSONB) else name
    for name in TaskRecord._fields
)

_INSERT_ONE = f"""
WITH ins AS (
    INSERT INTO tasks ({_COLUMN_LIST})
    VALUES ({_ARG["client"]}, {_ARG["correlation"]}, {_VALUES},
            {_DUE.format(send_at=_ARG["send_at"])},
            {_ENQUEUED.format(send_at=_ARG["send_at"])})
    ON CONFLICT (client, idempotency_key) DO NOTHING
    RETURNING {_RETURNING}
), ev AS (
    INSERT INTO task_events (task_id, actor, to_status, reason)
    SELECT id, {_ARG["actor"]}, {_CREATED_EVENT} FROM ins
)
SELECT * FROM ins
"""

_EXISTING_ONE = f"""
SELECT {TASK_COLUMNS} FROM tasks WHERE client = $1 AND idempotency_key = $2
"""


_PG = PGDialect()  # type: ignore[no-untyped-call]  # SQLAlchemy leaves it unannotated


def _recordset_type(name: str) -> str:
    # bytea travels in JSON as hex text.
    column_type = _TYPES[name]
    if isinstance(column_type, LargeBinary):
        return "text"
    return str(column_type.compile(dialect=_PG))


def _from_recordset(name: str) -> str:
    return f"decode({name}, 'hex')" if isinstance(_TYPES[name], LargeBinary) else name


_BYTES_AT = tuple(i for i, name in enumerate(_FIELDS) if isinstance(_TYPES[name], LargeBinary))

# The items travel as one JSON document: asyncpg encoding eleven arrays of 500 values
# checks every value for nesting (an ABC isinstance each) and cost more than the rest of
# the statement's client side; PostgreSQL takes the content objects as they are.
# $1 client, $2 the items, $3 correlation id, $4 actor.
_INSERT_MANY = f"""
WITH input AS (
    SELECT * FROM jsonb_to_recordset($2::text::jsonb)
        AS i({", ".join(f"{name} {_recordset_type(name)}" for name in _FIELDS)})
), ins AS (
    INSERT INTO tasks ({_COLUMN_LIST})
    SELECT $1, $3, {", ".join(_from_recordset(name) for name in _FIELDS)},
           {_DUE.format(send_at="send_at")}, {_ENQUEUED.format(send_at="send_at")}
    FROM input ORDER BY idempotency_key
    ON CONFLICT (client, idempotency_key) DO NOTHING
    RETURNING id, idempotency_key, enqueued_at
), ev AS (
    INSERT INTO task_events (task_id, actor, to_status, reason)
    SELECT id, $4, {_CREATED_EVENT} FROM ins
)
SELECT * FROM ins
"""

_EXISTING_MANY = """
SELECT id, idempotency_key, request_hash FROM tasks
WHERE client = $1 AND idempotency_key = ANY($2::text[])
"""


class Stored(NamedTuple):
    """The outcome of one intake: the task, and whether this request created it."""

    created: bool
    task: TaskRecord


async def insert_task(
    pool: Executor, client: str, task: NewTask, correlation_id: str | None, actor: str
) -> Stored:
    values: list[Any] = list(task)
    for i in _JSON_AT:
        values[i] = _json(values[i])
    row = await pool.fetchrow(_INSERT_ONE, client, correlation_id, actor, *values)
    if row is not None:
        returned = list(row)
        for at_record, at_task in _ECHOED:
            returned[at_record] = task[at_task]
        return Stored(True, TaskRecord._make(returned))
    existing = await pool.fetchrow(_EXISTING_ONE, client, task.idempotency_key)
    if existing is None:  # pragma: no cover - purged between the two statements
        raise RuntimeError("idempotency conflict without a stored task")
    return Stored(False, TaskRecord._make(existing))


def _json(value: dict[str, Any] | None) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _compile_batch_item() -> Callable[[NewTask], dict[str, Any]]:
    """NewTask -> its object in the batch's JSON document, bytea as hex.

    Compiled once from the fields, as `namedtuple` compiles its `__new__`: a dict display
    costs under half of `dict(zip(...))` with a fix-up loop, and it runs 500 times a
    batch (docs/benchmarks.md, issue 13's refactor)."""
    entries = ", ".join(
        f"{name!r}: task[{i}]{'.hex()' if i in _BYTES_AT else ''}" for i, name in enumerate(_FIELDS)
    )
    build: Callable[[NewTask], dict[str, Any]] = eval(f"lambda task: {{{entries}}}")
    return build


_batch_item = _compile_batch_item()


class BatchStored(NamedTuple):
    created: dict[str, tuple[int, bool]]  # key -> (id, enqueue now)
    existing: dict[str, tuple[int, bytes]]  # key -> (id, stored request hash)


async def insert_tasks(
    pool: Executor, client: str, tasks: Sequence[NewTask], correlation_id: str | None, actor: str
) -> BatchStored:
    """Insert tasks with distinct keys; keys already used come back in `existing`."""
    items = orjson.dumps([_batch_item(task) for task in tasks]).decode()
    rows = await pool.fetch(_INSERT_MANY, client, items, correlation_id, actor)
    created = {r["idempotency_key"]: (r["id"], r["enqueued_at"] is not None) for r in rows}
    existing: dict[str, tuple[int, bytes]] = {}
    if len(created) < len(tasks):
        missing = [t.idempotency_key for t in tasks if t.idempotency_key not in created]
        for r in await pool.fetch(_EXISTING_MANY, client, missing):
            existing[r["idempotency_key"]] = (r["id"], r["request_hash"])
    return BatchStored(created, existing)


_CLEAR_ENQUEUED = f"""
UPDATE tasks SET enqueued_at = NULL
WHERE id = ANY($1::bigint[]) AND status = {literal(TaskStatus.PENDING)}
"""


async def clear_enqueued(pool: Executor, task_ids: Sequence[int]) -> None:
    """The push to the queue failed: record that these tasks were never handed over."""
    await pool.execute(_CLEAR_ENQUEUED, list(task_ids))
