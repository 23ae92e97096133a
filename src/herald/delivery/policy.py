"""From a classified outcome to the task's next state: retries, backoff, expiry, opt-ins.

- 429: back to pending after `retry_after`; never counts against max_attempts (it is
  Telegram's flow control, not a failure), only expiry ends it.
- Other retryable errors: exponential backoff with equal jitter, failed once the
  attempts or the TTL are used up.
- Ambiguous: `uncertain`, held for an operator; a task that opted into at-least-once
  is retried instead.
- A group that became a supergroup: due again at once, sent to the new chat id.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from herald.config import Settings
from herald.delivery.claim import Claimed
from herald.delivery.classify import Outcome, Verdict, error_code
from herald.delivery.record import Transition
from herald.states import DeliveryMode, TaskStatus


def backoff(attempt: int, settings: Settings) -> float:
    """Seconds before retry number `attempt` (1-based): half fixed, half random."""
    ceiling = min(
        settings.backoff_max_seconds, settings.backoff_base_seconds * 2.0 ** (attempt - 1)
    )
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def decide(task: Claimed, outcome: Outcome, settings: Settings) -> Transition:
    code = error_code(outcome)
    if outcome.verdict is Verdict.DELIVERED:
        return Transition(TaskStatus.DELIVERED, "delivered", message_id=outcome.message_id)
    if outcome.verdict is Verdict.FAILED:
        return Transition(TaskStatus.FAILED, "rejected", error_code=code, error=outcome.error)
    if outcome.verdict is Verdict.MIGRATE:
        return Transition(
            TaskStatus.PENDING,
            "migrated",
            error_code=code,
            error=outcome.error,
            retry_in=0.0,
            migrated_chat_id=outcome.migrate_to,
            details={"migrate_to_chat_id": outcome.migrate_to},
        )
    if outcome.verdict is Verdict.AMBIGUOUS and task.delivery != DeliveryMode.AT_LEAST_ONCE:
        return Transition(TaskStatus.UNCERTAIN, "ambiguous", error_code=code, error=outcome.error)
    # Certainly not sent (or an at-least-once task): try again later, if it may.
    if outcome.retry_after is not None:
        delay = outcome.retry_after
    elif task.attempt >= task.max_attempts:
        return Transition(
            TaskStatus.FAILED, "attempts exhausted", error_code=code, error=outcome.error
        )
    else:
        delay = backoff(task.attempt, settings)
    if task.expires_at is not None and datetime.now(UTC) + timedelta(seconds=delay) >= (
        task.expires_at
    ):
        return Transition(TaskStatus.FAILED, "expired", error_code=code, error=outcome.error)
    return Transition(
        TaskStatus.PENDING,
        "retry",
        error_code=code,
        error=outcome.error,
        retry_in=delay,
        details={"retry_in": round(delay, 3), "error": outcome.code},
    )
