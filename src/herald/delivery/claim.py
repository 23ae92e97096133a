"""Step 3: claim the best due task, committed before anything is sent.

A queue message is only a hint that some task may be due. The worker claims the best due
task (highest priority, then longest due) rather than exactly the hinted id, so priority
holds under a backlog; every message claims at most one task and every due task has a
message or the sweeper, so none is left behind. With nothing due, the message is dropped.

Round trips, each shared by the claims a worker makes at the same time (`coalesce.py`):
- no rate limits: one statement (pick with SKIP LOCKED, update, audit event)
  (`claim_many`);
- rate limits on (`claim_limited`): BEGIN; the pick of a batch (SELECT ... FOR UPDATE SKIP
  LOCKED); one Redis script reserving the slots of the whole batch; one statement that
  claims the granted tasks with their events and defers those of a busy chat or group,
  sent together with the COMMIT. Three PostgreSQL round trips and one Redis round trip
  per batch. The rows stay locked while Redis answers, so a deferral never shows a
  transient `sending` and costs no audit row.

The bot-wide horizon (`HERALD_RATE_MAX_WAIT_SECONDS`, 1 s). A claim reserves bot-wide
slots at most that far ahead: a worker picks no more tasks than the bot can send within
it (`RateLimiter.admit`, from the last answer of the script, which has the last word),
and a picked task whose slot would lie beyond it is left as it was (`Later`): unlocked
at the commit, still pending and due, no write. The message that picked it waits and
picks again when a slot frees, so the next pick sees any task of a higher priority that
arrived meanwhile: under a backlog, such a task is sent within the horizon.

The send gate. A claim that must wait for its reserved slot (up to the horizon; from
`GATE_MIN_WAIT` on) commits with `send_started = false`. Shortly before the request
goes out (within the last `GATE_MIN_WAIT` before its slot), its worker opens the gate:
`send_started = true`, fenced by attempt, lease owner and status (`open_gates`, one
statement shared by the gates opening about then). It sends only if that UPDATE found
its row. A sweeper that finds the lease expired with the gate
still closed updates the row under its lock: from then on the worker's UPDATE finds
nothing, so the task, which was never sent and never will be by that claim, goes back to
`pending` rather than `uncertain`. The row lock decides which of the two comes first;
all of it lives in PostgreSQL. A claim that sends at once (a wait under 10 ms) has no
gate (NULL): the window between its commit and its request is the send itself. The
tasks of one batch are gated each on its own, by its own wait: a batch changes nothing
in this argument, since each row is claimed, fenced and swept alone.

A task past `expires_at` is failed here with the reason `expired` instead of claimed.
The statements render their statuses and reasons from the transition table
(`herald.states`: CLAIMED, EXPIRED_UNSENT).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from herald.chat_id import ChatId
from herald.db.pool import Executor, Pool, Row
from herald.db.sql import DUE_PREDICATE, literal
from herald.delivery.ratelimit import RateLimiter
from herald.states import CLAIMED, EXPIRED_UNSENT, TaskStatus

# What a claim reads of a task (see `Claimed`).
_COLUMNS = (
    "id, status, attempt, failures, chat_id, migrated_chat_id, content, delivery,"
    " max_attempts, expires_at, created_at, send_at, correlation_id"
)
_PENDING = literal(TaskStatus.PENDING)
_SENDING = literal(CLAIMED.to)
_FAILED = literal(EXPIRED_UNSENT.to)
_EXPIRED = literal(EXPIRED_UNSENT.reason)
# The claim's audit event: claimed, or expired when the claim failed the task instead.
_EVENT = f"""
    INSERT INTO task_events (task_id, actor, from_status, to_status, attempt, reason)
    SELECT id, {{actor}}, {_PENDING}, status, attempt,
           CASE WHEN status = {_FAILED} THEN {_EXPIRED}
                ELSE {literal(CLAIMED.reason)} END
    FROM claimed"""

# The pick and the claim in one statement. An expired task goes straight to failed.
_CLAIM_SQL = f"""
WITH picked AS (
    SELECT id, (expires_at IS NOT NULL AND expires_at <= now()) AS expired
    FROM tasks
    WHERE {DUE_PREDICATE}
    ORDER BY priority DESC, next_attempt_at
    LIMIT $3
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE tasks t SET
        status = CASE WHEN p.expired THEN {_FAILED} ELSE {_SENDING} END,
        attempt = t.attempt + CASE WHEN p.expired THEN 0 ELSE 1 END,
        lease_owner = CASE WHEN p.expired THEN NULL ELSE $1 END,
        lease_expires_at = CASE WHEN p.expired THEN NULL
                           ELSE now() + make_interval(secs => $2) END,
        last_error = CASE WHEN p.expired THEN {_EXPIRED} ELSE t.last_error END,
        send_started = NULL,
        updated_at = now()
    FROM picked p
    -- The second condition reads the rows by the primary key: with the join alone, a
    -- table of some ten thousand rows was read whole for each batch (PostgreSQL 15).
    WHERE t.id = p.id AND t.id = ANY(ARRAY(SELECT id FROM picked))
    RETURNING {", ".join("t." + c.strip() for c in _COLUMNS.split(","))}
), event AS ({_EVENT.format(actor="$1")}
)
SELECT * FROM claimed
"""

_PICK_SQL = f"""
SELECT {_COLUMNS}, (expires_at IS NOT NULL AND expires_at <= now()) AS expired
FROM tasks
WHERE {DUE_PREDICATE}
ORDER BY priority DESC, next_attempt_at
LIMIT $1
FOR UPDATE SKIP LOCKED
"""

# The picked tasks that got their slots (or expired) are claimed, those refused by a busy
# chat or group deferred, in one statement sent with the COMMIT (one round trip: the
# simple query protocol, so the values are rendered in, below); those beyond the bot-wide
# horizon are left as they were. A deferred task is due again when its scope frees:
# `enqueued_at` is set to that time because the deferring worker hints the queue then
# (the sweeper covers a worker that dies first). What each claim got is known from the
# pick (the rows are locked), so nothing is returned.
_TAKE_SQL = f"""
WITH v AS (
    SELECT * FROM unnest({{ids}}::bigint[], {{waits}}::float8[], {{expired}}::bool[],
                         {{gated}}::bool[])
        AS v(id, wait, expired, gated)
), claimed AS (
    UPDATE tasks t SET
        status = CASE WHEN v.expired THEN {_FAILED} ELSE {_SENDING} END,
        attempt = t.attempt + CASE WHEN v.expired THEN 0 ELSE 1 END,
        lease_owner = CASE WHEN v.expired THEN NULL ELSE {{owner}} END,
        lease_expires_at = CASE WHEN v.expired THEN NULL
                           ELSE now() + make_interval(secs => {{lease}} + v.wait) END,
        last_error = CASE WHEN v.expired THEN {_EXPIRED} ELSE t.last_error END,
        send_started = CASE WHEN v.gated THEN false END,
        updated_at = now()
    FROM v
    WHERE t.id = v.id
    RETURNING t.id, t.status, t.attempt
), deferred AS (
    UPDATE tasks t SET next_attempt_at = now() + make_interval(secs => d.wait),
                       enqueued_at = now() + make_interval(secs => d.wait),
                       updated_at = now()
    FROM unnest({{defer_ids}}::bigint[], {{defer_waits}}::float8[]) AS d(id, wait)
    WHERE t.id = d.id
), event AS ({_EVENT.replace("{actor}", "{owner}")}
)
SELECT count(*) FROM claimed;
COMMIT
"""


def _array(values: Sequence[int | float | bool]) -> str:
    """Numbers or booleans as an SQL array literal (nothing else is rendered this way)."""
    return "ARRAY[" + ",".join(_number(v) for v in values) + "]"


def _number(value: int | float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


# A claim whose slot is this close sends without a gate: a worker lost in so short a wait
# leaves the task `uncertain` (never sent twice), which a gate would have made `pending`.
GATE_MIN_WAIT = 0.01


@dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    attempt: int  # this claim's number: the fence of its record
    failures: int  # failed attempts before this one: what max_attempts bounds
    chat_id: ChatId  # where to send: the supergroup's id once a group migrated
    content: dict[str, Any]
    delivery: str
    max_attempts: int
    expires_at: datetime | None
    due_since: datetime  # send_at or creation: the start of the delivery latency
    correlation_id: str | None
    wait: float = 0.0  # seconds until the reserved rate-limit slot
    gated: bool = False  # claimed with its send gate closed: open it before sending


@dataclass(frozen=True, slots=True)
class Expired:
    id: int


@dataclass(frozen=True, slots=True)
class Deferred:
    id: int
    wait: float
    scope: str


@dataclass(frozen=True, slots=True)
class Later:
    """Nothing claimed: the bot-wide slots are reserved beyond the horizon. Look again
    after `wait` seconds (the best due task then, whatever its priority)."""

    wait: float


ClaimResult = Claimed | Expired | Deferred | Later | None


def _result(row: Row) -> Claimed | Expired:
    if row["status"] == EXPIRED_UNSENT.to:
        return Expired(row["id"])
    return _claimed(row, row["attempt"])


def _claimed(row: Row, attempt: int, wait: float = 0.0, gated: bool = False) -> Claimed:
    return Claimed(
        id=row["id"],
        attempt=attempt,
        failures=row["failures"],
        chat_id=ChatId(row["migrated_chat_id"] or row["chat_id"]),
        content=row["content"],
        delivery=row["delivery"],
        max_attempts=row["max_attempts"],
        expires_at=row["expires_at"],
        due_since=row["send_at"] or row["created_at"],
        correlation_id=row["correlation_id"],
        wait=wait,
        gated=gated,
    )


async def claim_many(
    pool: Executor, owner: str, lease_seconds: float, n: int
) -> list[Claimed | Expired]:
    """Without rate limits: the n best due tasks in one statement (fewer when fewer are due)."""
    rows = await pool.fetch(_CLAIM_SQL, owner, float(lease_seconds), n)
    return [_result(row) for row in rows]


async def claim(
    pool: Pool, limiter: RateLimiter | None, owner: str, lease_seconds: float
) -> ClaimResult:
    """Claim the best due task for `owner`; None when nothing is due."""
    if limiter is None or not limiter.enabled:
        claimed = await claim_many(pool, owner, lease_seconds, 1)
        return claimed[0] if claimed else None
    results = await claim_limited(pool, limiter, owner, lease_seconds, 1)
    return results[0] if results else None


async def claim_limited(
    pool: Pool, limiter: RateLimiter, owner: str, lease_seconds: float, n: int
) -> list[ClaimResult]:
    """With rate limits: the n best due tasks (fewer when fewer are due), each claimed,
    deferred (a busy chat or group), left pending (`Later`: beyond the bot-wide horizon)
    or failed as expired. One transaction and one Redis script for all of them: BEGIN,
    the pick, the script, then the claims and deferrals with the COMMIT."""
    async with pool.acquire() as conn:
        await conn.execute("BEGIN")
        try:
            rows = await conn.fetch(_PICK_SQL, n)
            results, take, defer = await _decide(limiter, rows) if rows else ({}, [], [])
            if take or defer:
                await conn.execute(
                    _TAKE_SQL.format(
                        owner=literal(owner),
                        lease=_number(float(lease_seconds)),
                        ids=_array([t[0] for t in take]),
                        waits=_array([t[1] for t in take]),
                        expired=_array([t[2] for t in take]),
                        gated=_array([t[3] for t in take]),
                        defer_ids=_array([d[0] for d in defer]),
                        defer_waits=_array([d[1] for d in defer]),
                    )
                )
            else:
                await conn.execute("COMMIT")
        except BaseException:
            if conn.is_in_transaction():
                await asyncio.shield(conn.execute("ROLLBACK"))
            raise
    by_id = {row["id"]: row for row in rows}
    for task_id, wait, expired, gated in take:
        row = by_id[task_id]
        results[task_id] = (
            Expired(task_id) if expired else _claimed(row, row["attempt"] + 1, wait, gated)
        )
    return [results[row["id"]] for row in rows if row["id"] in results]


async def _decide(
    limiter: RateLimiter, rows: Sequence[Row]
) -> tuple[dict[int, ClaimResult], list[tuple[int, float, bool, bool]], list[tuple[int, float]]]:
    """One Redis script for the picked rows: which to claim (id, wait, expired, gated),
    which to defer (id, wait), and the results of those deferred or left for later."""
    live = [row for row in rows if not row["expired"]]
    grants = iter(
        await limiter.reserve_many([row["migrated_chat_id"] or row["chat_id"] for row in live])
    )
    take: list[tuple[int, float, bool, bool]] = []
    defer: list[tuple[int, float]] = []
    results: dict[int, ClaimResult] = {}
    later = 0
    for row in rows:
        if row["expired"]:
            take.append((row["id"], 0.0, True, False))
            continue
        grant = next(grants)
        if grant.ok:
            take.append((row["id"], grant.wait, False, grant.wait >= GATE_MIN_WAIT))
        elif grant.scope == "bot":
            # Left as it is, unlocked at the commit: the next pick sees it again, after
            # any task of a higher priority that arrives meanwhile.
            results[row["id"]] = Later(limiter.later(later, grant.wait))
            later += 1
        else:
            # Spread the tasks of one busy chat a little so they do not all wake at once.
            wait = grant.wait * random.uniform(1.0, 1.1)
            defer.append((row["id"], wait))
            results[row["id"]] = Deferred(row["id"], wait, grant.scope or "chat")
    return results, take, defer


_OPEN_GATES_SQL = f"""
UPDATE tasks t SET send_started = true
FROM unnest($2::bigint[], $3::int[]) AS g(id, attempt)
WHERE t.id = g.id AND t.attempt = g.attempt AND t.lease_owner = $1
  AND t.status = {_SENDING} AND t.send_started = false
RETURNING t.id
"""


async def open_gates(pool: Executor, owner: str, claims: Sequence[tuple[int, int]]) -> list[bool]:
    """Open the send gates of `owner`'s claims (task id, attempt) in one statement: for
    each, whether it may send (False: the sweeper took the task back first)."""
    rows = await pool.fetch(_OPEN_GATES_SQL, owner, [c[0] for c in claims], [c[1] for c in claims])
    opened = {row["id"] for row in rows}
    return [task_id in opened for task_id, _ in claims]
