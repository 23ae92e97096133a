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

Every update, these included, is stored (herald.updates.take) and listed by `GET
/api/updates`. Any other `message` from a chat (a text, a reply, another command, media)
is also forwarded to the clients of the recipients bound to that chat, for those that
asked (`message.received`, docs/callbacks.md); anything else is only stored.
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
# Telegram's form of a command: up to 32 letters, digits or underscores, maybe @bot.
_ANY_COMMAND = re.compile(r"/([A-Za-z0-9_]{1,32})(?:@[A-Za-z0-9_]+)?(?=\s|$)")
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
    # The update says the bot went or came back (its old status was on the other side):
    # what recipient.blocked and recipient.unblocked report. Not member -> administrator.
    changed: bool = True


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
    # A message from a chat with no effect: its recipients' clients hear of it
    # (message.received), with the bot command its text starts with, if any.
    forward: bool = False
    command: str | None = None


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
    forward = kind == "message" and chat_id is not None and effect is None
    command = _command(body) if forward else None
    return Update(update_id, kind, chat_id, effect, forward, command)


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


def _command(message: Any) -> str | None:
    """The bot command a message's text starts with (`/help`, without `@bot`), else None."""
    text = message.get("text") if isinstance(message, dict) else None
    if not isinstance(text, str):
        return None
    match = _ANY_COMMAND.match(text)
    return None if match is None else "/" + match.group(1)


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
        old = body.get("old_chat_member")
        old_status = old.get("status") if isinstance(old, dict) else None
        was_gone = old_status in _GONE if isinstance(old_status, str) else None
        if status in _GONE:
            return Membership(chat_id, True, status, was_gone is not True)
        if status in _BACK or (
            status == "restricted" and isinstance(member, dict) and member.get("is_member") is True
        ):
            return Membership(chat_id, False, status, was_gone is not False)
    return None
