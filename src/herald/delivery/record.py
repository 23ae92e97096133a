"""Step 5: write the outcome of one attempt, fenced by attempt and lease owner.

One statement (one round trip) for the update and its audit event together; a worker's
concurrent records share one (`record_many`, see `coalesce.py`).
It applies only while the task is still `sending` under this worker's lease for this
attempt, so a worker that outlived its lease cannot overwrite a newer state. The one
exception: a definite success over an `uncertain` of the same attempt (the sweeper gave
up on a slow send that then succeeded) still records `delivered`, so no operator resends
a message that the service knows arrived. Which (from, to) a record may make is the
transition table's (`herald.states`, action "record"), rendered into the fence.

Two outcomes also change what Herald remembers of the chat, in the same statement:
- a 403 that says the bot was blocked, kicked or the user deactivated (`chat_gone`,
  from `classify.py`) marks the chat blocked for that bot: intake then stores new tasks
  to it already failed (`recipient_blocked`), and nothing more is sent there;
- a group that became a supergroup (`migrated_chat_id`) is remembered, and the other
  pending tasks to the group move to the supergroup too, once, instead of each learning
  it from a 400 of its own (the `migrate_to_chat_id` update does the same,
  herald.updates.take).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from herald.db.pool import Executor
from herald.db.sql import literal
from herald.states import TaskStatus, pairs

_EDGES = ", ".join(f"({literal(frm)}, {literal(to)})" for frm, to in sorted(pairs("record")))
_SENDING = literal(TaskStatus.SENDING)
_PENDING = literal(TaskStatus.PENDING)

# One row per outcome in the arrays; each applies only under its own fence: this attempt,
# an edge of the table, and while sending, this worker's lease.
_RECORD_SQL = f"""
WITH v AS (
    SELECT * FROM unnest($2::bigint[], $3::int[], $4::text[], $5::bigint[], $6::int[],
                         $7::text[], $8::float8[], $9::text[], $10::text[], $11::text[],
                         $12::bool[], $13::bigint[], $14::text[])
        AS v(id, attempt, status, message_id, error_code, error, retry_in, migrated_chat_id,
             reason, details, failed, bot_id, chat_gone)
), old AS (
    -- `id = ANY($2)`: by the primary key. Joined to `v` alone, a table of some ten
    -- thousand rows was read whole for each batch (a hash join; PostgreSQL 15).
    SELECT t.id, t.status, coalesce(t.migrated_chat_id, t.chat_id) AS sent_to
    FROM tasks t WHERE t.id = ANY($2::bigint[]) ORDER BY t.id FOR UPDATE OF t
), done AS (
    UPDATE tasks t SET
        status = v.status,
        telegram_message_id = coalesce(v.message_id, t.telegram_message_id),
        last_error_code = v.error_code,
        last_error = v.error,
        failures = t.failures + CASE WHEN v.failed THEN 1 ELSE 0 END,
        next_attempt_at = CASE WHEN v.retry_in IS NULL THEN t.next_attempt_at
                          ELSE now() + make_interval(secs => v.retry_in) END,
        enqueued_at = CASE WHEN v.retry_in IS NULL THEN t.enqueued_at
                      ELSE now() + make_interval(secs => v.retry_in) END,
        migrated_chat_id = coalesce(v.migrated_chat_id, t.migrated_chat_id),
        lease_owner = NULL,
        lease_expires_at = NULL,
        updated_at = now()
    FROM v JOIN old ON old.id = v.id
    WHERE t.id = v.id AND t.attempt = v.attempt
      AND (old.status, v.status) IN ({_EDGES})
      AND (old.status <> {_SENDING} OR t.lease_owner = $1)
    RETURNING t.id, t.attempt, old.status AS from_status, v.status AS to_status, v.reason,
              v.error_code, v.details, old.sent_to, v.bot_id, v.chat_gone,
              v.migrated_chat_id AS migrate_to
), gone AS (
    INSERT INTO chats (bot_id, chat_id, blocked, blocked_reason)
    SELECT DISTINCT ON (bot_id, sent_to) bot_id, sent_to, true, chat_gone
    FROM done WHERE chat_gone IS NOT NULL
    ON CONFLICT (bot_id, chat_id) DO UPDATE
    SET blocked = true, blocked_reason = excluded.blocked_reason, updated_at = now()
), migration AS (
    SELECT DISTINCT ON (bot_id, sent_to) bot_id, sent_to, migrate_to
    FROM done WHERE migrate_to IS NOT NULL
), remembered AS (
    INSERT INTO chats (bot_id, chat_id, migrated_to)
    SELECT bot_id, sent_to, migrate_to FROM migration
    ON CONFLICT (bot_id, chat_id) DO UPDATE
    SET migrated_to = excluded.migrated_to, updated_at = now()
), moved AS (
    UPDATE tasks o SET migrated_chat_id = m.migrate_to, updated_at = now()
    FROM migration m
    WHERE o.chat_id = m.sent_to AND o.status = {_PENDING} AND o.migrated_chat_id IS NULL
      AND o.id NOT IN (SELECT id FROM done)
), rebound AS (
    UPDATE recipients r SET chat_id = m.migrate_to, updated_at = now()
    FROM migration m WHERE r.bot_id = m.bot_id AND r.chat_id = m.sent_to
), event AS (
    INSERT INTO task_events (task_id, actor, from_status, to_status, attempt, reason,
                             error_code, details)
    SELECT id, $1, from_status, to_status, attempt, reason, error_code, details::jsonb
    FROM done
)
SELECT id, from_status FROM done
"""


@dataclass(frozen=True, slots=True)
class Transition:
    """What one attempt ends in. `retry_in` (seconds) is set for a return to pending;
    `failed` when the attempt counts against max_attempts (see `policy.py`)."""

    status: TaskStatus
    reason: str
    message_id: int | None = None
    error_code: int | None = None
    error: str | None = None
    retry_in: float | None = None
    migrated_chat_id: str | None = None
    details: dict[str, Any] | None = None
    failed: bool = False
    # The bot that sent (Settings.bot_id): whose chat states the next two change.
    bot_id: int = 0
    # Telegram's words when the chat blocked the bot, removed it, or the user is gone.
    chat_gone: str | None = None


Outcome = tuple[int, int, "Transition"]  # task id, attempt, what it ends in


async def record_many(pool: Executor, owner: str, outcomes: Sequence[Outcome]) -> list[str | None]:
    """Apply the outcomes of `owner`'s attempts in one statement.

    For each, in order: the status it replaced, or None when its fence refused it.
    """
    columns: list[list[Any]] = [[] for _ in range(13)]
    for task_id, attempt, t in outcomes:
        row = (
            task_id,
            attempt,
            t.status.value,
            t.message_id,
            t.error_code,
            t.error,
            t.retry_in,
            t.migrated_chat_id,
            t.reason,
            json.dumps(t.details) if t.details is not None else None,
            t.failed,
            t.bot_id,
            t.chat_gone,
        )
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    rows = await pool.fetch(_RECORD_SQL, owner, *columns)
    replaced = {row["id"]: str(row["from_status"]) for row in rows}
    return [replaced.get(task_id) for task_id, _, _ in outcomes]
