"""What the emulator keeps for tests to read: the latest messages and requests, bounded.

Anyone who reaches the emulator's port can read these logs through the control API, and
anyone can post to it, so what is kept is bounded and holds no secret:
- no bot token, only the bot's id (the digits before the colon, public in Telegram too);
- requests with a token the emulator refuses are not kept at all (the caller drops them);
- at most `keep` messages and `keep` requests, the oldest dropped first;
- a request's parameters are kept up to a budget of characters; a larger value is replaced
  by a note of its size, so a 5 MB post costs its few bytes of note, not 5 MB.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import orjson

from herald.emulator.options import DEFAULT_KEEP, OptionError

# Characters of one request's parameter values kept in the log: a text at Telegram's
# 4,096-character limit, with its markup, fits several times over.
PARAMS_BUDGET = 32_768
MAX_PARAMS = 32  # a Bot API call has a dozen at most


def bot_id(token: str) -> int:
    """The bot's id: the digits before the colon of a token the emulator accepted."""
    return int(token.partition(":")[0])


def kept_params(params: dict[str, Any], size: int | None) -> dict[str, Any]:
    """`params` as the log keeps them.

    `size` is the length of a request whose values are all strings or uploads (a query, a
    form, multipart): no larger than the budget, it cannot hold more than the budget, so
    the hot path keeps the dict as it is. None (JSON, or a call made in process) means
    unknown: nested values could take many times their JSON's size in memory.
    """
    if size is not None and size <= PARAMS_BUDGET and len(params) <= MAX_PARAMS:
        return params
    kept: dict[str, Any] = {}
    left = PARAMS_BUDGET
    for key, value in list(params.items())[:MAX_PARAMS]:
        if isinstance(value, dict | list):
            # Nested JSON (a reply_markup sent as JSON) is kept as its JSON text, as a
            # form sends it: a string has a size the budget can count.
            value = orjson.dumps(value).decode()
        if isinstance(value, str):
            if len(value) > left:
                value = f"<{len(value)} characters, not kept>"
            else:
                left -= len(value)
        kept[key] = value
    return kept


class Records:
    """The message log (all chats, and per chat) and the request log, `keep` each."""

    def __init__(self, keep: int = DEFAULT_KEEP) -> None:
        if keep < 1:
            raise OptionError("keep must be >= 1")
        self.keep = keep
        self.messages: deque[dict[str, Any]] = deque(maxlen=keep)
        self.by_chat: dict[int, deque[dict[str, Any]]] = {}
        self.requests: deque[dict[str, Any]] = deque(maxlen=keep)
        # Counts since the last reset, whatever the logs dropped.
        self.message_count = 0
        self.request_count = 0

    def add_message(self, chat_id: int, message: dict[str, Any]) -> None:
        if len(self.messages) == self.keep:
            # The oldest message overall is also the oldest of its chat.
            oldest_chat = self.messages[0]["chat_id"]
            chat_log = self.by_chat[oldest_chat]
            chat_log.popleft()
            if not chat_log:
                del self.by_chat[oldest_chat]
        self.messages.append(message)
        kept = self.by_chat.get(chat_id)
        if kept is None:
            kept = self.by_chat[chat_id] = deque()
        kept.append(message)
        self.message_count += 1

    def add_request(self, record: dict[str, Any]) -> None:
        self.requests.append(record)
        self.request_count += 1

    def chat_log(self, chat_id: int | None) -> deque[dict[str, Any]]:
        if chat_id is None:
            return self.messages
        return self.by_chat.get(chat_id) or deque()
