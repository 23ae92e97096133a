"""Retention: what is older than `HERALD_RETENTION_DAYS` is deleted.

Final tasks with their events and status callbacks; and what people sent (issue 17):
Telegram's stored updates, the recipients' events once sent or given up (their
attempts with them), and deep links past their expiry, used or not. A recipient's
binding is no history: it stays until its producer deletes it.

Only `delivered`, `failed` and `cancelled` tasks go, counted from their last change
(`updated_at`): an `uncertain` task waits for an operator however old it is, and a
`pending` or `sending` one is still work. Deletes run in small batches, each its own short
transaction over rows locked with SKIP LOCKED, so every worker may purge at once without
waiting on each other, on an operator's PATCH, or holding locks that intake or delivery
would queue behind. One batch is one statement (a round trip): the task rows, their
events, and their status callbacks with their attempts together. A task whose callback is
still waiting (its endpoint paused, say) stays until it was delivered or failed.

A purged task frees its idempotency key: the same key posted again makes a new task.
docs/delivery.md ("Retention") says what that means for producers.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import structlog

from herald.callbacks.events import CallbackStatus
from herald.config import Settings
from herald.db.pool import Executor
from herald.db.sql import FINAL_PREDICATE, literals

log = structlog.get_logger(__name__)

_OPEN_CALLBACKS = literals((CallbackStatus.PENDING, CallbackStatus.SENDING))

# The partial index ix_tasks_final_updated (migration 0005) serves the oldest-first pick:
# the statuses are written as its predicate is, so even a generic plan can use it.
_PURGE_SQL = f"""
WITH doomed AS (
    SELECT id FROM tasks
    WHERE {FINAL_PREDICATE}
      AND updated_at < now() - make_interval(secs => $1)
      -- A status callback still on its way keeps its task (and itself) until it is done.
      AND NOT EXISTS (SELECT 1 FROM callback_events c
                      WHERE c.task_id = tasks.id AND c.status IN ({_OPEN_CALLBACKS}))
    ORDER BY updated_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), events AS (
    DELETE FROM task_events e USING doomed WHERE e.task_id = doomed.id
), callbacks AS (
    DELETE FROM callback_events c USING doomed WHERE c.task_id = doomed.id
    RETURNING c.id
), attempts AS (
    DELETE FROM callback_attempts a USING callbacks WHERE a.event_id = callbacks.id
)
DELETE FROM tasks t USING doomed WHERE t.id = doomed.id
"""


_FINISHED_CALLBACKS = literals((CallbackStatus.DELIVERED, CallbackStatus.FAILED))

# The rest: one oldest-first batch each, on the index of migration 0009.
_PURGE_UPDATES_SQL = """
WITH doomed AS (
    SELECT id FROM telegram_updates
    WHERE received_at < now() - make_interval(secs => $1)
    ORDER BY received_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
DELETE FROM telegram_updates u USING doomed WHERE u.id = doomed.id
"""
_PURGE_RECIPIENT_EVENTS_SQL = f"""
WITH doomed AS (
    SELECT id FROM callback_events
    WHERE task_id IS NULL AND status IN ({_FINISHED_CALLBACKS})
      AND finished_at < now() - make_interval(secs => $1)
    ORDER BY finished_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), attempts AS (
    DELETE FROM callback_attempts a USING doomed WHERE a.event_id = doomed.id
)
DELETE FROM callback_events c USING doomed WHERE c.id = doomed.id
"""
_PURGE_LINKS_SQL = """
WITH doomed AS (
    SELECT code FROM recipient_links
    WHERE expires_at < now() - make_interval(secs => $1)
    ORDER BY expires_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
DELETE FROM recipient_links l USING doomed WHERE l.code = doomed.code
"""

# What each run purges, in order: (the log's field, the statement).
_PURGES = (
    ("tasks", _PURGE_SQL),
    ("updates", _PURGE_UPDATES_SQL),
    ("recipient_events", _PURGE_RECIPIENT_EVENTS_SQL),
    ("links", _PURGE_LINKS_SQL),
)


class Retention:
    """Purges expired final tasks: a run every `retention_interval_seconds`, each run in
    batches until nothing expired is left."""

    def __init__(self, pool: Executor, settings: Settings) -> None:
        self.pool = pool
        self.settings = settings

    async def purge_batch(self, sql: str = _PURGE_SQL) -> int:
        """Delete one batch (by default of expired final tasks); returns how many rows
        of the batch's table went."""
        status = await self.pool.execute(
            sql,
            self.settings.retention_days * 86_400.0,
            self.settings.retention_batch_size,
        )
        return int(status.rsplit(" ", 1)[1])  # "DELETE n"

    async def purge(self, stop: asyncio.Event) -> int:
        """Batches until everything expired is gone (or `stop`); returns the tasks purged
        (the log line counts the rest too).

        After each batch it rests as long as the batch took: a backlog of millions (the
        first run after enabling retention) takes at most half of one connection, and
        intake and delivery keep the rest of PostgreSQL.
        """
        purged = dict.fromkeys((name for name, _ in _PURGES), 0)
        for name, sql in _PURGES:
            while not stop.is_set():
                started = time.monotonic()
                n = await self.purge_batch(sql)
                purged[name] += n
                if n < self.settings.retention_batch_size:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), time.monotonic() - started)
        if purged["tasks"]:
            log.info(
                "tasks_purged", count=purged["tasks"], retention_days=self.settings.retention_days
            )
        if any(n for name, n in purged.items() if name != "tasks"):
            others = {name: n for name, n in purged.items() if name != "tasks"}
            log.info("updates_purged", **others, retention_days=self.settings.retention_days)
        return purged["tasks"]

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
