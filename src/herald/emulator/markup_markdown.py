"""Telegram's MarkdownV2 parse mode, as the Bot API's "Formatting options" and tdlib describe it.

*bold*, _italic_, __underline__, ~strikethrough~, ||spoiler||, [text](url), ![emoji](tg://
emoji?id=N), `code`, ```language pre```, >blockquote lines; every other reserved character
must be escaped with a backslash. Offsets are in code points here.
"""

from __future__ import annotations

from typing import Any

from herald.emulator.entities import OpenEntity, byte_offset, parse_error

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
        raise parse_error(f"Can't find end of a URL at byte offset {byte_offset(source, i)}")
    return "".join(url), j + 1


def parse_markdown_v2(source: str) -> tuple[str, list[dict[str, Any]]]:
    out: list[str] = []
    pos = 0
    stack: list[OpenEntity] = []
    entities: list[dict[str, Any]] = []
    quote_start = -1
    i, n = 0, len(source)

    def close(item: OpenEntity, **extra: Any) -> None:
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
            stack.append(OpenEntity("bold", pos, i))
            i += 1
        elif c == "_":
            width = 2 if source.startswith("__", i) else 1
            stack.append(OpenEntity("underline" if width == 2 else "italic", pos, i))
            i += width
        elif c == "~":
            stack.append(OpenEntity("strikethrough", pos, i))
            i += 1
        elif source.startswith("||", i):
            stack.append(OpenEntity("spoiler", pos, i))
            i += 2
        elif c == "[":
            stack.append(OpenEntity("text_link", pos, i))
            i += 1
        elif source.startswith("![", i):
            stack.append(OpenEntity("custom_emoji", pos, i))
            i += 2
        elif source.startswith("```", i):
            end = source.find("\n", i + 3)
            language = source[i + 3 : end].strip() if end != -1 else ""
            if language and not any(ch in language for ch in "`\\ "):
                stack.append(OpenEntity("pre", pos, i, {"language": language}))
                i = end + 1
            else:
                stack.append(OpenEntity("pre", pos, i))
                i += 3
        elif c == "`":
            stack.append(OpenEntity("code", pos, i))
            i += 1
        elif c == ">" and (i == 0 or source[i - 1] == "\n"):
            if quote_start < 0:
                quote_start = pos
            i += 1
        else:
            raise parse_error(
                f"Character '{c}' is reserved and must be escaped with the preceding '\\'"
            )
    if stack:
        item = stack[-1]
        raise parse_error(
            f"Can't find end of {_MD_NAMES[item.kind]} entity at byte offset "
            f"{byte_offset(source, item.source)}"
        )
    if quote_start >= 0 and pos > quote_start:
        entities.append({"type": "blockquote", "offset": quote_start, "length": pos - quote_start})
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities
