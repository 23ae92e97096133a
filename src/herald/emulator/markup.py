"""Telegram's parse modes (HTML and MarkdownV2): plain text plus entities, or Telegram's error.

Follows the Bot API's "Formatting options" and tdlib's parser closely enough that what
Telegram refuses with "can't parse entities" is refused here with the same wording, and the
text whose length is checked is the text after parsing, trimmed like Telegram trims it.
Entity offsets and lengths are in UTF-16 code units, as in the Bot API.
"""

from __future__ import annotations

from typing import Any

from herald.emulator.entities import ParseEntitiesError
from herald.emulator.markup_html import parse_html
from herald.emulator.markup_markdown import parse_markdown_v2

__all__ = ["ParseEntitiesError", "format_text", "parse_html", "parse_markdown_v2"]


def _trim(text: str, entities: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """Telegram drops leading and trailing whitespace, and entities with it."""
    stripped = text.strip()
    if stripped == text:
        return text, entities
    lead = len(text) - len(text.lstrip())
    size = len(stripped)
    kept = []
    for entity in entities:
        start = min(max(entity["offset"] - lead, 0), size)
        end = min(max(entity["offset"] + entity["length"] - lead, 0), size)
        if end > start:
            kept.append({**entity, "offset": start, "length": end - start})
    return stripped, kept


def _to_utf16(text: str, entities: list[dict[str, Any]]) -> None:
    if not entities or text.isascii() or all(ord(ch) <= 0xFFFF for ch in text):
        return
    units = [0]
    for ch in text:
        units.append(units[-1] + (2 if ord(ch) > 0xFFFF else 1))
    for entity in entities:
        start, end = entity["offset"], entity["offset"] + entity["length"]
        entity["offset"], entity["length"] = units[start], units[end] - units[start]


def format_text(source: str, parse_mode: str | None) -> tuple[str, list[dict[str, Any]]]:
    """The text a user sees and its entities; raises ParseEntitiesError like Telegram."""
    if not parse_mode:
        return source.strip(), []
    mode = parse_mode.lower()
    if mode == "html":
        text, entities = parse_html(source)
    elif mode == "markdownv2":
        text, entities = parse_markdown_v2(source)
    else:
        raise ParseEntitiesError("Bad Request: unsupported parse_mode")
    text, entities = _trim(text, entities)
    _to_utf16(text, entities)
    return text, entities
