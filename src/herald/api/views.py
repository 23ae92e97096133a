"""Tasks and events as the API shows them, and cursors.

The views are derived: a task shows the columns of `TaskRecord` that `schemas.TaskOut`
declares, its chat id as the API takes it (`ChatId.ref`), and its stored content's
fields; an event shows `EventOut`'s columns of `EventRecord`.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from pydantic import BaseModel

from herald.api.errors import ApiError
from herald.api.schemas import EventOut, TaskOut
from herald.chat_id import ChatId
from herald.db.models import EventRecord, TaskRecord


def _shown(
    out: type[BaseModel], columns: tuple[str, ...], *, apart: tuple[str, ...] = ()
) -> tuple[tuple[str, int], ...]:
    """(name, position in the record) of each column that `out` shows."""
    return tuple(
        (name, columns.index(name))
        for name in out.model_fields
        if name in columns and name not in apart
    )


# chat_id is shown converted; the content's fields come from `content`.
_TASK_VIEW = _shown(TaskOut, TaskRecord._fields, apart=("chat_id",))
_EVENT_VIEW = _shown(EventOut, EventRecord._fields)


def task_json(task: TaskRecord) -> dict[str, Any]:
    data = {name: task[i] for name, i in _TASK_VIEW}
    data["chat_id"] = ChatId(task.chat_id).ref
    data.update(task.content)
    return data


def event_json(event: EventRecord) -> dict[str, Any]:
    return {name: event[i] for name, i in _EVENT_VIEW}


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
