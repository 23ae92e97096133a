"""Step 6: the sweeper, run by every worker process at once (SKIP LOCKED keeps them apart).

Each pass:
1. `sending` tasks whose lease expired (a worker killed mid-send, or a send that outlived
   its lease) become `uncertain`: nobody knows whether Telegram got them. An at-least-once
   task goes back to pending instead, as a failed attempt (failed once its failures reach
   max_attempts). So does, without a failure counted, a task whose send gate is still
   closed (`send_started = false`, see `claim.py`): its worker was lost while waiting for
   its rate-limit slot, before any request, and the row lock taken here means it can no
   longer open the gate.
2. Due `pending` tasks that no queue message is known to cover get one: those never hinted
   since they became due (`send_at` reached, backoff over, a deferral) and those hinted
   longer than `requeue_after_seconds` ago (a lost message, a failed enqueue, Redis
   flushed or restarted), but only as many as the due tasks outnumber the queue's
   messages: any message claims the best due task, so a backlog waiting its turn under
   the rate limits, its messages in the queue, is not hinted again every few seconds
   (that doubled PostgreSQL's work per delivery in a 10,000-task broadcast at 1,000/s).
   Skipped while the queue is already long: the workers are behind, and more hints
   would only repeat what is queued.

Beside the passes, retention (`retention.py`) purges old final tasks. The transitions of
pass 1 are the table's "lease expiry" rows (`herald.states`).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import structlog

from herald.config import Settings
from herald.db.pool import Executor, Row
from herald.db.sql import DUE_PREDICATE, literal
from herald.delivery.hints import Hints
from herald.delivery.retention import Retention
from herald.states import (
    LEASE_EXHAUSTED,
    LEASE_LOST,
    LEASE_RETRY,
    LEASE_UNSENT,
    DeliveryMode,
    TaskStatus,
)

log = structlog.get_logger(__name__)

_AT_LEAST_ONCE = literal(DeliveryMode.AT_LEAST_ONCE)
_SENDING = literal(TaskStatus.SENDING)

# Which lease expiry a task's is: one of the table's four, by the task as it was.
_CASE = f"""CASE
        WHEN NOT t.send_started THEN {{unsent}}
        WHEN t.delivery = {_AT_LEAST_ONCE} AND t.failures + 1 < t.max_attempts THEN {{retry}}
        WHEN t.delivery = {_AT_LEAST_ONCE} THEN {{exhausted}}
        ELSE {{lost}} END"""


def _case(field: str) -> str:
    """The CASE above, answering each edge's `field` ("to" or "reason")."""
    edges = {"unsent": LEASE_UNSENT, "retry": LEASE_RETRY, "exhausted": LEASE_EXHAUSTED}
    return _CASE.format(
        lost=literal(getattr(LEASE_LOST, field)),
        **{name: literal(getattr(edge, field)) for name, edge in edges.items()},
    )


_EXPIRE_LEASES_SQL = f"""
WITH stale AS (
    SELECT id, {_case("to")} AS status, {_case("reason")} AS reason
    FROM tasks t
    WHERE status = {_SENDING} AND lease_expires_at < now()
    ORDER BY lease_expires_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), moved AS (
    UPDATE tasks t SET
        status = stale.status,
        failures = t.failures + CASE
            WHEN t.delivery = {_AT_LEAST_ONCE} AND t.send_started IS DISTINCT FROM false
            THEN 1 ELSE 0 END,
        next_attempt_at = now(),
        lease_owner = NULL,
        lease_expires_at = NULL,
        last_error = CASE WHEN NOT t.send_started
            THEN 'lease expired before the send began: nothing was sent'
            ELSE 'lease expired: the worker did not record an outcome in time' END,
        updated_at = now()
    FROM stale
    WHERE t.id = stale.id
    RETURNING t.id, t.status, t.attempt, coalesce(NOT t.send_started, false) AS not_sent,
              stale.reason
), event AS (
    INSERT INTO task_events (task_id, actor, from_status, to_status, attempt, reason)
    SELECT id, {literal(LEASE_LOST.actor)}, {_SENDING}, status, attempt, reason
    FROM moved
)
SELECT id, status, not_sent FROM moved
"""

# $1 batch, $2 requeue_after_seconds, $3 the queue's length. Only the due tasks the queue
# cannot cover: a message claims the best due task, not its own, so n messages cover any
# n due tasks; a backlog the queue already covers (a broadcast under the bot's rate limit)
# is not hinted again. The count stops at batch + queue length.
_REQUEUE_SQL = f"""
UPDATE tasks t SET enqueued_at = now()
FROM (
    SELECT id FROM tasks
    WHERE {DUE_PREDICATE}
      AND (coalesce(enqueued_at, created_at) < next_attempt_at
           OR coalesce(enqueued_at, created_at) < now() - make_interval(secs => $2))
    ORDER BY priority DESC, next_attempt_at
    LIMIT least($1::int, greatest(0, (
        SELECT count(*) FROM (SELECT 1 FROM tasks WHERE {DUE_PREDICATE} LIMIT $1::int + $3::int) d)
        - $3::int))
    FOR UPDATE SKIP LOCKED
) due
WHERE t.id = due.id
RETURNING t.id, t.correlation_id
"""


@dataclass(frozen=True, slots=True)
class SweepResult:
    leases_expired: int
    requeued: int


class Sweeper:
    def __init__(self, pool: Executor, hints: Hints, settings: Settings) -> None:
        self.pool = pool
        self.hints = hints
        self.settings = settings

    async def sweep_once(self) -> SweepResult:
        batch = self.settings.sweep_batch_size
        expired = await self.pool.fetch(_EXPIRE_LEASES_SQL, batch)
        for row in expired:
            log.warning(
                "lease_expired", task_id=row["id"], status=row["status"], not_sent=row["not_sent"]
            )
        requeued: list[Row] = []
        queued = await self.hints.queue_length()
        if queued < self.settings.sweep_max_queue_length:
            # The hints go out after the commit; a crash in between leaves enqueued_at
            # fresh, and the next pass after requeue_after_seconds covers the task again.
            requeued = await self.pool.fetch(
                _REQUEUE_SQL, batch, float(self.settings.requeue_after_seconds), queued
            )
            await self.hints.push([(r["id"], r["correlation_id"]) for r in requeued])
        return SweepResult(len(expired), len(requeued))

    async def run(self, stop: asyncio.Event) -> None:
        """Sweep every `sweep_interval_seconds` until `stop` is set; errors are only logged.

        Retention's purge runs beside it, so a long purge never delays a sweep."""
        purge = asyncio.create_task(Retention(self.pool, self.settings).run(stop))
        try:
            await self._sweep_until(stop)
        finally:
            await purge

    async def _sweep_until(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.sweep_once()
            except Exception:
                log.exception("sweep_failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.sweep_interval_seconds)
