"""SQL for Telegram's updates: store once, forward, list, and `herald poll`'s offset.

Storing an update is one statement, `INSERT ... ON CONFLICT (bot_id, update_id) DO
NOTHING`: the same update delivered twice (Telegram retries a webhook call it did not
see answered; a poller that died before confirming gets it again) is stored once, and
only the call that stored it acts on it (herald.updates.take).

A message from a chat is stored by the same one statement together with its
`message.received` events (`store_update(..., forward=True)`): one outbox row
(`callback_events`) per recipient bound to the chat whose client's endpoint takes
updates, only when the update was new. A chat bound to nobody costs one probe of
`ix_recipients_bot_id_chat_id` more than the plain insert.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from herald.callbacks.events import MESSAGE_RECEIVED
from herald.db.pool import Executor
from herald.db.recipients import EVENT_CONFLICT, event_insert
from herald.db.sql import literal

_STORE = """
INSERT INTO telegram_updates (bot_id, update_id, kind, chat_id, payload)
VALUES ($1, $2, $3, $4, $5::text::jsonb)
ON CONFLICT (bot_id, update_id) DO NOTHING
RETURNING id
"""

# The event's data is read from the payload as stored: Telegram's own message object,
# and the fields a receiver needs most taken out of it. $6: the bot command the text
# starts with (herald.updates.read), or NULL.
_MESSAGE = literal(MESSAGE_RECEIVED)
_MESSAGE_DATA = """jsonb_build_object(
                   'message_id', s.m -> 'message_id',
                   'text', coalesce(s.m -> 'text', s.m -> 'caption'),
                   'reply_to_message_id', s.m -> 'reply_to_message' -> 'message_id',
                   'command', $6::text,
                   'message', s.m)"""
_STORE_AND_FORWARD = f"""
WITH stored AS (
    INSERT INTO telegram_updates (bot_id, update_id, kind, chat_id, payload)
    VALUES ($1, $2, $3, $4, $5::text::jsonb)
    ON CONFLICT (bot_id, update_id) DO NOTHING
    RETURNING id, payload -> 'message' AS m
), forwarded AS ({event_insert("$2::bigint", "s.m -> 'chat' -> 'id'", _MESSAGE, _MESSAGE_DATA)}
    FROM stored s
    JOIN recipients r ON r.bot_id = $1 AND r.chat_id = $4
    JOIN callback_endpoints p ON p.client = r.client AND p.updates
    {EVENT_CONFLICT}
)
SELECT id FROM stored
"""


async def store_update(
    db: Executor,
    bot_id: int,
    update_id: int,
    kind: str,
    chat_id: str | None,
    payload: str,
    *,
    forward: bool = False,
    command: str | None = None,
) -> bool:
    """Store one update (`payload`: its JSON text); False when it was stored already.
    `forward`: a `message` update, forwarded as `message.received` (with `command`) to
    the clients of the recipients bound to `chat_id` that take updates."""
    if forward and chat_id is not None:
        stored = await db.fetchval(
            _STORE_AND_FORWARD, bot_id, update_id, kind, chat_id, payload, command
        )
    else:
        stored = await db.fetchval(_STORE, bot_id, update_id, kind, chat_id, payload)
    return stored is not None


class UpdateRecord(NamedTuple):
    id: int
    bot_id: int
    update_id: int
    kind: str
    chat_id: str | None
    payload: dict[str, Any]
    received_at: datetime


_COLUMNS = ", ".join(f"u.{name}" for name in UpdateRecord._fields)

# A producer sees the updates of chats bound to its recipients; an operator sees all.
_LIST = f"""
SELECT {_COLUMNS} FROM telegram_updates u
WHERE u.bot_id = $1 AND u.id > $2
  AND ($3::text IS NULL OR u.chat_id = $3)
  AND ($4::text IS NULL OR u.kind = $4)
  AND ($5::text IS NULL OR EXISTS (
        SELECT 1 FROM recipients r
        WHERE r.bot_id = u.bot_id AND r.client = $5 AND r.chat_id = u.chat_id))
ORDER BY u.id
LIMIT $6
"""


async def list_updates(
    db: Executor,
    bot_id: int,
    *,
    after: int = 0,
    chat_id: str | None = None,
    kind: str | None = None,
    client: str | None = None,
    limit: int = 100,
) -> list[UpdateRecord]:
    """Stored updates in the order they were stored, after the row id `after`."""
    rows = await db.fetch(_LIST, bot_id, after, chat_id, kind, client, limit)
    return [UpdateRecord._make(row) for row in rows]


async def read_offset(db: Executor, bot_id: int) -> int:
    """The next getUpdates offset: one past the last update stored by polling (0: none)."""
    value = await db.fetchval("SELECT next_offset FROM telegram_offsets WHERE bot_id = $1", bot_id)
    return int(value) if value is not None else 0


_ADVANCE = """
INSERT INTO telegram_offsets (bot_id, next_offset) VALUES ($1, $2)
ON CONFLICT (bot_id) DO UPDATE
SET next_offset = greatest(telegram_offsets.next_offset, excluded.next_offset), updated_at = now()
"""


async def advance_offset(db: Executor, bot_id: int, next_offset: int) -> None:
    """Move the offset forward (never back), in the transaction that stored the update."""
    await db.execute(_ADVANCE, bot_id, next_offset)
