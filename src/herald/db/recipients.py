"""SQL for recipients, their deep links and what Herald remembers of chats.

A recipient is a producer's (client, external_id), bound to a chat by a one-time link
code (`recipient_links`). A chat (`chats`, per bot) may be blocked (a 403 or a
`my_chat_member` said so; intake then stores new tasks to it already failed) or
migrated (intake then sends new tasks to the supergroup). Everything here that an
update causes runs inside the transaction that stored the update
(herald.updates.take), so it happens once per update; so do the recipients' events it
causes (`write_events`: recipient.linked, ...; docs/callbacks.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from herald.db.pool import Executor
from herald.db.sql import literal
from herald.states import TaskStatus

_PENDING = literal(TaskStatus.PENDING)


class Binding(NamedTuple):
    chat_id: str
    subscribed: bool


async def resolve(
    db: Executor, bot_id: int, client: str, external_ids: Sequence[str]
) -> dict[str, Binding]:
    """The chats `client`'s recipients are bound to; unbound ones are absent."""
    rows = await db.fetch(
        "SELECT external_id, chat_id, subscribed FROM recipients"
        " WHERE bot_id = $1 AND client = $2 AND external_id = ANY($3::text[])",
        bot_id,
        client,
        list(external_ids),
    )
    return {r["external_id"]: Binding(r["chat_id"], r["subscribed"]) for r in rows}


async def create_link(
    db: Executor,
    bot_id: int,
    client: str,
    external_id: str,
    code: str,
    welcome: str,
    ttl_seconds: float,
) -> datetime:
    """Store a link code; its expiry."""
    expires: datetime = await db.fetchval(
        "INSERT INTO recipient_links (code, bot_id, client, external_id, welcome, expires_at)"
        " VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6)) RETURNING expires_at",
        code,
        bot_id,
        client,
        external_id,
        welcome,
        float(ttl_seconds),
    )
    return expires


_RECIPIENT = """
SELECT r.external_id, r.chat_id, r.subscribed, r.bound_at, r.updated_at,
       coalesce(c.blocked, false) AS blocked, c.blocked_reason, c.migrated_to
FROM recipients r
LEFT JOIN chats c ON c.bot_id = r.bot_id AND c.chat_id = r.chat_id
WHERE r.bot_id = $1 AND r.client = $2 AND r.external_id = $3
"""


async def read_recipient(
    db: Executor, bot_id: int, client: str, external_id: str
) -> dict[str, Any] | None:
    row = await db.fetchrow(_RECIPIENT, bot_id, client, external_id)
    return None if row is None else dict(row.items())  # type: ignore[attr-defined]


async def delete_recipient(db: Executor, bot_id: int, client: str, external_id: str) -> bool:
    status = await db.execute(
        "DELETE FROM recipients WHERE bot_id = $1 AND client = $2 AND external_id = $3",
        bot_id,
        client,
        external_id,
    )
    return status != "DELETE 0"


class UsedLink(NamedTuple):
    client: str
    external_id: str
    welcome: str


_USE_LINK = """
UPDATE recipient_links SET used_at = now(), used_by_chat = $3
WHERE code = $1 AND bot_id = $2 AND used_at IS NULL AND expires_at > now()
RETURNING client, external_id, welcome
"""

_BIND = """
INSERT INTO recipients (bot_id, client, external_id, chat_id) VALUES ($1, $2, $3, $4)
ON CONFLICT (bot_id, client, external_id) DO UPDATE
SET chat_id = excluded.chat_id, subscribed = true, bound_at = now(), updated_at = now()
"""


async def use_link(db: Executor, bot_id: int, code: str, chat_id: str) -> UsedLink | None:
    """Spend a link code on `chat_id` and bind its recipient there; None when the code is
    unknown, used or expired."""
    row = await db.fetchrow(_USE_LINK, code, bot_id, chat_id)
    if row is None:
        return None
    link = UsedLink(row["client"], row["external_id"], row["welcome"])
    await db.execute(_BIND, bot_id, link.client, link.external_id, chat_id)
    return link


_SET_BLOCKED = """
INSERT INTO chats (bot_id, chat_id, blocked, blocked_reason) VALUES ($1, $2, $3, $4)
ON CONFLICT (bot_id, chat_id) DO UPDATE
SET blocked = excluded.blocked, blocked_reason = excluded.blocked_reason, updated_at = now()
"""


async def set_blocked(
    db: Executor, bot_id: int, chat_id: str, blocked: bool, reason: str | None
) -> None:
    await db.execute(_SET_BLOCKED, bot_id, chat_id, blocked, reason if blocked else None)


class RecipientKey(NamedTuple):
    client: str
    external_id: str


async def set_subscribed(
    db: Executor, bot_id: int, chat_id: str, subscribed: bool
) -> list[RecipientKey]:
    """/stop and /start: every recipient bound to the chat; those it changed."""
    rows = await db.fetch(
        "UPDATE recipients SET subscribed = $3, updated_at = now()"
        " WHERE bot_id = $1 AND chat_id = $2 AND subscribed <> $3"
        " RETURNING client, external_id",
        bot_id,
        chat_id,
        subscribed,
    )
    return [RecipientKey(r["client"], r["external_id"]) for r in rows]


def event_insert(update_id: str, chat_id: str, kind: str, data: str) -> str:
    """The head of an INSERT of recipients' events (herald.callbacks.events:
    message.received, recipient.linked, ...), one per row `r` (client, external_id) of
    the SELECT the caller completes with its FROM: the envelope every such event has,
    its SQL expressions given (the update's id, the chat, the type, the data beyond the
    common fields, a jsonb object). `seq` is the update's id: it orders the recipient's
    events, and with `EVENT_CONFLICT` makes a second event of one update for one
    recipient impossible."""
    return f"""
INSERT INTO callback_events (recipient, client, seq, type, payload)
SELECT r.external_id, r.client, {update_id}, {kind},
       jsonb_build_object(
           'type', {kind},
           'timestamp', now(),
           'data', jsonb_build_object(
               'recipient', r.external_id,
               'chat_id', {chat_id},
               'update_id', {update_id},
               'seq', {update_id}) || {data})"""


EVENT_CONFLICT = "ON CONFLICT (client, recipient, seq) WHERE task_id IS NULL DO NOTHING"
# $1 update_id, $2 chat, $3 type, $4 data beyond the common fields.
_EVENT_COLUMNS = event_insert("$1::bigint", "$2::text::bigint", "$3::text", "$4::jsonb")
# Every recipient bound to the chat; $5 bot.
_CHAT_EVENTS = f"""{_EVENT_COLUMNS}
FROM recipients r JOIN callback_endpoints p ON p.client = r.client AND p.updates
WHERE r.bot_id = $5 AND r.chat_id = $2::text
{EVENT_CONFLICT}
"""
# The recipients named in $5 (clients) and $6 (their external ids).
_NAMED_EVENTS = f"""{_EVENT_COLUMNS}
FROM unnest($5::text[], $6::text[]) AS r(client, external_id)
JOIN callback_endpoints p ON p.client = r.client AND p.updates
{EVENT_CONFLICT}
"""


async def write_events(
    db: Executor,
    bot_id: int,
    update_id: int,
    chat_id: str,
    kind: str,
    data: dict[str, Any] | None = None,
    *,
    recipients: Sequence[RecipientKey] | None = None,
) -> None:
    """The event `kind` of update `update_id` for `recipients` (None: every recipient
    bound to `chat_id`), to the clients that take updates; `data` adds to the common
    fields. In the transaction that stored the update."""
    common = (update_id, chat_id, kind, data or {})
    if recipients is None:
        await db.execute(_CHAT_EVENTS, *common, bot_id)
    elif recipients:
        clients = [r.client for r in recipients]
        await db.execute(_NAMED_EVENTS, *common, clients, [r.external_id for r in recipients])


# A group became a supergroup: remember it for future tasks (intake reads
# chats.migrated_to), point pending tasks and bound recipients at the new chat.
_MIGRATE = f"""
WITH mark AS (
    INSERT INTO chats (bot_id, chat_id, migrated_to) VALUES ($1, $2, $3)
    ON CONFLICT (bot_id, chat_id) DO UPDATE SET migrated_to = excluded.migrated_to,
                                                updated_at = now()
), moved AS (
    UPDATE tasks SET migrated_chat_id = $3, updated_at = now()
    WHERE chat_id = $2 AND status = {_PENDING} AND migrated_chat_id IS DISTINCT FROM $3
    RETURNING id
), rebound AS (
    UPDATE recipients SET chat_id = $3, updated_at = now()
    WHERE bot_id = $1 AND chat_id = $2
)
SELECT count(*) FROM moved
"""


async def migrate_chat(db: Executor, bot_id: int, chat_id: str, to_chat_id: str) -> int:
    """The pending tasks moved to `to_chat_id`."""
    moved: int = await db.fetchval(_MIGRATE, bot_id, chat_id, to_chat_id)
    return moved
