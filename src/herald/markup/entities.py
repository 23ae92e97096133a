"""What both parse modes share: Telegram's refusals, the entity being parsed, tg:// links.

The wording of every refusal is tdlib's (`td/telegram/MessageEntity.cpp`), which the Bot
API returns as "Bad Request: can't parse entities: <reason>"; offsets in that wording
are UTF-8 byte offsets, as Telegram writes them. `offset` on the exception is the same
place counted in characters of the source, for callers that point at it.
"""

from __future__ import annotations

import re


class MarkupError(ValueError):
    """A text Telegram refuses to format; str() is the Bot API's description."""


class UnsupportedParseMode(MarkupError):
    def __init__(self) -> None:
        super().__init__("Bad Request: unsupported parse_mode")


class ParseEntitiesError(MarkupError):
    """Telegram's 400 "Bad Request: can't parse entities: ..."."""

    def __init__(self, reason: str, offset: int) -> None:
        super().__init__(f"Bad Request: can't parse entities: {reason}")
        self.reason = reason
        self.offset = offset  # in characters (code points) of the source


def match_end(pattern: re.Pattern[str], s: str, i: int, end: int | None = None) -> int:
    """Where `pattern`'s match at i ends; the pattern matches there by construction."""
    m = pattern.match(s, i) if end is None else pattern.match(s, i, end)
    assert m is not None
    return m.end()


def search_start(pattern: re.Pattern[str], s: str, i: int) -> int:
    """Where `pattern` is next found from i; the NUL ending the source guarantees it is."""
    m = pattern.search(s, i)
    assert m is not None
    return m.start()


def byte_offset(source: str, index: int) -> int:
    """Telegram's offsets in its messages: UTF-8 bytes. Only computed for an error."""
    return len(source[:index].encode("utf-8", "surrogatepass"))


# An entity whose start was read and whose end was not yet. A plain tuple: one is made
# per mark, and a tuple costs a tenth of a class instance. Fields: kind (the entity type
# in MarkdownV2, the tag in HTML), start (offset in the parsed text, code points), at
# (offset of its opening in the source, characters), piece (pieces of parsed text before
# it), argument (URL, language, custom emoji id, date format, "1" if expandable), date
# (tg-time's Unix time).
Open = tuple[str, int, int, int, str, int]


def entity(kind: str, start: int, end: int, **extra: object) -> dict[str, object]:
    return {"type": kind, "offset": start, "length": end - start, **extra}


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def ascii_lower(value: str) -> str:
    """tdlib's to_lower: ASCII letters only (str.lower may change a string's length)."""
    return value.translate(_ASCII_LOWER)


_INT64 = re.compile(r"-?[0-9]{1,19}")


def int64(value: str) -> int | None:
    """tdlib's to_integer_safe<int64>: only the canonical decimal form of an int64."""
    if not _INT64.fullmatch(value):
        return None
    number = int(value)
    if str(number) != value or not -(2**63) <= number < 2**63:
        return None
    return number


def int32_prefix(value: str) -> int:
    """tdlib's to_integer<int32>: the leading digits, wrapping around like C does."""
    negative = value.startswith("-")
    number = 0
    for ch in value[negative:]:
        if not "0" <= ch <= "9":
            break
        number = (number * 10 + ord(ch) - 48) & 0xFFFFFFFF
    if negative:
        number = -number & 0xFFFFFFFF
    return number - 2**32 if number >= 2**31 else number


def date_format_ok(date_format: str) -> bool:
    return date_format in ("r", "R") or all(ch in "tTdDwW" for ch in date_format)
