"""From a classified result to the task's next state: retries, backoff, expiry, opt-ins.

Two counters, two meanings. `attempt` counts claims: it fences the record of each one and
says nothing about failure. `failures` counts attempts that failed (Telegram refused, the
connection never opened, or, for an at-least-once task, an ambiguous answer), and
`max_attempts` bounds that one.

- 429: back to pending after `retry_after`; Telegram's flow control, not a failure, so it
  never uses up an attempt; only expiry ends it.
- Other retryable errors: one more failure; exponential backoff with equal jitter, failed
  once the failures reach max_attempts or the TTL is used up.
- A definite refusal (400, 403, 413): failed at once (a failure too).
- Ambiguous: `uncertain`, held for an operator; a task that opted into at-least-once
  is retried instead, as a failure.
- A group that became a supergroup: due again at once, sent to the new chat id; not a
  failure.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from herald.config import Settings
from herald.delivery.claim import Claimed
from herald.delivery.classify import SendResult, Verdict
from herald.delivery.record import Transition
from herald.states import (
    AMBIGUOUS,
    DELIVERED,
    EXHAUSTED,
    EXPIRED,
    MIGRATED,
    REJECTED,
    RETRY,
    DeliveryMode,
)


def backoff(failures: int, settings: Settings) -> float:
    """Seconds before the retry after failure number `failures` (1-based): half fixed,
    half random."""
    ceiling = min(
        settings.backoff_max_seconds, settings.backoff_base_seconds * 2.0 ** (failures - 1)
    )
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def decide(task: Claimed, result: SendResult, settings: Settings) -> Transition:
    code = result.error_code
    if result.verdict is Verdict.DELIVERED:
        return Transition(DELIVERED.to, DELIVERED.reason, message_id=result.message_id)
    if result.verdict is Verdict.FAILED:
        return Transition(
            REJECTED.to,
            REJECTED.reason,
            error_code=code,
            error=result.error,
            failed=True,
            bot_id=settings.bot_id,
            chat_gone=result.chat_gone,
        )
    if result.verdict is Verdict.MIGRATE:
        return Transition(
            MIGRATED.to,
            MIGRATED.reason,
            error_code=code,
            error=result.error,
            retry_in=0.0,
            migrated_chat_id=result.migrate_to,
            details={"migrate_to_chat_id": result.migrate_to},
            bot_id=settings.bot_id,
        )
    if result.verdict is Verdict.AMBIGUOUS and task.delivery != DeliveryMode.AT_LEAST_ONCE:
        return Transition(AMBIGUOUS.to, AMBIGUOUS.reason, error_code=code, error=result.error)
    # Certainly not sent (or an at-least-once task): try again later, if it may.
    failed = not result.flow_control
    if not failed:
        failures = task.failures
        delay = result.retry_after
        if delay is None:  # a 429 that did not say how long: wait as after a failure
            delay = backoff(failures + 1, settings)
    else:
        failures = task.failures + 1
        if failures >= task.max_attempts:
            return Transition(
                EXHAUSTED.to,
                EXHAUSTED.reason,
                error_code=code,
                error=result.error,
                failed=True,
            )
        delay = backoff(failures, settings)
    if task.expires_at is not None and datetime.now(UTC) + timedelta(seconds=delay) >= (
        task.expires_at
    ):
        return Transition(
            EXPIRED.to, EXPIRED.reason, error_code=code, error=result.error, failed=failed
        )
    return Transition(
        RETRY.to,
        RETRY.reason,
        error_code=code,
        error=result.error,
        retry_in=delay,
        details={"retry_in": round(delay, 3), "error": result.code, "failures": failures},
        failed=failed,
    )
