"""What a Telegram update means to Herald, read without touching the database.

An update is a JSON object with `update_id` and one more field, its kind (`message`,
`my_chat_member`, ...). Herald acts on a few:

- a private message `/start <code>`: bind the recipient of that link code to the chat,
  unblock it, resubscribe it, welcome them;
- a private message `/start`: unblock the chat, resubscribe its recipients;
- a private message `/stop`: unsubscribe the chat's recipients;
- `my_chat_member` with status `kicked` or `left`: the bot was blocked or removed; with
  `member`, `administrator`, `creator` (or `restricted` and a member): back again;
- a message with `migrate_to_chat_id`: the group became a supergroup, move its tasks.

Every update, these included, is stored (herald.updates.take); anything else is only
stored, and listed by `GET /api/updates`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# Kinds whose object carries `chat` directly.
_CHAT_KINDS = (
    "message",
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "my_chat_member",
    "chat_member",
    "chat_join_request",
    "message_reaction",
    "message_reaction_count",
    "chat_boost",
    "removed_chat_boost",
    "business_message",
    "edited_business_message",
)
# /start, /start@herald_bot, /start CODE: Telegram's deep-link payload follows a space.
_COMMAND = re.compile(r"/(start|stop)(?:@[A-Za-z0-9_]+)?(?:\s+(\S+))?\s*")
_GONE = frozenset({"kicked", "left"})
_BACK = frozenset({"member", "administrator", "creator"})


@dataclass(frozen=True, slots=True)
class Start:
    chat_id: str
    code: str | None  # a deep link's code, or None for a bare /start


@dataclass(frozen=True, slots=True)
class Stop:
    chat_id: str


@dataclass(frozen=True, slots=True)
class Membership:
    chat_id: str
    blocked: bool
    status: str  # the bot's new status in the chat, as Telegram says it


@dataclass(frozen=True, slots=True)
class Migrated:
    chat_id: str
    to_chat_id: str


Effect = Start | Stop | Membership | Migrated


@dataclass(frozen=True, slots=True)
class Update:
    update_id: int
    kind: str
    chat_id: str | None
    effect: Effect | None


def read_update(data: Any) -> Update | None:
    """The update in `data` (decoded JSON), or None when it is not one."""
    if not isinstance(data, dict):
        return None
    update_id = data.get("update_id")
    if not isinstance(update_id, int) or isinstance(update_id, bool) or not 0 <= update_id < 2**63:
        return None
    kind = next((key for key in data if key != "update_id"), "unknown")
    body = data.get(kind)
    chat_id = _chat_of(kind, body)
    effect = None
    if chat_id is not None and isinstance(body, dict):
        effect = _effect(kind, body, chat_id)
    return Update(update_id, kind, chat_id, effect)


def _int(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**52:
        return value
    return None


def _chat_of(kind: str, body: Any) -> str | None:
    if not isinstance(body, dict):
        return None
    if kind == "callback_query":
        body = body.get("message")
        if not isinstance(body, dict):
            return None
    elif kind not in _CHAT_KINDS:
        return None
    chat = body.get("chat")
    chat_id = _int(chat.get("id")) if isinstance(chat, dict) else None
    return None if chat_id is None else str(chat_id)


def _effect(kind: str, body: dict[str, Any], chat_id: str) -> Effect | None:
    if kind == "message":
        migrate_to = _int(body.get("migrate_to_chat_id"))
        if migrate_to is not None:
            return Migrated(chat_id, str(migrate_to))
        text = body.get("text")
        chat = body["chat"]
        if isinstance(text, str) and chat.get("type") == "private":
            match = _COMMAND.fullmatch(text)
            if match is not None:
                if match.group(1) == "stop":
                    return Stop(chat_id)
                return Start(chat_id, match.group(2))
        return None
    if kind == "my_chat_member":
        member = body.get("new_chat_member")
        status = member.get("status") if isinstance(member, dict) else None
        if status in _GONE:
            return Membership(chat_id, True, status)
        if status in _BACK or (
            status == "restricted" and isinstance(member, dict) and member.get("is_member") is True
        ):
            return Membership(chat_id, False, status)
    return None
