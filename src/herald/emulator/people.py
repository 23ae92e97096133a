"""What people do to a bot, as the updates Telegram would send it.

A user (a private chat whose id is the user's id) sends `/start <code>` or any text,
blocks or unblocks the bot; a group becomes a supergroup. Each adds its updates to the
bot's queue (`updates.py`) with Telegram's shapes, and marks the chat where a send would
notice: a blocked user's chat answers 403, a migrated group 400 with
`migrate_to_chat_id`.
"""

from __future__ import annotations

import time
from typing import Any

from herald.emulator.core import Emulator


def _user(user_id: int) -> dict[str, Any]:
    return {"id": user_id, "is_bot": False, "first_name": f"User {user_id}", "language_code": "en"}


def _bot_user(emulator: Emulator, bot: int) -> dict[str, Any]:
    return {"id": bot, "is_bot": True, "first_name": "Herald Emulator",
            "username": f"herald_emulator_{bot}_bot"}  # fmt: skip


def send_text(
    emulator: Emulator, bot: int, user_id: int, text: str, reply_to: int | None = None
) -> dict[str, Any]:
    """The user writes `text` to the bot in their private chat: a `message` update;
    `reply_to`: in reply to that message of the chat (Telegram's `reply_to_message`)."""
    message: dict[str, Any] = {
        "message_id": emulator.next_message_id(user_id),
        "from": _user(user_id),
        "chat": emulator.chats.chat_object(user_id),
        "date": int(time.time()),
        "text": text,
    }
    if text.startswith("/"):
        command = text.split(maxsplit=1)[0]
        message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
    if reply_to is not None:
        message["reply_to_message"] = _replied(emulator, bot, user_id, reply_to)
    return emulator.bot_updates(bot).add("message", message)


def _replied(emulator: Emulator, bot: int, chat_id: int, message_id: int) -> dict[str, Any]:
    """The message replied to, as Telegram nests it: the bot's, as it was sent (the
    emulator keeps those), else one of the user's own, with only its ids."""
    chat = emulator.chats.chat_object(chat_id)
    for logged in reversed(emulator.records.chat_log(chat_id)):
        if logged["message_id"] == message_id and logged["bot_id"] == bot:
            replied = {"message_id": message_id, "from": _bot_user(emulator, bot),
                       "chat": chat, "date": int(logged["time"])}  # fmt: skip
            for field in ("text", "caption"):
                if field in logged:
                    replied[field] = logged[field]
            return replied
    return {"message_id": message_id, "from": _user(chat_id), "chat": chat, "date": 0}


def _member(emulator: Emulator, bot: int, status: str) -> dict[str, Any]:
    member: dict[str, Any] = {"user": _bot_user(emulator, bot), "status": status}
    if status == "kicked":
        member["until_date"] = 0  # forever, as a user's block is
    return member


def _membership(emulator: Emulator, bot: int, chat_id: int, old: str, new: str) -> None:
    emulator.bot_updates(bot).add(
        "my_chat_member",
        {
            "chat": emulator.chats.chat_object(chat_id),
            "from": _user(chat_id) if chat_id > 0 else _user(1),
            "date": int(time.time()),
            "old_chat_member": _member(emulator, bot, old),
            "new_chat_member": _member(emulator, bot, new),
        },
    )


def start(emulator: Emulator, bot: int, user_id: int, code: str | None) -> dict[str, Any]:
    """The user presses Start (with a deep link's code): a bot they had blocked is
    unblocked first (Telegram's Restart), then `/start [code]`."""
    if user_id in emulator.chats.blocked:
        set_blocked(emulator, bot, user_id, False)
    return send_text(emulator, bot, user_id, "/start" if not code else f"/start {code}")


def set_blocked(emulator: Emulator, bot: int, chat_id: int, blocked: bool) -> None:
    """A user blocks (or unblocks) the bot; for a group, the bot is removed (or added)."""
    if blocked:
        emulator.chats.blocked.add(chat_id)
        gone = "kicked" if chat_id > 0 else "left"
        _membership(emulator, bot, chat_id, "member", gone)
    else:
        emulator.chats.blocked.discard(chat_id)
        _membership(emulator, bot, chat_id, "kicked" if chat_id > 0 else "left", "member")


def migrate(emulator: Emulator, bot: int | None, chat_id: int, new_chat_id: int) -> None:
    """The group `chat_id` becomes the supergroup `new_chat_id`: sends to the group get
    400 with `migrate_to_chat_id`, and the bot gets the two service messages."""
    emulator.chats.migrated[chat_id] = new_chat_id
    if bot is None:
        return
    now = int(time.time())
    box = emulator.bot_updates(bot)
    box.add(
        "message",
        {
            "message_id": emulator.next_message_id(chat_id),
            "from": _user(1),
            "chat": emulator.chats.chat_object(chat_id),
            "date": now,
            "migrate_to_chat_id": new_chat_id,
        },
    )
    box.add(
        "message",
        {
            "message_id": emulator.next_message_id(new_chat_id),
            "from": _user(1),
            "chat": emulator.chats.chat_object(new_chat_id),
            "date": now,
            "migrate_from_chat_id": chat_id,
        },
    )
