"""Telegram's parse modes (HTML and MarkdownV2): plain text plus entities, or Telegram's error.

Follows the Bot API's "Formatting options" and tdlib's parser closely enough that what
Telegram refuses with "can't parse entities" is refused here with the same wording, and the
text whose length is checked is the text after parsing, trimmed like Telegram trims it.
Entity offsets and lengths are in UTF-16 code units, as in the Bot API.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any


class ParseEntitiesError(ValueError):
    """Telegram's 400 "Bad Request: can't parse entities: ..."."""


@dataclass(slots=True)
class _Open:
    kind: str  # entity type, or an HTML tag name while parsing HTML
    start: int  # offset in the output text (code points)
    source: int  # offset in the source, for error messages
    attrs: dict[str, str] = field(default_factory=dict)


def _byte_offset(source: str, index: int) -> int:
    return len(source[:index].encode("utf-8"))


def _error(message: str) -> ParseEntitiesError:
    return ParseEntitiesError(f"Bad Request: can't parse entities: {message}")


# --- HTML -------------------------------------------------------------------------------

_HTML_TYPES = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}


def _html_entity(source: str, i: int) -> tuple[str, int] | None:
    """Decode `&name;` or `&#NN;` at i; None leaves the `&` as text, as Telegram does."""
    end = source.find(";", i + 1, i + 12)
    if end == -1:
        return None
    name = source[i + 1 : end]
    if name in _NAMED_ENTITIES:
        return _NAMED_ENTITIES[name], end + 1
    try:
        if name.startswith(("#x", "#X")):
            code = int(name[2:], 16)
        elif name.startswith("#"):
            code = int(name[1:])
        else:
            return None
        return chr(code), end + 1
    except (ValueError, OverflowError):
        return None


def _is_name_char(c: str) -> bool:
    return c.isascii() and (c.isalnum() or c == "-")


def _parse_attrs(source: str, i: int, tag: str, tag_start: int) -> tuple[dict[str, str], int]:
    """Attributes from i up to the closing `>`; returns them and the index after `>`."""
    attrs: dict[str, str] = {}
    n = len(source)
    while True:
        while i < n and source[i].isspace():
            i += 1
        if i >= n:
            raise _error(f"Unclosed start tag at byte offset {_byte_offset(source, tag_start)}")
        if source[i] == ">":
            return attrs, i + 1
        if source[i] == "/" and i + 1 < n and source[i + 1] == ">":
            return attrs, i + 2
        j = i
        while j < n and _is_name_char(source[j]):
            j += 1
        if j == i:
            raise _error(
                f'Empty attribute name in the tag "{tag}" at byte offset '
                f"{_byte_offset(source, tag_start)}"
            )
        name = source[i:j].lower()
        i = j
        while i < n and source[i].isspace():
            i += 1
        value = ""
        if i < n and source[i] == "=":
            i += 1
            while i < n and source[i].isspace():
                i += 1
            if i < n and source[i] in "\"'":
                end = source.find(source[i], i + 1)
                if end == -1:
                    raise _error(
                        f"Unclosed start tag at byte offset {_byte_offset(source, tag_start)}"
                    )
                value = html.unescape(source[i + 1 : end])
                i = end + 1
            else:
                j = i
                while j < n and not source[j].isspace() and source[j] != ">":
                    j += 1
                value = html.unescape(source[i:j])
                i = j
        attrs[name] = value


def _html_entity_of(item: _Open, end: int) -> dict[str, Any] | None:
    kind = _HTML_TYPES[item.kind]
    entity: dict[str, Any] = {"type": kind, "offset": item.start, "length": end - item.start}
    if kind == "text_link":
        if not item.attrs.get("href"):
            return None
        entity["url"] = item.attrs["href"]
    elif kind == "custom_emoji":
        if not item.attrs.get("emoji-id"):
            return None
        entity["custom_emoji_id"] = item.attrs["emoji-id"]
    elif kind == "pre" and "language" in item.attrs:
        entity["language"] = item.attrs["language"]
    elif kind == "blockquote" and "expandable" in item.attrs:
        entity["type"] = "expandable_blockquote"
    return entity


def parse_html(source: str) -> tuple[str, list[dict[str, Any]]]:
    out: list[str] = []
    pos = 0
    stack: list[_Open] = []
    entities: list[dict[str, Any]] = []
    i, n = 0, len(source)
    while i < n:
        c = source[i]
        if c == "&":
            decoded = _html_entity(source, i)
            text, i = decoded if decoded else ("&", i + 1)
            out.append(text)
            pos += len(text)
        elif c != "<":
            out.append(c)
            pos += 1
            i += 1
        elif i + 1 < n and source[i + 1] == "/":
            end = source.find(">", i)
            if end == -1:
                raise _error(f"Unclosed end tag at byte offset {_byte_offset(source, i)}")
            name = source[i + 2 : end].strip().lower()
            if not stack:
                raise _error(f"Unexpected end tag at byte offset {_byte_offset(source, i)}")
            item = stack.pop()
            if name != item.kind:
                raise _error(
                    f"Unmatched end tag at byte offset {_byte_offset(source, i)}, "
                    f'expected "</{item.kind}>", found "</{name}>"'
                )
            language = item.attrs.get("class", "")
            if item.kind == "code" and stack and stack[-1].kind == "pre" and language:
                # <pre><code class="language-x"> is one pre entity with a language.
                stack[-1].attrs["language"] = language.removeprefix("language-")
            elif pos > item.start and (entity := _html_entity_of(item, pos)) is not None:
                entities.append(entity)
            i = end + 1
        else:
            j = i + 1
            while j < n and _is_name_char(source[j]):
                j += 1
            tag = source[i + 1 : j].lower()
            if tag not in _HTML_TYPES:
                raise _error(
                    f'Unsupported start tag "{tag}" at byte offset {_byte_offset(source, i)}'
                )
            attrs, after = _parse_attrs(source, j, tag, i)
            if tag == "span" and attrs.get("class") != "tg-spoiler":
                raise _error(
                    f'Tag "span" must have class "tg-spoiler" at byte offset '
                    f"{_byte_offset(source, i)}"
                )
            stack.append(_Open(tag, pos, i, attrs))
            i = after
    if stack:
        raise _error(f'Can\'t find end tag corresponding to start tag "{stack[-1].kind}"')
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


# --- MarkdownV2 -------------------------------------------------------------------------

_RESERVED = frozenset("_*[]()~`>#+-=|{}.!")
_MD_NAMES = {
    "bold": "Bold",
    "italic": "Italic",
    "underline": "Underline",
    "strikethrough": "Strikethrough",
    "spoiler": "Spoiler",
    "text_link": "TextUrl",
    "custom_emoji": "CustomEmoji",
    "code": "Code",
    "pre": "Pre",
}


def _md_closes(kind: str, source: str, i: int) -> int:
    """Length of the delimiter at i that closes `kind`, or 0."""
    c = source[i]
    if kind == "bold" and c == "*":
        return 1
    if kind == "italic" and c == "_" and not source.startswith("__", i):
        return 1
    if kind == "underline" and source.startswith("__", i):
        return 2
    if kind == "italic" and source.startswith("__", i):
        return 1
    if kind == "strikethrough" and c == "~":
        return 1
    if kind == "spoiler" and source.startswith("||", i):
        return 2
    return 0


def _md_url(source: str, i: int) -> tuple[str, int]:
    """The `(url)` after a link's `]` at i-1; returns the URL and the index after `)`."""
    url: list[str] = []
    j, n = i + 1, len(source)
    while j < n and source[j] != ")":
        if source[j] == "\\" and j + 1 < n:
            j += 1
        url.append(source[j])
        j += 1
    if j >= n:
        raise _error(f"Can't find end of a URL at byte offset {_byte_offset(source, i)}")
    return "".join(url), j + 1


def parse_markdown_v2(source: str) -> tuple[str, list[dict[str, Any]]]:
    out: list[str] = []
    pos = 0
    stack: list[_Open] = []
    entities: list[dict[str, Any]] = []
    quote_start = -1
    i, n = 0, len(source)

    def close(item: _Open, **extra: Any) -> None:
        if pos > item.start:
            entities.append({"type": item.kind, "offset": item.start, "length": pos - item.start})
            entities[-1].update(extra)

    while i < n:
        c = source[i]
        if c == "\\" and i + 1 < n and 0 < ord(source[i + 1]) <= 126:
            out.append(source[i + 1])
            pos += 1
            i += 2
            continue
        top = stack[-1] if stack else None
        if top is not None and top.kind in ("code", "pre"):
            # Inside code everything is literal but the closing backticks.
            if top.kind == "code" and c == "`":
                close(stack.pop())
                i += 1
            elif top.kind == "pre" and source.startswith("```", i):
                item = stack.pop()
                close(item, **({"language": item.attrs["language"]} if item.attrs else {}))
                i += 3
            else:
                out.append(c)
                pos += 1
                i += 1
            continue
        if c == "\n" and quote_start >= 0 and not source.startswith(">", i + 1):
            entities.append(
                {"type": "blockquote", "offset": quote_start, "length": pos - quote_start}
            )
            quote_start = -1
        if c not in _RESERVED:
            out.append(c)
            pos += 1
            i += 1
            continue
        if top is not None:
            width = _md_closes(top.kind, source, i)
            if width:
                close(stack.pop())
                i += width
                continue
            if top.kind in ("text_link", "custom_emoji") and c == "]":
                item = stack.pop()
                if source.startswith("(", i + 1):
                    url, i = _md_url(source, i + 1)
                    if item.kind == "custom_emoji":
                        close(item, custom_emoji_id=url.partition("id=")[2])
                    else:
                        close(item, url=url)
                else:
                    i += 1
                continue
        if c == "*":
            stack.append(_Open("bold", pos, i))
            i += 1
        elif c == "_":
            width = 2 if source.startswith("__", i) else 1
            stack.append(_Open("underline" if width == 2 else "italic", pos, i))
            i += width
        elif c == "~":
            stack.append(_Open("strikethrough", pos, i))
            i += 1
        elif source.startswith("||", i):
            stack.append(_Open("spoiler", pos, i))
            i += 2
        elif c == "[":
            stack.append(_Open("text_link", pos, i))
            i += 1
        elif source.startswith("![", i):
            stack.append(_Open("custom_emoji", pos, i))
            i += 2
        elif source.startswith("```", i):
            end = source.find("\n", i + 3)
            language = source[i + 3 : end].strip() if end != -1 else ""
            if language and not any(ch in language for ch in "`\\ "):
                stack.append(_Open("pre", pos, i, {"language": language}))
                i = end + 1
            else:
                stack.append(_Open("pre", pos, i))
                i += 3
        elif c == "`":
            stack.append(_Open("code", pos, i))
            i += 1
        elif c == ">" and (i == 0 or source[i - 1] == "\n"):
            if quote_start < 0:
                quote_start = pos
            i += 1
        else:
            raise _error(f"Character '{c}' is reserved and must be escaped with the preceding '\\'")
    if stack:
        item = stack[-1]
        raise _error(
            f"Can't find end of {_MD_NAMES[item.kind]} entity at byte offset "
            f"{_byte_offset(source, item.source)}"
        )
    if quote_start >= 0 and pos > quote_start:
        entities.append({"type": "blockquote", "offset": quote_start, "length": pos - quote_start})
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


# --- what the send methods call ---------------------------------------------------------


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
