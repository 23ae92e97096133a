"""The worker side of the outbox: claim due events under a lease, record each attempt
fenced by attempt number and lease owner, as the deliveries of tasks do.

Round trips: one statement claims up to a batch (SKIP LOCKED, so every worker process
claims at once without waiting on the others); one records the attempts a sender
finished meanwhile (`Coalescer`), with their rows in `callback_attempts` and the
endpoint's failing state.

Order: an event belongs to one stream, a task's (`task_id`, seq from 1) or a
recipient's (`recipient` of `client`, seq the Telegram update_id). Only the lowest
unfinished event of a stream is eligible, so a stream's events go out in sequence order
(a failed one counts as finished, or one dead endpoint would hold its stream's later
events forever); different streams never wait for each other. Each stream's check is an
index probe: `uq_callback_events_task_seq` for a task, the partial index of open
recipient events (`ix_callback_events_recipient_open`) for a recipient.
A claimed event's `next_attempt_at` is its lease's end: an event whose worker died is
due again then, and goes out again with the same `webhook-id`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from herald.callbacks.events import CallbackStatus
from herald.callbacks.signing import message_id, update_message_id
from herald.db.pool import Executor
from herald.db.sql import literal, literals

_PENDING = literal(CallbackStatus.PENDING)
_SENDING = literal(CallbackStatus.SENDING)
_OPEN = literals((CallbackStatus.PENDING, CallbackStatus.SENDING))
_FINAL = literals((CallbackStatus.DELIVERED, CallbackStatus.FAILED))

# $1 owner, $2 lease seconds, $3 how many.
_CLAIM_SQL = f"""
WITH picked AS (
    SELECT e.id
    FROM callback_events e JOIN callback_endpoints p ON p.client = e.client
    WHERE e.status IN ({_OPEN}) AND e.next_attempt_at <= now() AND p.paused_at IS NULL
      AND NOT EXISTS (SELECT 1 FROM callback_events o
                      WHERE o.task_id = e.task_id AND o.seq < e.seq AND o.status IN ({_OPEN}))
      AND NOT EXISTS (SELECT 1 FROM callback_events o
                      WHERE e.task_id IS NULL AND o.task_id IS NULL AND o.client = e.client
                        AND o.recipient = e.recipient AND o.seq < e.seq
                        AND o.status IN ({_OPEN}))
    ORDER BY e.next_attempt_at
    LIMIT $3
    FOR UPDATE OF e SKIP LOCKED
), claimed AS (
    UPDATE callback_events e SET
        status = {_SENDING},
        attempts = e.attempts + 1,
        lease_owner = $1,
        next_attempt_at = now() + make_interval(secs => $2)
    FROM picked
    WHERE e.id = picked.id
    RETURNING e.id, e.task_id, e.recipient, e.seq, e.client, e.type, e.attempts, e.url,
              e.payload::text AS body
)
SELECT c.id, c.task_id, c.recipient, c.seq, c.client, c.type, c.attempts, c.body,
       coalesce(c.url, p.url) AS url, p.secret,
       CASE WHEN p.previous_until IS NULL OR p.previous_until > now()
            THEN p.previous_secret END AS previous_secret
FROM claimed c JOIN callback_endpoints p ON p.client = c.client
"""

# One row per attempt in the arrays: $1 owner, $2 the pause threshold in seconds, then
# id, attempt, outcome status, retry in (seconds), HTTP status, latency, error, ok, client.
_RECORD_SQL = f"""
WITH v AS (
    SELECT * FROM unnest($3::bigint[], $4::int[], $5::text[], $6::float8[], $7::int[],
                         $8::float8[], $9::text[], $10::bool[], $11::text[])
        AS v(id, attempt, status, retry_in, status_code, latency_ms, error, ok, client)
), done AS (
    UPDATE callback_events e SET
        status = v.status,
        next_attempt_at = CASE WHEN v.retry_in IS NULL THEN e.next_attempt_at
                          ELSE now() + make_interval(secs => v.retry_in) END,
        lease_owner = NULL,
        finished_at = CASE WHEN v.status IN ({_FINAL}) THEN now() END
    FROM v
    WHERE e.id = v.id AND e.attempts = v.attempt AND e.lease_owner = $1
      AND e.status = {_SENDING}
    RETURNING e.id
), attempts AS (
    INSERT INTO callback_attempts (event_id, attempt, worker, status_code, latency_ms, error)
    SELECT id, attempt, $1, status_code, latency_ms, error FROM v
), outcome AS (
    SELECT client, bool_or(ok) AS ok FROM v GROUP BY client
), recovered AS (
    -- Only rows that change are locked: the endpoint's row is no point of contention.
    UPDATE callback_endpoints p SET failing_since = NULL
    FROM outcome o WHERE p.client = o.client AND o.ok AND p.failing_since IS NOT NULL
), failing AS (
    UPDATE callback_endpoints p SET failing_since = now()
    FROM outcome o WHERE p.client = o.client AND NOT o.ok AND p.failing_since IS NULL
), paused AS (
    UPDATE callback_endpoints p SET paused_at = now()
    FROM outcome o
    WHERE p.client = o.client AND NOT o.ok AND p.paused_at IS NULL
      AND p.failing_since < now() - make_interval(secs => $2)
    RETURNING p.client, p.failing_since
), audit AS (
    INSERT INTO callback_audit (client, actor, action, details)
    SELECT client, $1, 'paused',
           jsonb_build_object('failing_since', failing_since,
                              'reason', 'every attempt failed since then')
    FROM paused
)
SELECT (SELECT array_agg(id) FROM done) AS done,
       (SELECT array_agg(client) FROM paused) AS paused
"""


@dataclass(frozen=True, slots=True)
class ClaimedEvent:
    id: int
    task_id: int | None  # a task's event; else a recipient's
    recipient: str | None
    seq: int
    client: str
    type: str
    attempt: int  # this claim's number: the fence of its record
    body: bytes  # the JSON sent, exactly as signed
    url: str
    secrets: tuple[str, ...]  # the current one first; two during a rotation

    @property
    def webhook_id(self) -> str:
        """The `webhook-id` header: the same on every attempt of this event."""
        if self.task_id is not None:
            return message_id(self.task_id, self.seq)
        return update_message_id(self.seq, self.id)


@dataclass(frozen=True, slots=True)
class Attempt:
    """How one attempt ended and what the event does next: `status` delivered, pending
    (due again in `retry_in` seconds) or failed."""

    event_id: int
    client: str
    attempt: int
    status: CallbackStatus
    retry_in: float | None
    status_code: int | None
    latency_ms: float
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status is CallbackStatus.DELIVERED


@dataclass(frozen=True, slots=True)
class Recorded:
    applied: frozenset[int]  # event ids whose fence held
    paused: tuple[str, ...]  # clients paused by these attempts


async def claim(pool: Executor, owner: str, lease_seconds: float, n: int) -> list[ClaimedEvent]:
    rows = await pool.fetch(_CLAIM_SQL, owner, float(lease_seconds), n)
    return [
        ClaimedEvent(
            id=r["id"],
            task_id=r["task_id"],
            recipient=r["recipient"],
            seq=r["seq"],
            client=r["client"],
            type=r["type"],
            attempt=r["attempts"],
            body=r["body"].encode(),
            url=r["url"],
            secrets=tuple(s for s in (r["secret"], r["previous_secret"]) if s),
        )
        for r in rows
    ]


def next_step(
    schedule: Sequence[float], attempt: int, ok: bool
) -> tuple[CallbackStatus, float | None]:
    """After attempt number `attempt` (from 1): delivered, pending again after the
    schedule's next delay, or failed once the schedule is used up."""
    if ok:
        return CallbackStatus.DELIVERED, None
    if attempt < len(schedule):
        return CallbackStatus.PENDING, float(schedule[attempt])
    return CallbackStatus.FAILED, None


async def record(
    pool: Executor, owner: str, pause_after: float, attempts: Sequence[Attempt]
) -> Recorded:
    columns: list[list[Any]] = [[] for _ in range(9)]
    for a in attempts:
        row = (
            a.event_id,
            a.attempt,
            a.status.value,
            a.retry_in,
            a.status_code,
            a.latency_ms,
            a.error,
            a.ok,
            a.client,
        )
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    result = await pool.fetchrow(_RECORD_SQL, owner, float(pause_after), *columns)
    assert result is not None
    return Recorded(frozenset(result["done"] or ()), tuple(result["paused"] or ()))
