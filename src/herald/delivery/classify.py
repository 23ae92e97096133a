"""What Telegram's answer (or its absence) means for a task: the design page's step 4.

An answer is judged by what it says, by Telegram's `error_code`:

```
send -> a Message, or JSON {"ok": true, "result": {"message_id": <int>, ...}}
                                                  -> DELIVERED
     -> 429 (retry_after)                         -> RETRY after retry_after, flow control
     -> 400 with migrate_to_chat_id               -> MIGRATE: resend to the supergroup now
     -> 400, 403, 413                             -> FAILED, never retried
     -> other 4xx (401, 404, 409, ...)            -> RETRY with backoff (certainly not sent)
     -> TelegramNetworkError caused by
        aiohttp.ClientConnectorError              -> RETRY (the connection never opened)
     -> 5xx, timeout, dropped connection, a body
        that says neither, anything else          -> AMBIGUOUS (may have been sent)
```
Only an answer Telegram gave, or a connection that never opened, proves what happened.

aiogram validates the whole answer against its models and raises `ClientDecodeError` (with
the decoded JSON in `data`) when one field does not fit, for example a field added or
retyped by a newer Bot API. Such an answer still says `ok` and `message_id`, or `ok: false`
and `error_code`: that is what decides, so an aiogram release behind Telegram never turns
successes into `uncertain`. Only an answer that says neither is ambiguous.

Every error text goes through `redact`: aiohttp quotes URLs, and a Bot API URL holds the
bot token. The text kept is the error's class and Telegram's description.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import aiohttp
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramAPIError,
    TelegramBadRequest,
    TelegramConflictError,
    TelegramEntityTooLarge,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)

from herald.telegram.redact import redact

_ERROR_TEXT_LIMIT = 1000
# A longer flood wait is waited in steps: an absurd retry_after must not overflow
# PostgreSQL's interval arithmetic in a record shared with other tasks.
MAX_RETRY_AFTER = 86_400.0


class Verdict(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    MIGRATE = "migrate"
    FAILED = "failed"
    AMBIGUOUS = "ambiguous"


@dataclass(frozen=True, slots=True)
class SendResult:
    """What one send came to: the verdict, and what Telegram said or what went wrong."""

    verdict: Verdict
    # A bounded label ("429", "4xx", "connect", "decode", ...): the metric's `code` label
    # and the retry event's detail. Never free text.
    code: str = ""
    error: str | None = None
    message_id: int | None = None
    retry_after: float | None = None
    migrate_to: str | None = None
    # Telegram's own error_code, when it gave one: the task's `last_error_code`.
    error_code: int | None = None
    # Decided from the raw answer because aiogram's models refused part of it.
    partly_parsed: bool = False
    # A 403 saying the chat will not take messages from this bot again (blocked, kicked,
    # the user deactivated): Telegram's words, for the record to mark the chat blocked.
    chat_gone: str | None = None

    @property
    def flow_control(self) -> bool:
        """A 429: Telegram asked to slow down. Never a failed attempt."""
        return self.error_code == 429


def delivered(message_id: int, *, partly_parsed: bool = False) -> SendResult:
    return SendResult(Verdict.DELIVERED, message_id=message_id, partly_parsed=partly_parsed)


# 403s after which the chat takes nothing from this bot until its person says otherwise
# (`/start`, or adding the bot back). "not a member of the channel" is not among them: it
# may be a bot not yet added, rather than one removed.
_GONE = re.compile(
    r"bot was blocked by the user|user is deactivated|bot was kicked from", re.IGNORECASE
)
# Labels of error codes worth a series of their own; any other is "4xx" or "5xx".
_KNOWN_CODES = frozenset({400, 401, 403, 404, 409, 413, 429})
_CODE_OF = (
    # Order matters: subclasses first (TelegramEntityTooLarge is a TelegramNetworkError).
    (TelegramEntityTooLarge, 413),
    (TelegramBadRequest, 400),
    (TelegramUnauthorizedError, 401),
    (TelegramForbiddenError, 403),
    (TelegramNotFound, 404),
    (TelegramConflictError, 409),
)


def refused(
    error_code: int,
    error: str,
    *,
    retry_after: float | None = None,
    migrate_to: str | None = None,
    partly_parsed: bool = False,
) -> SendResult:
    """The outcome of an answer `{"ok": false, "error_code": ...}`: decided by the code."""
    kind = "5xx" if error_code >= 500 else "4xx" if error_code >= 400 else "other"
    label = str(error_code) if error_code in _KNOWN_CODES else kind

    def result(verdict: Verdict, **more: Any) -> SendResult:
        return SendResult(
            verdict, label, error, error_code=error_code, partly_parsed=partly_parsed, **more
        )

    if error_code == 429:
        if retry_after is not None:
            retry_after = min(retry_after, MAX_RETRY_AFTER)
        return result(Verdict.RETRY, retry_after=retry_after)
    if migrate_to is not None:
        return result(Verdict.MIGRATE, migrate_to=migrate_to)
    if error_code == 403 and _GONE.search(error):
        return result(Verdict.FAILED, chat_gone=error[:200])
    if error_code in (400, 403, 413):
        return result(Verdict.FAILED)
    if 400 <= error_code < 500:
        # 401, 404, 409...: Telegram answered and refused; nothing was sent. Maybe a
        # configuration being fixed, so retried with backoff up to max_attempts.
        return result(Verdict.RETRY)
    # 5xx, or a code no Bot API uses: nothing proves the message was not sent.
    return SendResult(
        Verdict.AMBIGUOUS, kind, error, error_code=error_code, partly_parsed=partly_parsed
    )


def classify(exc: BaseException, secrets: Sequence[str] = ()) -> SendResult:
    """The outcome of a send that raised `exc`; `secrets`: the bot token, to redact."""
    if isinstance(exc, ClientDecodeError):
        return read_answer(exc.data, secrets)
    text = _text(exc, secrets)
    if isinstance(exc, TelegramRetryAfter):
        return refused(429, text, retry_after=float(exc.retry_after))
    if isinstance(exc, TelegramMigrateToChat):
        return refused(400, text, migrate_to=str(exc.migrate_to_chat_id))
    for cls, code in _CODE_OF:
        if isinstance(exc, cls):
            return refused(code, text)
    if isinstance(exc, TelegramNetworkError):
        if isinstance(exc.__cause__, aiohttp.ClientConnectorError):
            return SendResult(Verdict.RETRY, "connect", text)
        return SendResult(Verdict.AMBIGUOUS, "network", text)
    if isinstance(exc, TelegramServerError):
        return SendResult(Verdict.AMBIGUOUS, "5xx", text)
    if isinstance(exc, TelegramAPIError):
        # Another status aiogram has no class for (its status is not kept): a refusal.
        return SendResult(Verdict.RETRY, "4xx", text)
    return SendResult(Verdict.AMBIGUOUS, "other", text)


def read_answer(data: Any, secrets: Sequence[str] = ()) -> SendResult:
    """What a decoded answer that aiogram could not fit into its models says.

    `data` is the JSON aiogram decoded, or the raw body when it was not JSON.
    """
    if isinstance(data, dict):
        ok = data.get("ok")
        result = data.get("result")
        if ok is True and isinstance(result, dict) and _fits(result.get("message_id"), 1, 2**63):
            return delivered(result["message_id"], partly_parsed=True)
        if ok is False and _fits(data.get("error_code"), 100, 600):
            description = data.get("description")
            text = f"ClientDecodeError: error_code {data['error_code']}"
            if isinstance(description, str):
                text += f": {description}"
            parameters = data.get("parameters")
            if not isinstance(parameters, dict):
                parameters = {}
            migrate_to = parameters.get("migrate_to_chat_id")
            return refused(
                data["error_code"],
                _clean(text, secrets),
                retry_after=_seconds(parameters.get("retry_after")),
                migrate_to=str(migrate_to) if _fits(migrate_to, -(2**63), 2**63) else None,
                partly_parsed=True,
            )
    body = data if isinstance(data, str) else repr(data)
    text = f"ClientDecodeError: an answer that says neither ok nor an error: {body[:200]}"
    return SendResult(Verdict.AMBIGUOUS, "decode", _clean(text, secrets))


def _fits(value: object, low: int, high: int) -> bool:
    """An integer (not a bool) in [low, high): what the columns it goes to can hold."""
    return isinstance(value, int) and not isinstance(value, bool) and low <= value < high


def _seconds(value: object) -> float | None:
    """A retry_after as Telegram means it: a finite, non-negative number of seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            seconds = float(value)
        except OverflowError:  # an integer beyond any float: JSON allows it
            return None
        if math.isfinite(seconds) and seconds >= 0:
            return seconds
    return None


def _text(exc: BaseException, secrets: Sequence[str]) -> str:
    """The error's class and its message (Telegram's description for an API error)."""
    message = exc.message if isinstance(exc, TelegramAPIError) else str(exc)
    return _clean(f"{type(exc).__name__}: {message}", secrets)


def _clean(text: str, secrets: Sequence[str]) -> str:
    return redact(text, secrets)[:_ERROR_TEXT_LIMIT]
