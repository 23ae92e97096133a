"""Rows as the API shows them (the shape of `schemas.TaskOut` / `EventOut`), and cursors."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from herald.api.errors import ApiError

_TASK_FIELDS = (
    "id",
    "idempotency_key",
    "status",
    "send_at",
    "expires_at",
    "priority",
    "delivery",
    "max_attempts",
    "attempt",
    "failures",
    "next_attempt_at",
    "metadata",
    "telegram_message_id",
    "last_error_code",
    "last_error",
    "correlation_id",
    "created_at",
    "updated_at",
)
_EVENT_FIELDS = (
    "id",
    "at",
    "actor",
    "from_status",
    "to_status",
    "attempt",
    "reason",
    "error_code",
    "details",
)


def chat_id_out(stored: str) -> int | str:
    """Stored as text; numeric ids go back out as the integers they came in as."""
    return int(stored) if stored.lstrip("-").isdigit() else stored


def task_json(row: Any) -> dict[str, Any]:
    data = {name: row[name] for name in _TASK_FIELDS}
    data["chat_id"] = chat_id_out(row["chat_id"])
    data.update(row["content"])
    return data


def event_json(row: Any) -> dict[str, Any]:
    return {name: row[name] for name in _EVENT_FIELDS}


class InvalidCursor(ApiError):
    status = 400
    code = "invalid_cursor"


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"v1:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The id to continue below. A forged cursor can only name a position, never widen a query."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        version, _, value = raw.partition(":")
        if version != "v1" or not value.isdigit() or len(value) > 19:
            raise ValueError(raw)
        last_id = int(value)
        if not 0 < last_id < 2**63:
            raise ValueError(raw)
        return last_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidCursor("the cursor is not one this API gave out") from None
