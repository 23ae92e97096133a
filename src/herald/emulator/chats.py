"""The chats an emulator knows: their kind, and what an operator marked on them.

Telegram's ids tell the kind: positive ids are users (private chats), negative ids are
groups, and ids below -1e12 (written -100...) are supergroups and channels. Every chat
exists unless marked missing; a chat can be marked blocked (the user blocked the bot, or
the bot was kicked from the group) or migrated (a group upgraded to a supergroup).

A send may name a public chat by its `@username` instead of its id, as Herald's producers
may. Telegram resolves usernames of channels and public supergroups only. Here a username
named with `name_chat` is that chat (a channel or a supergroup); any other well-formed
username is a channel of its own, with an id derived from the name, so that every chat id
Herald accepts reaches a chat, as every numeric id does.
"""

from __future__ import annotations

import re
import zlib
from typing import Any

from herald.emulator.replies import BotApiError

_SUPERGROUP_BELOW = -1_000_000_000_000
# Letters, digits and underscores, a letter first; 4 to 32 characters, as Herald's intake
# accepts them (Telegram's own are 5 or more, but collectible ones may have 4).
_USERNAME = re.compile(r"@([A-Za-z][A-Za-z0-9_]{3,31})")
_PUBLIC_KINDS = ("channel", "supergroup")


def chat_type(chat_id: int) -> str:
    if chat_id > 0:
        return "private"
    return "supergroup" if chat_id < _SUPERGROUP_BELOW else "group"


def username_chat_id(username: str) -> int:
    """The id of the channel an unnamed `@username` stands for: stable, in -100... form."""
    return _SUPERGROUP_BELOW - zlib.crc32(username.lower().encode())


_BLOCKED = {
    "private": "Forbidden: bot was blocked by the user",
    "group": "Forbidden: bot was kicked from the group chat",
    "supergroup": "Forbidden: bot was kicked from the supergroup chat",
    "channel": "Forbidden: bot is not a member of the channel chat",
}


class ChatBook:
    def __init__(self) -> None:
        self.blocked: set[int] = set()
        self.missing: set[int] = set()
        self.migrated: dict[int, int] = {}
        self._objects: dict[int, dict[str, Any]] = {}
        self._usernames: dict[str, int] = {}  # lower-cased, without the @
        self._public: dict[int, tuple[str, str]] = {}  # id -> (username, kind)

    def name_chat(self, username: str, chat_id: int, kind: str = "channel") -> None:
        """Make `@username` the public name of `chat_id`, a channel or a supergroup."""
        match = _USERNAME.fullmatch(username)
        if match is None:
            raise ValueError(f"not a Telegram username: {username!r}")
        if kind not in _PUBLIC_KINDS or chat_id >= _SUPERGROUP_BELOW:
            raise ValueError("only channels and supergroups (ids -100...) have usernames")
        self._usernames[match.group(1).lower()] = chat_id
        self._public[chat_id] = (match.group(1), kind)
        self._objects.pop(chat_id, None)

    def kind(self, chat_id: int) -> str:
        public = self._public.get(chat_id)
        return public[1] if public is not None else chat_type(chat_id)

    def chat_object(self, chat_id: int) -> dict[str, Any]:
        chat = self._objects.get(chat_id)
        if chat is None:
            kind = self.kind(chat_id)
            if kind == "private":
                chat = {"id": chat_id, "first_name": f"User {chat_id}", "type": kind}
            else:
                chat = {"id": chat_id, "title": f"{kind.title()} {chat_id}", "type": kind}
            public = self._public.get(chat_id)
            if public is not None:
                chat["username"] = public[0]
            self._objects[chat_id] = chat
        return chat

    def target(self, raw: object) -> int:
        """The chat id a send goes to, or Telegram's error for it."""
        if raw is None or raw == "":
            raise BotApiError(400, "Bad Request: chat_id is empty")
        if isinstance(raw, str) and raw.startswith("@"):
            chat_id = self._resolve(raw)
        else:
            try:
                chat_id = int(raw)  # type: ignore[call-overload]
            except (TypeError, ValueError):
                raise BotApiError(400, "Bad Request: chat not found") from None
        if chat_id == 0 or chat_id in self.missing:
            raise BotApiError(400, "Bad Request: chat not found")
        if chat_id in self.blocked:
            raise BotApiError(403, _BLOCKED[self.kind(chat_id)])
        new_id = self.migrated.get(chat_id)
        if new_id is not None:
            raise BotApiError(
                400,
                "Bad Request: group chat was upgraded to a supergroup chat",
                migrate_to_chat_id=new_id,
            )
        return chat_id

    def _resolve(self, raw: str) -> int:
        match = _USERNAME.fullmatch(raw)
        if match is None:
            raise BotApiError(400, "Bad Request: chat not found")
        name = match.group(1)
        chat_id = self._usernames.get(name.lower())
        if chat_id is None:
            chat_id = username_chat_id(name)
            self._usernames[name.lower()] = chat_id
            self._public[chat_id] = (name, "channel")
        return chat_id
