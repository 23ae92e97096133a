"""What Telegram's answer (or its absence) means for a task: the design page's step 4.

```
send -> Message                                   -> DELIVERED
     -> TelegramRetryAfter (429)                  -> RETRY after retry_after (scope paused)
     -> TelegramMigrateToChat                     -> MIGRATE: resend to the supergroup now
     -> TelegramBadRequest (400), Forbidden (403),
        TelegramEntityTooLarge (413)              -> FAILED, never retried
     -> other JSON 4xx (401, 404, 409)            -> RETRY with backoff (certainly not sent)
     -> TelegramNetworkError caused by
        aiohttp.ClientConnectorError              -> RETRY (the connection never opened)
     -> 5xx, timeout, dropped connection, a body
        that is not Telegram's JSON, anything else -> AMBIGUOUS (may have been sent)
```
Only an answer Telegram gave, or a connection that never opened, proves nothing was sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import aiohttp
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramAPIError,
    TelegramBadRequest,
    TelegramEntityTooLarge,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)


class Verdict(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    MIGRATE = "migrate"
    FAILED = "failed"
    AMBIGUOUS = "ambiguous"


@dataclass(frozen=True, slots=True)
class Outcome:
    verdict: Verdict
    # Telegram's error_code, or 0 for a transport failure; the label of TELEGRAM_ERRORS.
    code: str = ""
    error: str | None = None
    message_id: int | None = None
    retry_after: float | None = None
    migrate_to: str | None = None


def delivered(message_id: int) -> Outcome:
    return Outcome(Verdict.DELIVERED, message_id=message_id)


def classify(exc: BaseException) -> Outcome:
    """The outcome of a send that raised `exc`."""
    text = f"{type(exc).__name__}: {exc}"[:1000]
    if isinstance(exc, TelegramRetryAfter):
        return Outcome(Verdict.RETRY, "429", text, retry_after=float(exc.retry_after))
    if isinstance(exc, TelegramMigrateToChat):
        return Outcome(Verdict.MIGRATE, "400", text, migrate_to=str(exc.migrate_to_chat_id))
    if isinstance(exc, TelegramBadRequest):
        return Outcome(Verdict.FAILED, "400", text)
    if isinstance(exc, TelegramForbiddenError):
        return Outcome(Verdict.FAILED, "403", text)
    if isinstance(exc, TelegramEntityTooLarge):
        return Outcome(Verdict.FAILED, "413", text)
    if isinstance(exc, TelegramNetworkError):
        if isinstance(exc.__cause__, aiohttp.ClientConnectorError):
            return Outcome(Verdict.RETRY, "connect", text)
        return Outcome(Verdict.AMBIGUOUS, "network", text)
    if isinstance(exc, TelegramServerError):
        return Outcome(Verdict.AMBIGUOUS, "5xx", text)
    if isinstance(exc, ClientDecodeError):
        return Outcome(Verdict.AMBIGUOUS, "decode", text)
    if isinstance(exc, TelegramAPIError):
        # 401, 404, 409: Telegram answered and refused; nothing was sent. Maybe a
        # configuration being fixed, so retried with backoff up to max_attempts.
        return Outcome(Verdict.RETRY, "4xx", text)
    return Outcome(Verdict.AMBIGUOUS, "other", text)


def error_code(outcome: Outcome) -> int | None:
    """Telegram's numeric error_code for the task's `last_error_code`, when it gave one."""
    return int(outcome.code) if outcome.code.isdigit() else None
