"""Telegram's parse modes (HTML and MarkdownV2): the text a user sees, or Telegram's refusal.

The one parser of the project: intake checks a task's text with it before storing it,
and the emulator formats messages with it. It ports tdlib's parse_html and
parse_markdown_v2 (which the Bot API runs), so what Telegram refuses with "can't parse
entities" is refused here with the same words, and then cleans and trims the text as
tdlib's fix_formatted_text does, so `len(text)` is the length Telegram checks against
4096 (a text) or 1024 (a caption): characters, not UTF-16 units. Entity offsets and
lengths are UTF-16 code units, as in the Bot API.

Every step is linear in the length of the source; `bench/markup_validation.py` measures it.
"""

from __future__ import annotations

import re
from itertools import accumulate
from typing import Any

from herald.markup.entities import MarkupError, ParseEntitiesError, UnsupportedParseMode
from herald.markup.html import parse_html
from herald.markup.markdown import parse_markdown_v2

__all__ = [
    "MarkupError",
    "ParseEntitiesError",
    "UnsupportedParseMode",
    "format_text",
    "parse_html",
    "parse_markdown_v2",
    "text_length",
]

# tdlib's clean_input_string: control characters become spaces; carriage returns, U+2028
# to U+202E and three combining vertical lines are removed.
_REMOVED = "\r\u2028\u2029\u202a\u202b\u202c\u202d\u202e\u0333\u033f\u030a"
_CLEAN: dict[int, str | None] = {code: " " for code in range(32) if code not in (10, 13)}
_CLEAN.update(dict.fromkeys(map(ord, _REMOVED)))
_TO_CLEAN = re.compile("[\x00-\x09\x0b-\x1f" + _REMOVED + "]")
_REMOVED_SET = frozenset(_REMOVED)
# tdlib's is_empty_string: a text of only these characters is empty.
_EMPTY = re.compile(
    "[ \n\t\v\u00a0\u1680\u180e\u2000-\u200f\u202e\u202f\u205f\u2800\u3000\ufeff\ufffc"
    "\U000e0000-\U000e007f]*"
)


def _clean(text: str, entities: list[dict[str, Any]]) -> str:
    if _TO_CLEAN.search(text) is None:
        return text
    cleaned = text.translate(_CLEAN)
    if entities and len(cleaned) != len(text):
        # removed[k]: characters removed before offset k.
        removed = [0, *accumulate(ch in _REMOVED_SET for ch in text)]
        for found in entities:
            start, end = found["offset"], found["offset"] + found["length"]
            found["offset"] = start - removed[start]
            found["length"] = end - removed[end] - found["offset"]
        entities[:] = [e for e in entities if e["length"] > 0]
    return cleaned


def _trim(text: str, entities: list[dict[str, Any]]) -> str:
    """tdlib trims spaces and line breaks at the end, and at the start before any entity."""
    end = len(text.rstrip(" \n"))
    if end < len(text):
        kept = []
        for found in entities:
            if found["offset"] < end:
                found["length"] = min(found["length"], end - found["offset"])
                kept.append(found)
        entities[:] = kept
        text = text[:end]
    first = min((e["offset"] for e in entities), default=len(text))
    lead = len(text) - len(text.lstrip(" \n"))
    lead = min(lead, first)
    if lead:
        for found in entities:
            found["offset"] -= lead
        text = text[lead:]
    return text


_ASTRAL = re.compile("[\U00010000-\U0010ffff]")  # two UTF-16 units each


def _to_utf16(text: str, entities: list[dict[str, Any]]) -> None:
    if not entities or text.isascii() or _ASTRAL.search(text) is None:
        return
    units = [0, *accumulate(2 if ord(ch) > 0xFFFF else 1 for ch in text)]
    for found in entities:
        start, end = found["offset"], found["offset"] + found["length"]
        found["offset"], found["length"] = units[start], units[end] - units[start]


def format_text(source: str, parse_mode: str | None) -> tuple[str, list[dict[str, Any]]]:
    """The text Telegram shows and its entities; "" if Telegram finds it empty.

    Raises ParseEntitiesError (with the offset in `source`, in characters) for markup
    Telegram refuses, UnsupportedParseMode for a parse mode it does not know.
    """
    entities: list[dict[str, Any]]
    if not parse_mode:
        text, entities = source, []
    elif (mode := parse_mode.lower()) == "html":
        text, entities = parse_html(source)
    elif mode == "markdownv2":
        text, entities = parse_markdown_v2(source)
    else:
        raise UnsupportedParseMode()
    text = _trim(_clean(text, entities), entities)
    if _EMPTY.fullmatch(text):
        return "", []
    _to_utf16(text, entities)
    return text, entities


def text_length(source: str, parse_mode: str | None) -> int:
    """The length Telegram checks (characters once parsed, cleaned and trimmed).

    Raises what format_text raises. Plain text, intake's common case, skips the entities.
    """
    if parse_mode:
        return len(format_text(source, parse_mode)[0])
    text = source.translate(_CLEAN) if _TO_CLEAN.search(source) else source
    text = text.strip(" \n")
    return 0 if _EMPTY.fullmatch(text) else len(text)
