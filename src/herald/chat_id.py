"""Chat ids: one type, one parser.

Telegram addresses a chat by its integer id (negative for groups, supergroups and
channels; within 52 bits) or, for a public channel or supergroup, by `@username`.
Herald stores it as text (`tasks.chat_id`): the decimal integer, or the username.
`ChatId` is that text. `ChatId.parse` is the only way in from outside (intake's body, the
listing's `chat_id` query); `ref` is the form Telegram and the API take (an int, or the
username).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import GetCoreSchemaHandler
from pydantic_core import CoreSchema, core_schema

CHAT_ID_LIMIT = 2**52  # Telegram: chat ids fit in 52 bits
_USERNAME = re.compile(r"@[A-Za-z][A-Za-z0-9_]{3,31}")
_NUMERIC = re.compile(r"-?[0-9]{1,16}")


class ChatId(str):
    """A chat id as stored: `"42"`, `"-1001234567890"`, `"@channel"`."""

    __slots__ = ()

    @classmethod
    def parse(cls, value: int | str) -> ChatId:
        """From a request: an integer (or its decimal text) that is not 0 and fits in 52
        bits, or a username; ValueError otherwise."""
        if isinstance(value, str):
            if _USERNAME.fullmatch(value):
                return cls(value)
            if not _NUMERIC.fullmatch(value):
                raise ValueError("must be an integer or @channelusername")
            value = int(value)
        if value == 0 or abs(value) >= CHAT_ID_LIMIT:
            raise ValueError("out of range")
        return cls(value)

    @property
    def ref(self) -> int | str:
        """As Telegram and the API take it: numeric ids as the integers they came in as."""
        if self.startswith("@"):
            return str(self)
        try:
            return int(self)
        except ValueError:  # never stored by intake; sent as it is rather than refused
            return str(self)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        # In a request: a JSON integer (not a boolean) or a string, then `parse`.
        return core_schema.no_info_after_validator_function(
            cls.parse,
            core_schema.union_schema(
                [core_schema.int_schema(strict=True), core_schema.str_schema()]
            ),
            serialization=core_schema.plain_serializer_function_ser_schema(lambda c: c.ref),
        )
