"""The chats an emulator knows: their kind, and what an operator marked on them.

Telegram's ids tell the kind: positive ids are users (private chats), negative ids are
groups, and ids below -1e12 (written -100...) are supergroups and channels. Every chat
exists unless marked missing; a chat can be marked blocked (the user blocked the bot, or
the bot was kicked from the group) or migrated (a group upgraded to a supergroup).
"""

from __future__ import annotations

from typing import Any

from herald.emulator.replies import ApiError

_SUPERGROUP_BELOW = -1_000_000_000_000


def chat_type(chat_id: int) -> str:
    if chat_id > 0:
        return "private"
    return "supergroup" if chat_id < _SUPERGROUP_BELOW else "group"


def is_group(chat_id: int) -> bool:
    return chat_id < 0


def _chat_object(chat_id: int) -> dict[str, Any]:
    kind = chat_type(chat_id)
    if kind == "private":
        return {"id": chat_id, "first_name": f"User {chat_id}", "type": kind}
    return {"id": chat_id, "title": f"{kind.title()} {chat_id}", "type": kind}


_BLOCKED = {
    "private": "Forbidden: bot was blocked by the user",
    "group": "Forbidden: bot was kicked from the group chat",
    "supergroup": "Forbidden: bot was kicked from the supergroup chat",
}


class ChatBook:
    def __init__(self) -> None:
        self.blocked: set[int] = set()
        self.missing: set[int] = set()
        self.migrated: dict[int, int] = {}
        self._objects: dict[int, dict[str, Any]] = {}

    def chat_object(self, chat_id: int) -> dict[str, Any]:
        chat = self._objects.get(chat_id)
        if chat is None:
            chat = self._objects[chat_id] = _chat_object(chat_id)
        return chat

    def target(self, raw: object) -> int:
        """The chat id a send goes to, or Telegram's error for it."""
        if raw is None or raw == "":
            raise ApiError(400, "Bad Request: chat_id is empty")
        try:
            chat_id: int = int(raw)  # type: ignore[call-overload]
        except (TypeError, ValueError):
            raise ApiError(400, "Bad Request: chat not found") from None
        if chat_id == 0 or chat_id in self.missing:
            raise ApiError(400, "Bad Request: chat not found")
        if chat_id in self.blocked:
            raise ApiError(403, _BLOCKED[chat_type(chat_id)])
        new_id = self.migrated.get(chat_id)
        if new_id is not None:
            raise ApiError(
                400,
                "Bad Request: group chat was upgraded to a supergroup chat",
                migrate_to_chat_id=new_id,
            )
        return chat_id
