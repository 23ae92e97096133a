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

A task to a chat that blocked the bot (the `chats` table, herald.db.recipients), or
one the gateway refuses for its recipient (`refusal`: unsubscribed), is stored already
failed in the same statement, with the reason of its intake row in herald.states
(REFUSED_BLOCKED, REFUSED_UNSUBSCRIBED) and no push: nothing is sent to Telegram. A task
to a group that became a supergroup gets the new chat as its `migrated_chat_id`. Both
come from one primary-key lookup inside the insert: no extra round trip.

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
from herald.states import CREATED, REFUSED_BLOCKED, TaskStatus

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
_PENDING = literal(TaskStatus.PENDING)
# A refused task's reason is kept in last_error: its event's reason is that, else created.
_FAILED = literal(REFUSED_BLOCKED.to)
_CREATED_EVENT = (
    f"status, CASE WHEN status = {_FAILED} THEN last_error ELSE {literal(CREATED.reason)} END"
)
_BLOCKED = literal(REFUSED_BLOCKED.reason)

# One task: $1 client, $2 correlation id, $3 actor, then NewTask's fields in order, then
# the bot and the gateway's refusal (NULL, or a reason of herald.states' intake rows).
_ARG = {
    name: f"${i}"
    for i, name in enumerate(("client", "correlation", "actor", *_FIELDS, "bot", "refusal"), 1)
}
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

_FATE_COLUMNS = "status, last_error, migrated_chat_id"
_CHAT = f"""chats WHERE bot_id = {_ARG["bot"]}::bigint AND chat_id = {_ARG["chat_id"]}::text"""
_INSERT_ONE = f"""
WITH fate AS (
    SELECT coalesce({_ARG["refusal"]}::text,
                    (SELECT {_BLOCKED} FROM {_CHAT} AND blocked)) AS refusal,
           (SELECT migrated_to FROM {_CHAT}) AS migrated_to
), ins AS (
    INSERT INTO tasks ({_COLUMN_LIST}, {_FATE_COLUMNS})
    VALUES ({_ARG["client"]}, {_ARG["correlation"]}, {_VALUES},
            {_DUE.format(send_at=_ARG["send_at"])},
            CASE WHEN (SELECT refusal FROM fate) IS NULL
                 THEN {_ENQUEUED.format(send_at=_ARG["send_at"])} END,
            CASE WHEN (SELECT refusal FROM fate) IS NULL THEN {_PENDING} ELSE {_FAILED} END,
            (SELECT refusal FROM fate), (SELECT migrated_to FROM fate))
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
# $1 client, $2 the items, $3 correlation id, $4 actor, $5 the bot. An item's `refusal`
# is the gateway's (see _INSERT_ONE).
_INSERT_MANY = f"""
WITH input AS (
    SELECT i.*, coalesce(i.refusal, CASE WHEN c.blocked THEN {_BLOCKED} END) AS fate,
           c.migrated_to
    FROM jsonb_to_recordset($2::text::jsonb)
        AS i({", ".join(f"{name} {_recordset_type(name)}" for name in _FIELDS)}, refusal text)
    LEFT JOIN chats c ON c.bot_id = $5::bigint AND c.chat_id = i.chat_id
), ins AS (
    INSERT INTO tasks ({_COLUMN_LIST}, {_FATE_COLUMNS})
    SELECT $1, $3, {", ".join(_from_recordset(name) for name in _FIELDS)},
           {_DUE.format(send_at="send_at")},
           CASE WHEN fate IS NULL THEN {_ENQUEUED.format(send_at="send_at")} END,
           CASE WHEN fate IS NULL THEN {_PENDING} ELSE {_FAILED} END, fate, migrated_to
    FROM input ORDER BY idempotency_key
    ON CONFLICT (client, idempotency_key) DO NOTHING
    RETURNING id, idempotency_key, enqueued_at, status, last_error
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
    pool: Executor,
    client: str,
    task: NewTask,
    correlation_id: str | None,
    actor: str,
    *,
    bot_id: int = 0,
    refusal: str | None = None,
) -> Stored:
    """Store one task, or find the one stored under its key. `bot_id`: whose chat states
    apply (`Settings.bot_id`); `refusal`: store it failed with this intake reason."""
    values: list[Any] = list(task)
    for i in _JSON_AT:
        values[i] = _json(values[i])
    row = await pool.fetchrow(_INSERT_ONE, client, correlation_id, actor, *values, bot_id, refusal)
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
    pool: Executor,
    client: str,
    tasks: Sequence[NewTask],
    correlation_id: str | None,
    actor: str,
    *,
    bot_id: int = 0,
    refusals: dict[str, str] | None = None,
) -> BatchStored:
    """Insert tasks with distinct keys; keys already used come back in `existing`.
    `refusals`: idempotency key -> the intake reason to store that task failed with."""
    items = [_batch_item(task) for task in tasks]
    if refusals:
        for item, task in zip(items, tasks, strict=True):
            item["refusal"] = refusals.get(task.idempotency_key)
    rows = await pool.fetch(
        _INSERT_MANY, client, orjson.dumps(items).decode(), correlation_id, actor, bot_id
    )
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
