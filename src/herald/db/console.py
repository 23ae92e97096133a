"""The operator console's SQL (herald/console), on the asyncpg pool.

Listing by status, client or chat uses `db.tasks.list_tasks` (the API's query); what it
cannot answer fast lives here, with why:
- A creation-time bound lists by `(created_at, id)` newest first: by `ix_tasks_created_at`
  with an incremental sort. In id order the scan would first skip every task newer than
  the bound (120 to 185 ms at 1,000,000 tasks); this way a page is under 5 ms.
- An idempotency key without a client probes the unique `(client, idempotency_key)` index
  once per client, the clients found by a loose index scan of `ix_tasks_client_id`
  (a recursive CTE: one index probe per distinct client), instead of a scan of every task.
- The overview's per-minute chart and failure reasons read the last hour of final tasks
  through `ix_tasks_final_updated`; the uncertain and oldest pending tasks come from the
  `(status, id)` index. Counts by status are not queried here: the gateway already reads
  them in the background for /metrics (herald.metrics), and the console shows those.
- Bulk actions move tasks in batches, one statement each (lock, update, audit events),
  allowed by the same table of operator transitions as the API (`states.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from herald.db.models import TASK_COLUMNS
from herald.db.sql import FINAL_PREDICATE, literal
from herald.states import OPERATOR_TRANSITIONS, TaskStatus

# The distinct clients, one index probe each (PostgreSQL 15 has no skip scan).
_CLIENTS = """
WITH RECURSIVE c AS (
    (SELECT client FROM tasks ORDER BY client LIMIT 1)
    UNION ALL
    SELECT (SELECT t.client FROM tasks t WHERE t.client > c.client ORDER BY t.client LIMIT 1)
    FROM c WHERE c.client IS NOT NULL
)
SELECT client FROM c WHERE client IS NOT NULL LIMIT {limit}
"""


@dataclass(frozen=True, slots=True)
class ConsoleFilter:
    status: TaskStatus | None = None
    client: str | None = None
    chat_id: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    idempotency_key: str | None = None

    @property
    def by_time(self) -> bool:
        return self.created_after is not None or self.created_before is not None


class _Where:
    """SQL conditions with numbered parameters, built up one by one."""

    def __init__(self, args: list[Any] | None = None) -> None:
        self.args: list[Any] = args if args is not None else []
        self.clauses: list[str] = []

    def param(self, value: Any) -> str:
        self.args.append(value)
        return f"${len(self.args)}"

    def add(self, sql: str, value: Any) -> None:
        self.clauses.append(sql.format(self.param(value)))

    def sql(self) -> str:
        return " AND ".join(self.clauses) or "true"


def _filter_where(where: _Where, f: ConsoleFilter, prefix: str = "") -> None:
    if f.status is not None:
        where.add(prefix + "status = {}", f.status.value)
    if f.client is not None:
        where.add(prefix + "client = {}", f.client)
    if f.chat_id is not None:
        where.add(prefix + "chat_id = {}", f.chat_id)
    if f.created_after is not None:
        where.add(prefix + "created_at >= {}", f.created_after)
    if f.created_before is not None:
        where.add(prefix + "created_at < {}", f.created_before)
    if f.idempotency_key is not None:
        where.add(prefix + "idempotency_key = {}", f.idempotency_key)


def _key_clients(where: _Where, f: ConsoleFilter) -> str:
    """A FROM clause that reaches tasks through the unique (client, key) index."""
    if f.idempotency_key is None or f.client is not None:
        return "tasks"
    clients = _CLIENTS.format(limit=where.param(10_000)).strip()
    return f"({clients}) keyed JOIN tasks ON tasks.client = keyed.client"


async def list_page(pool: Any, f: ConsoleFilter, before_id: int | None, limit: int) -> list[Any]:
    """A page of tasks for a filter `db.tasks.list_tasks` does not serve fast (a creation
    time or an idempotency key), newest first; `before_id` is the API's cursor."""
    where = _Where()
    source = _key_clients(where, f)
    _filter_where(where, f, "tasks.")
    columns = ", ".join(f"tasks.{c.strip()}" for c in TASK_COLUMNS.split(","))
    if f.by_time:
        if before_id is not None:
            # The cursor names the last task shown; continue below its (created_at, id).
            cursor = where.param(before_id)
            where.clauses.append(
                f"(tasks.created_at, tasks.id) < "
                f"((SELECT created_at FROM tasks WHERE id = {cursor}), {cursor})"
            )
        order = "tasks.created_at DESC, tasks.id DESC"
    else:
        if before_id is not None:
            where.add("tasks.id < {}", before_id)
        order = "tasks.id DESC"
    sql = (
        f"SELECT {columns} FROM {source} WHERE {where.sql()}"
        f" ORDER BY {order} LIMIT {where.param(limit)}"
    )
    return list(await pool.fetch(sql, *where.args))


async def clients(pool: Any, limit: int = 200) -> list[str]:
    """The producers that have tasks, by name (for the filter's choices)."""
    return [row["client"] for row in await pool.fetch(_CLIENTS.format(limit="$1"), limit)]


# --- overview ----------------------------------------------------------------------------

_PENDING = literal(TaskStatus.PENDING)
_FAILED = literal(TaskStatus.FAILED)
_UNCERTAIN = literal(TaskStatus.UNCERTAIN)

_CHART_SQL = f"""
SELECT floor(extract(epoch FROM now() - updated_at) / 60)::int AS minutes_ago, status,
       count(*) AS n
FROM tasks
WHERE {FINAL_PREDICATE} AND updated_at > now() - interval '1 hour'
GROUP BY 1, 2
"""
_REASONS_SQL = f"""
SELECT last_error_code AS code, coalesce(last_error, 'no error recorded') AS error,
       count(*) AS n
FROM tasks
WHERE {FINAL_PREDICATE} AND updated_at > now() - interval '1 hour'
  AND status = {_FAILED}
GROUP BY 1, 2 ORDER BY n DESC, error LIMIT $1
"""
_OLDEST_PENDING_SQL = f"""
SELECT id, chat_id, client, created_at, next_attempt_at, attempt,
       extract(epoch FROM now() - created_at) AS age
FROM tasks WHERE status = {_PENDING} ORDER BY id LIMIT 1
"""
_UNCERTAIN_SQL = f"""
SELECT {TASK_COLUMNS}, (SELECT count(*) FROM tasks WHERE status = {_UNCERTAIN}) AS total
FROM tasks WHERE status = {_UNCERTAIN} ORDER BY id LIMIT $1
"""


@dataclass(frozen=True, slots=True)
class Overview:
    # Per minute of the last hour, oldest first: (delivered, failed) finished in it.
    per_minute: list[tuple[int, int]]
    reasons: list[Any]
    oldest_pending: Any
    uncertain_total: int
    uncertain: list[Any]


async def overview(pool: Any, *, uncertain_limit: int = 10, reasons_limit: int = 5) -> Overview:
    """Four statements on one connection, in one read-only snapshot (they agree)."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        chart = await conn.fetch(_CHART_SQL)
        reasons = await conn.fetch(_REASONS_SQL, reasons_limit)
        oldest = await conn.fetchrow(_OLDEST_PENDING_SQL)
        uncertain = await conn.fetch(_UNCERTAIN_SQL, uncertain_limit)
    minutes = [[0, 0] for _ in range(60)]
    for row in chart:
        ago = min(max(int(row["minutes_ago"]), 0), 59)
        if row["status"] in (TaskStatus.DELIVERED, TaskStatus.FAILED):
            minutes[59 - ago][row["status"] == TaskStatus.FAILED] += int(row["n"])
    total = int(uncertain[0]["total"]) if uncertain else 0
    return Overview(
        per_minute=[(d, f) for d, f in minutes],
        reasons=list(reasons),
        oldest_pending=oldest,
        uncertain_total=total,
        uncertain=list(uncertain),
    )


# --- uncertain, one after another ----------------------------------------------------------


async def next_uncertain(pool: Any, after_id: int) -> Any:
    """The oldest uncertain task after `after_id` (the ones before were decided or skipped)."""
    return await pool.fetchrow(
        f"SELECT {TASK_COLUMNS} FROM tasks WHERE status = {_UNCERTAIN} AND id > $1"
        " ORDER BY id LIMIT 1",
        after_id,
    )


async def count_uncertain(pool: Any) -> int:
    n: int = await pool.fetchval(f"SELECT count(*) FROM tasks WHERE status = {_UNCERTAIN}")
    return n


# --- bulk ----------------------------------------------------------------------------------


def sources_for(target: TaskStatus) -> list[str]:
    """The statuses an operator may move to `target`: the API's table, nothing else."""
    return sorted(frm.value for frm, to in OPERATOR_TRANSITIONS if to is target)


async def statuses_of(pool: Any, ids: Sequence[int]) -> list[tuple[int, str]]:
    rows = await pool.fetch("SELECT id, status FROM tasks WHERE id = ANY($1::bigint[])", list(ids))
    return [(row["id"], row["status"]) for row in rows]


async def max_task_id(pool: Any) -> int:
    value: int | None = await pool.fetchval("SELECT max(id) FROM tasks")
    return value or 0


async def count_movable(pool: Any, f: ConsoleFilter, target: TaskStatus, max_id: int) -> int:
    """How many tasks the filter matches that may become `target` (up to `max_id`)."""
    where = _Where()
    source = _key_clients(where, f)
    _filter_where(where, f, "tasks.")
    where.add("tasks.status = ANY({}::text[])", sources_for(target))
    where.add("tasks.id <= {}", max_id)
    n: int = await pool.fetchval(f"SELECT count(*) FROM {source} WHERE {where.sql()}", *where.args)
    return n


# The row update of an operator transition: the same columns as `db.tasks.transition`
# (a resend is due now, starts its failures over and counts as handed to the queue, since
# its ids are pushed after the commit). tests/console/test_bulk_sql.py compares the two.
_MOVE = """
, moved AS (
    UPDATE tasks t SET
        status = {to},
        updated_at = now(),
        next_attempt_at = CASE WHEN {to} = {pending} THEN now() ELSE t.next_attempt_at END,
        failures = CASE WHEN {to} = {pending} THEN 0 ELSE t.failures END,
        enqueued_at = CASE WHEN {to} = {pending} THEN now() ELSE t.enqueued_at END,
        lease_owner = NULL,
        lease_expires_at = NULL,
        last_error = CASE WHEN {to} = {failed} THEN coalesce({reason}, t.last_error)
                     ELSE t.last_error END
    FROM locked
    WHERE t.id = locked.id
    RETURNING t.id, locked.status AS from_status, t.attempt, t.correlation_id
), events AS (
    INSERT INTO task_events (task_id, actor, from_status, to_status, attempt, reason, details)
    SELECT id, {actor}, from_status, {to}, attempt, coalesce({reason}, {action}),
           {details}::text::jsonb
    FROM moved
)
SELECT (SELECT min(id) FROM candidates) AS lowest, (SELECT count(*) FROM candidates) AS seen,
       coalesce((SELECT array_agg(id) FROM moved), '{{}}') AS moved
"""


@dataclass(frozen=True, slots=True)
class BatchResult:
    lowest: int | None  # the lowest id looked at: the next batch starts below it
    seen: int  # candidates looked at (at most the batch size)
    moved: list[int]  # ids moved, each with its audit event


@dataclass(frozen=True, slots=True)
class BulkMove:
    target: TaskStatus
    action: str
    actor: str
    reason: str | None
    details: dict[str, Any]


async def move_batch(
    pool: Any,
    move: BulkMove,
    *,
    ids: Sequence[int] | None = None,
    f: ConsoleFilter | None = None,
    max_id: int = 0,
    below_id: int | None = None,
    limit: int = 500,
) -> BatchResult:
    """Move up to `limit` tasks (the given ids, or the filter's newest below `below_id`)
    to `move.target`, each only from a status the operator table allows.

    One statement: the candidates are picked newest first, then locked in id order (the
    order the workers' record statement locks in, so the two cannot deadlock) and checked
    again once locked: a task a worker moved meanwhile is left alone.
    """
    where = _Where()
    sources = where.param(sources_for(move.target))
    if ids is not None:
        candidates = f"SELECT id FROM tasks WHERE id = ANY({where.param(list(ids))}::bigint[])"
    else:
        assert f is not None
        source = _key_clients(where, f)
        _filter_where(where, f, "tasks.")
        where.add("tasks.status = ANY({}::text[])", sources_for(move.target))
        where.add("tasks.id <= {}", max_id)
        if below_id is not None:
            where.add("tasks.id < {}", below_id)
        candidates = (
            f"SELECT tasks.id FROM {source} WHERE {where.sql()}"
            f" ORDER BY tasks.id DESC LIMIT {where.param(limit)}"
        )
    sql = (
        f"WITH candidates AS ({candidates}), locked AS ("
        f" SELECT t.id, t.status FROM tasks t JOIN candidates c ON c.id = t.id"
        f" WHERE t.status = ANY({sources}::text[]) ORDER BY t.id FOR UPDATE OF t)"
    ) + _MOVE.format(
        to=where.param(move.target.value),
        reason=where.param(move.reason),
        actor=where.param(move.actor),
        action=where.param(move.action),
        details=where.param(orjson.dumps(move.details).decode()),
        pending=_PENDING,
        failed=_FAILED,
    )
    row = await pool.fetchrow(sql, *where.args)
    return BatchResult(row["lowest"], int(row["seen"]), list(row["moved"]))
