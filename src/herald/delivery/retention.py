"""Retention: final tasks older than `HERALD_RETENTION_DAYS` are deleted with their events.

Only `delivered`, `failed` and `cancelled` tasks go, counted from their last change
(`updated_at`): an `uncertain` task waits for an operator however old it is, and a
`pending` or `sending` one is still work. Deletes run in small batches, each its own short
transaction over rows locked with SKIP LOCKED, so every worker may purge at once without
waiting on each other, on an operator's PATCH, or holding locks that intake or delivery
would queue behind. One batch is one statement (a round trip): the task rows and their
events together.

A purged task frees its idempotency key: the same key posted again makes a new task.
docs/delivery.md ("Retention") says what that means for producers.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import structlog

from herald.config import Settings
from herald.db.pool import Executor
from herald.db.sql import FINAL_PREDICATE

log = structlog.get_logger(__name__)

# The partial index ix_tasks_final_updated (migration 0005) serves the oldest-first pick:
# the statuses are written as its predicate is, so even a generic plan can use it.
_PURGE_SQL = f"""
WITH doomed AS (
    SELECT id FROM tasks
    WHERE {FINAL_PREDICATE}
      AND updated_at < now() - make_interval(secs => $1)
    ORDER BY updated_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), events AS (
    DELETE FROM task_events e USING doomed WHERE e.task_id = doomed.id
)
DELETE FROM tasks t USING doomed WHERE t.id = doomed.id
"""


class Retention:
    """Purges expired final tasks: a run every `retention_interval_seconds`, each run in
    batches until nothing expired is left."""

    def __init__(self, pool: Executor, settings: Settings) -> None:
        self.pool = pool
        self.settings = settings

    async def purge_batch(self) -> int:
        """Delete one batch of expired final tasks; returns how many tasks went."""
        status = await self.pool.execute(
            _PURGE_SQL,
            self.settings.retention_days * 86_400.0,
            self.settings.retention_batch_size,
        )
        return int(status.rsplit(" ", 1)[1])  # "DELETE n"

    async def purge(self, stop: asyncio.Event) -> int:
        """Batches until the expired tasks are gone (or `stop`); returns tasks purged.

        After each batch it rests as long as the batch took: a backlog of millions (the
        first run after enabling retention) takes at most half of one connection, and
        intake and delivery keep the rest of PostgreSQL.
        """
        purged = 0
        while not stop.is_set():
            started = time.monotonic()
            n = await self.purge_batch()
            purged += n
            if n < self.settings.retention_batch_size:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), time.monotonic() - started)
        if purged:
            log.info("tasks_purged", count=purged, retention_days=self.settings.retention_days)
        return purged

    async def run(self, stop: asyncio.Event) -> None:
        """Purge every `retention_interval_seconds` until `stop`; errors are only logged."""
        if self.settings.retention_days <= 0:
            return
        while not stop.is_set():
            try:
                await self.purge(stop)
            except Exception:
                log.exception("purge_failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.retention_interval_seconds)
