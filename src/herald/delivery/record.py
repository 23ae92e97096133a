"""Step 5: write the outcome of one attempt, fenced by attempt and lease owner.

One statement per outcome (one round trip): the update and its audit event together.
It applies only while the task is still `sending` under this worker's lease for this
attempt, so a worker that outlived its lease cannot overwrite a newer state. The one
exception: a definite success over an `uncertain` of the same attempt (the sweeper gave
up on a slow send that then succeeded) still records `delivered`, so no operator resends
a message that the service knows arrived.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from herald.states import TaskStatus

_RECORD_SQL = """
WITH old AS (
    SELECT id, status FROM tasks WHERE id = $1 FOR UPDATE
), done AS (
    UPDATE tasks t SET
        status = $4,
        telegram_message_id = coalesce($5, t.telegram_message_id),
        last_error_code = $6,
        last_error = $7,
        next_attempt_at = CASE WHEN $8::float8 IS NULL THEN t.next_attempt_at
                          ELSE now() + make_interval(secs => $8::float8) END,
        enqueued_at = CASE WHEN $8::float8 IS NULL THEN t.enqueued_at
                      ELSE now() + make_interval(secs => $8::float8) END,
        migrated_chat_id = coalesce($9, t.migrated_chat_id),
        lease_owner = NULL,
        lease_expires_at = NULL,
        updated_at = now()
    FROM old
    WHERE t.id = old.id AND t.attempt = $2
      AND ((old.status = 'sending' AND t.lease_owner = $3)
           OR ($4 = 'delivered' AND old.status = 'uncertain'))
    RETURNING t.id, t.attempt, old.status AS from_status
), event AS (
    INSERT INTO task_events (task_id, actor, from_status, to_status, attempt, reason,
                             error_code, details)
    SELECT id, $3, from_status, $4, attempt, $10, $6, $11::jsonb FROM done
)
SELECT from_status FROM done
"""


@dataclass(frozen=True, slots=True)
class Transition:
    """What one attempt ends in. `retry_in` (seconds) is set for a return to pending."""

    status: TaskStatus
    reason: str
    message_id: int | None = None
    error_code: int | None = None
    error: str | None = None
    retry_in: float | None = None
    migrated_chat_id: str | None = None
    details: dict[str, Any] | None = None


async def record(
    pool: Any, task_id: int, attempt: int, owner: str, outcome: Transition
) -> str | None:
    """Apply `outcome`; the status it replaced, or None when the fence refused it."""
    row = await pool.fetchrow(
        _RECORD_SQL,
        task_id,
        attempt,
        owner,
        outcome.status.value,
        outcome.message_id,
        outcome.error_code,
        outcome.error,
        outcome.retry_in,
        outcome.migrated_chat_id,
        outcome.reason,
        outcome.details,
    )
    return None if row is None else str(row["from_status"])
