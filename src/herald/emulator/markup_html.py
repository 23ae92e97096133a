"""Telegram's HTML parse mode, as the Bot API's "Formatting options" and tdlib describe it.

Tags b/strong, i/em, u/ins, s/strike/del, tg-spoiler or span class="tg-spoiler", a href,
code, pre (with <code class="language-x"> inside), blockquote [expandable], tg-emoji; the
entities &lt; &gt; &amp; &quot; and numeric ones. Offsets are in code points here.
"""

from __future__ import annotations

import html
from typing import Any

from herald.emulator.entities import OpenEntity, byte_offset, parse_error

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
            raise parse_error(f"Unclosed start tag at byte offset {byte_offset(source, tag_start)}")
        if source[i] == ">":
            return attrs, i + 1
        if source[i] == "/" and i + 1 < n and source[i + 1] == ">":
            return attrs, i + 2
        j = i
        while j < n and _is_name_char(source[j]):
            j += 1
        if j == i:
            raise parse_error(
                f'Empty attribute name in the tag "{tag}" at byte offset '
                f"{byte_offset(source, tag_start)}"
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
                    raise parse_error(
                        f"Unclosed start tag at byte offset {byte_offset(source, tag_start)}"
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


def _html_entity_of(item: OpenEntity, end: int) -> dict[str, Any] | None:
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
    stack: list[OpenEntity] = []
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
                raise parse_error(f"Unclosed end tag at byte offset {byte_offset(source, i)}")
            name = source[i + 2 : end].strip().lower()
            if not stack:
                raise parse_error(f"Unexpected end tag at byte offset {byte_offset(source, i)}")
            item = stack.pop()
            if name != item.kind:
                raise parse_error(
                    f"Unmatched end tag at byte offset {byte_offset(source, i)}, "
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
                raise parse_error(
                    f'Unsupported start tag "{tag}" at byte offset {byte_offset(source, i)}'
                )
            attrs, after = _parse_attrs(source, j, tag, i)
            if tag == "span" and attrs.get("class") != "tg-spoiler":
                raise parse_error(
                    f'Tag "span" must have class "tg-spoiler" at byte offset '
                    f"{byte_offset(source, i)}"
                )
            stack.append(OpenEntity(tag, pos, i, attrs))
            i = after
    if stack:
        raise parse_error(f'Can\'t find end tag corresponding to start tag "{stack[-1].kind}"')
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities
