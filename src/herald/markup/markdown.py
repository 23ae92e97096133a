"""Telegram's MarkdownV2 parse mode: tdlib's parse_markdown_v2, read once from left to right.

*bold*, _italic_, __underline__, ~strikethrough~, ||spoiler||, [text](url) (or [url]),
![emoji](tg://emoji?id=N) and ![time](tg://time?unix=N), `code`, ```language pre```,
>blockquote lines (expandable when they end in ||); `\\` escapes any ASCII character and
every other reserved character outside code must be escaped.

Linear time: text between markup, runs of escapes, runs of `[` and of `>` and marks that
open and at once close an empty entity (`**`, `____`, ...) are taken by regular
expressions that are one character class or one fixed token repeated, applied where the
previous step stopped; a link's URL is read once. The common marks are handled in the
main loop itself: an adversarial text is mostly marks, and each costs a few operations.
Offsets are code points; `format_text` makes them UTF-16.
"""

from __future__ import annotations

import re
from typing import Any

from herald.markup.entities import (
    Open,
    ParseEntitiesError,
    byte_offset,
    entity,
    match_end,
    search_start,
)
from herald.markup.links import custom_emoji_id, formatted_date, link_entity

_SPECIAL = frozenset("\\_*[]()~`>#+-=|{}.!\n")  # reserved characters, and the backslash
_SPECIAL_IN_CODE = frozenset("\\`")  # inside code and pre only ` is markup
_TEXT = re.compile(r"[^\\_*\[\]()~`>#+\-=|{}.!\n]+")
_CODE_TEXT = re.compile(r"[^\\`]+")
_ESCAPES = re.compile(r"(?:\\[\x01-\x7e])+")
_PLAIN = r"[^\\_*\[\]()~`>#+\-=|{}.!\n]*"  # text with nothing to parse
_LINK_OPENINGS = re.compile(rf"(?:\[{_PLAIN})+")  # [, its text, [, its text, ...
_EMOJI_OPENINGS = re.compile(r"(?:!\[)+")
# [text](url), [text] or `code` with nothing to parse inside: read in one step, as the
# steps would read them.
_PLAIN_LINK = re.compile(rf"\[({_PLAIN})\](?:\(([^)\\]*)\))?")
_PLAIN_CODE = re.compile(r"`([^`\\]*)`")
_QUOTE_MARKS = re.compile(r">+")
_EMPTY_PRE = re.compile(r"(?:``````)+")
_URL_TEXT = re.compile(r"[^)\\]*")
_LANGUAGE_END = re.compile(r"[ \t\r\n\v\0`]")  # tdlib's is_space, or a backtick
_CODE = frozenset({"code", "pre", "pre_code"})
_NAMES = {
    "bold": "Bold",
    "italic": "Italic",
    "underline": "Underline",
    "strikethrough": "Strikethrough",
    "spoiler": "Spoiler",
    "text_link": "TextUrl",
    "custom_emoji": "CustomEmoji",
    "code": "Code",
    "pre": "Pre",
    "pre_code": "PreCode",
    "blockquote": "BlockQuote",
}


def _reserved(char: str, at: int) -> ParseEntitiesError:
    return ParseEntitiesError(
        f"Character '{char}' is reserved and must be escaped with the preceding '\\'", at
    )


class _Markdown:
    """One parse: the text so far (in pieces), open entities, finished entities."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.s = source + "\0"  # tdlib reads a C string: its end is a NUL
        self.n = len(source)
        self.pieces: list[str] = []
        self.pos = 0  # code points of parsed text so far
        self.stack: list[Open] = []
        self.entities: list[dict[str, Any]] = []
        self.quote = False  # a blockquote is open
        self.line_start = True  # a `>` here starts a blockquote
        self.links = 0  # open [ and ![

    def unclosed(self, item: Open) -> ParseEntitiesError:
        kind, at = item[0], item[2]
        offset = byte_offset(self.source, at)
        return ParseEntitiesError(
            f"Can't find end of {_NAMES[kind]} entity at byte offset {offset}", at
        )

    def push(self, kind: str, at: int, argument: str = "") -> None:
        self.stack.append((kind, self.pos, at, len(self.pieces), argument, 0))

    def close(self) -> None:
        """Close the innermost bold, italic, underline, strikethrough, spoiler or code."""
        kind, start = self.stack.pop()[:2]
        if self.pos != start:
            self.entities.append({"type": kind, "offset": start, "length": self.pos - start})

    def run(self) -> None:
        """The main loop. The marks an adversary can repeat most cheaply are handled here,
        inline and with the parse state in locals, because each costs a few steps; the
        rest goes through the methods below."""
        s, n, pieces, stack, entities = self.s, self.n, self.pieces, self.stack, self.entities
        special, text = _SPECIAL, _TEXT
        top = ""  # kind of the innermost open entity
        pos = 0  # code points of parsed text so far (self.pos while a method runs)
        line = True  # self.line_start while a method runs
        i = 0
        while i < n:
            c = s[i]
            if c not in special:
                if s[i + 1] in special:  # one character: no need for the regex
                    pieces.append(c)
                    pos += 1
                    i += 1
                    if c != "\r":
                        line = False
                    continue
                m = text.match(s, i, n)
                assert m is not None
                chunk = m.group()
                pieces.append(chunk)
                pos += len(chunk)
                if line and chunk.strip("\r"):
                    line = False
                i = m.end()
                continue
            if c == "*" or c == "~":
                kind = "bold" if c == "*" else "strikethrough"
                if top == kind:
                    start = stack.pop()[1]
                    if pos != start:
                        entities.append({"type": kind, "offset": start, "length": pos - start})
                    top = stack[-1][0] if stack else ""
                    i += 1
                elif s[i + 1] == c:  # opened and closed at once: empty, dropped
                    i += 2
                else:
                    stack.append((kind, pos, i, len(pieces), "", 0))
                    top = kind
                    i += 1
                continue
            if c == "_":
                width = 2 if s[i + 1] == "_" else 1
                kind = "underline" if width == 2 else "italic"
                if top == kind:
                    start = stack.pop()[1]
                    if pos != start:
                        entities.append({"type": kind, "offset": start, "length": pos - start})
                    top = stack[-1][0] if stack else ""
                elif width == 2 and s[i + 2] == "_" and s[i + 3] == "_":
                    width = 4  # an empty underline
                else:
                    stack.append((kind, pos, i, len(pieces), "", 0))
                    top = kind
                i += width
                continue
            if c == "[":
                nxt = s[i + 1]
                m = _PLAIN_LINK.match(s, i, n) if nxt == "]" or nxt not in _SPECIAL else None
                if m is not None and (m.group(2) is not None or s[m.end()] != "("):
                    # [text](url) or [text] with nothing to parse inside, at once.
                    label, url = m.groups()
                    if label:
                        if url is None:  # [text] links to its text, unless in a link
                            url = "" if self.links else label
                        if url and (link := link_entity(pos, pos + len(label), url)):
                            entities.append(link)
                        pieces.append(label)
                        pos += len(label)
                        if line and label.strip("\r"):
                            line = False
                    i = m.end()
                    continue
                if nxt in _SPECIAL and nxt != "[":  # one [ before a mark
                    stack.append(("text_link", pos, i, len(pieces), "", 0))
                    self.links += 1
                    top = "text_link"
                    i += 1
                    continue
                # [ ends nothing: it opens a link, as does each [ after it, with its text.
                end = match_end(_LINK_OPENINGS, s, i, n)
                at = i
                for label in s[i + 1 : end].split("["):
                    stack.append(("text_link", pos, at, len(pieces), "", 0))
                    self.links += 1
                    if label:
                        pieces.append(label)
                        pos += len(label)
                        if line and label.strip("\r"):
                            line = False
                    at += 1 + len(label)
                top = "text_link"
                i = end
                continue
            if c == "]" and top == "text_link" and s[i + 1] != "(":
                _, start, _, piece, _, _ = stack.pop()
                self.links -= 1
                # [text] links to its text; in a link it is dropped, as Telegram drops it.
                if not self.links and pos != start:
                    link = link_entity(start, pos, "".join(pieces[piece:]))
                    if link is not None:
                        entities.append(link)
                top = stack[-1][0] if stack else ""
                i += 1
                continue
            if c == "|" and s[i + 1] == "|":
                if top == "spoiler":
                    start = stack.pop()[1]
                    if pos != start:
                        entities.append({"type": "spoiler", "offset": start, "length": pos - start})
                    top = stack[-1][0] if stack else ""
                    i += 2
                elif s.startswith("||", i + 2):  # opened and closed at once
                    i += 4
                else:
                    stack.append(("spoiler", pos, i, len(pieces), "", 0))
                    top = "spoiler"
                    i += 2
                continue
            if c == "\\" and "\x01" <= s[i + 1] <= "\x7e":
                if s[i + 2] != "\\":  # one escaped character
                    c = s[i + 1]
                    pieces.append(c)
                    pos += 1
                    if c != "\r":
                        line = c == "\n"
                    i += 2
                    continue
                m = _ESCAPES.match(s, i, n)
                assert m is not None
                chunk = m.group()[1::2]
                pieces.append(chunk)
                pos += len(chunk)
                if last := chunk.rstrip("\r"):
                    line = last[-1] == "\n"
                i = m.end()
                continue
            if c == "`" and top == "code":
                start = stack.pop()[1]
                if pos != start:
                    entities.append({"type": "code", "offset": start, "length": pos - start})
                top = stack[-1][0] if stack else ""
                special, text = (
                    (_SPECIAL_IN_CODE, _CODE_TEXT) if top in _CODE else (_SPECIAL, _TEXT)
                )
                i += 1
                continue
            if c == "`" and top[:3] == "pre" and s[i + 1] == "`" and s[i + 2] == "`":
                _, start, _, _, argument, _ = stack.pop()
                if pos != start:
                    language = {"language": argument} if top == "pre_code" else {}
                    entities.append(entity("pre", start, pos, **language))
                top = stack[-1][0] if stack else ""
                special, text = _SPECIAL, _TEXT  # no entity contains a pre
                i += 3
                continue
            if c == "`" and special is _SPECIAL and not s.startswith("``", i + 1):
                if (m := _PLAIN_CODE.match(s, i, n)) is not None:  # `code` at once
                    body = m.group(1)
                    if body:
                        pieces.append(body)
                        entities.append({"type": "code", "offset": pos, "length": len(body)})
                        pos += len(body)
                        if line and body.strip("\r"):
                            line = False
                    i = m.end()
                    continue
                stack.append(("code", pos, i, len(pieces), "", 0))
                top = "code"
                special, text = _SPECIAL_IN_CODE, _CODE_TEXT
                i += 1
                continue
            if c == "!" and s[i + 1] == "[":
                end = match_end(_EMOJI_OPENINGS, s, i, n)
                piece = len(pieces)
                stack.extend(("custom_emoji", pos, at, piece, "", 0) for at in range(i, end, 2))
                self.links += (end - i) // 2
                top = "custom_emoji"
                i = end
                continue
            if c == "\n" and (not self.quote or s[i + 1] == ">" or top == "blockquote"):
                pieces.append("\n")
                pos += 1
                line = True
                i += 1
                if self.quote and s[i] != ">":  # a line that ends a blockquote, with it
                    start = stack.pop()[1]
                    entities.append({"type": "blockquote", "offset": start, "length": pos - start})
                    self.quote = False
                    top = stack[-1][0] if stack else ""
                continue
            if c == ">" and line:
                if self.quote:  # a continued blockquote line, and any more > after it
                    i = match_end(_QUOTE_MARKS, s, i, n)
                    continue
                stack.append(("blockquote", pos, i, len(pieces), "", 0))
                self.quote = True
                top = "blockquote"
                i += 1
                continue
            # The rest: a lone backslash, pre, links with a URL, custom emoji, the line
            # ending a blockquote with another entity open, and reserved characters.
            self.pos, self.line_start = pos, line
            if c == "\\":
                i = self.escapes(i)
            elif top and self.ends(top, c, i):
                i = self.end(c, i)
            else:
                i = self.begin(c, i)
            pos, line = self.pos, self.line_start
            top = stack[-1][0] if stack else ""
            special, text = (_SPECIAL_IN_CODE, _CODE_TEXT) if top in _CODE else (_SPECIAL, _TEXT)
        self.pos = pos

    def escapes(self, i: int) -> int:
        """`\\` and what follows it at i; returns the index after."""
        m = _ESCAPES.match(self.s, i, self.n)
        chunk = m.group()[1::2] if m is not None else "\\"  # a \ before no ASCII is text
        self.pieces.append(chunk)
        self.pos += len(chunk)
        if last := chunk.rstrip("\r"):
            self.line_start = m is not None and last[-1] == "\n"
        return m.end() if m is not None else i + 1

    def ends(self, kind: str, c: str, i: int) -> bool:
        """Whether the reserved character c at i ends the innermost entity, of `kind`."""
        s = self.s
        if self.quote and c == "\n" and s[i + 1] != ">":
            return True
        if kind == "code":
            return c == "`"
        if kind in ("pre", "pre_code"):
            return c == "`" and s[i + 1] == "`" and s[i + 2] == "`"
        if kind in ("text_link", "custom_emoji"):
            return c == "]"
        if kind == "spoiler":
            return c == "|" and s[i + 1] == "|"
        return False  # the others are handled in run(); a blockquote ends at a line break

    def begin(self, c: str, i: int) -> int:
        """Open the entity whose mark c is at i, or a line; returns the index after it."""
        s = self.s
        if c == "|" and s[i + 1] == "|":
            if s.startswith("||||", i):  # opened and closed at once
                return i + 4
            self.push("spoiler", i)
            return i + 2
        if c == "!" and s[i + 1] == "[":
            self.push("custom_emoji", i)
            self.links += 1
            return i + 2
        if c == "`" and s[i + 1] == "`" and s[i + 2] == "`":
            return self.begin_pre(i)
        if c == "`":
            self.push("code", i)
            return i + 1
        if c == "\n":
            self.pieces.append("\n")
            self.pos += 1
            self.line_start = True
            return i + 1
        if c == ">" and self.line_start:
            if self.quote:  # a continued blockquote line, and any more `>` after it
                return match_end(_QUOTE_MARKS, s, i, self.n)
            self.push("blockquote", i)
            self.quote = True
            return i + 1
        raise _reserved(c, i)

    def begin_pre(self, i: int) -> int:
        s, n = self.s, self.n
        if s.startswith("``````", i):  # opened and closed at once
            i = match_end(_EMPTY_PRE, s, i, n)
            if not s.startswith("```", i):
                return i
        start = i
        i += 3
        kind, argument = "pre", ""
        language_end = search_start(_LANGUAGE_END, s, i)
        if i != language_end and language_end < n and s[language_end] != "`":
            kind, argument = "pre_code", s[i:language_end]
            i = language_end
        if s[i] in "\n\r":  # one line break after the opening is not text
            i += 2 if s[i + 1] in "\n\r" and s[i] != s[i + 1] else 1
        self.push(kind, start, argument)
        return i

    def url(self, i: int) -> tuple[str, int]:
        """The URL in `(...)` from i (after the `(`); returns it and the index of `)`."""
        s, n = self.s, self.n
        end = s.find(")", i, n)
        if end != -1 and s.find("\\", i, end) == -1:  # no escapes: the text as it is
            return s[i:end], end
        start = i
        parts: list[str] = []
        while True:
            end = match_end(_URL_TEXT, s, i, n)
            parts.append(s[i:end])
            i = end
            if i >= n or s[i] == ")":
                break
            if "\x01" <= s[i + 1] <= "\x7e":  # an escape: the character itself
                parts.append(s[i + 1])
                i += 2
            else:
                parts.append("\\")
                i += 1
        if i >= n:
            at = byte_offset(self.source, start)
            raise ParseEntitiesError(f"Can't find end of a URL at byte offset {at}", start)
        return "".join(parts), i

    def end(self, c: str, i: int) -> int:
        """Close the innermost entity at its end mark c at i; returns the next index."""
        s, stack = self.s, self.stack
        kind, start, at, piece, argument, _ = stack[-1]
        if c == "\n" and kind != "blockquote":
            # Only `||` right before the line break may end a blockquote: expandable.
            crlf = at == i - 3 and self.pieces and self.pieces[-1].endswith("\r")
            if kind != "spoiler" or not (at == i - 2 or crlf):
                raise self.unclosed(stack[-1])
            stack.pop()
            if stack[-1][0] != "blockquote":
                raise self.unclosed(stack[-1])
            kind, start = "expandable_blockquote", stack[-1][1]
        if kind in ("code", "spoiler"):
            self.close()
            return i + (1 if kind == "code" else 2)
        stack.pop()
        if kind in ("pre", "pre_code"):
            if self.pos != start:
                extra = {"language": argument} if kind == "pre_code" else {}
                self.entities.append(entity("pre", start, self.pos, **extra))
            return i + 3
        if kind == "text_link":
            self.links -= 1
            after, url = i + 1, ""
            if s[i + 1] == "(":
                url, close = self.url(i + 2)
                after = close + 1
            elif not self.links:  # [text] alone links to its text
                url = "".join(self.pieces[piece:])
            if self.pos != start and url and (link := link_entity(start, self.pos, url)):
                self.entities.append(link)
            return after
        if kind == "custom_emoji":
            self.links -= 1
            if s[i + 1] != "(":
                raise ParseEntitiesError(
                    "The entity must contain a tg://emoji or tg://time URL", at
                )
            url, close = self.url(i + 2)
            if (emoji_id := custom_emoji_id(url)) is not None:
                found = entity("custom_emoji", start, self.pos, custom_emoji_id=str(emoji_id))
            elif (date := formatted_date(url)) is not None:
                found = entity(
                    "date_time", start, self.pos, unix_time=date[0], date_time_format=date[1]
                )
            else:
                raise ParseEntitiesError("Invalid tg://emoji or tg://time URL specified", at)
            if self.pos != start:
                self.entities.append(found)
            return close + 1
        # a blockquote, at the line break that ends it, which it keeps
        self.quote = False
        self.pieces.append("\n")
        self.pos += 1
        self.line_start = True
        self.entities.append(entity(kind, start, self.pos))
        return i + 1

    def finish(self) -> None:
        stack = self.stack
        if self.quote:
            kind = "blockquote"
            if stack[-1][0] == "spoiler" and stack[-1][2] == self.n - 2:
                stack.pop()
                kind = "expandable_blockquote"
            if stack[-1][0] == "blockquote":
                start = stack.pop()[1]
                if self.pos != start:
                    self.entities.append(entity(kind, start, self.pos))
        if stack:
            raise self.unclosed(stack[-1])


def parse_markdown_v2(source: str) -> tuple[str, list[dict[str, Any]]]:
    """The text and entities (offsets in code points); raises ParseEntitiesError."""
    parse = _Markdown(source)
    parse.run()
    parse.finish()
    entities = sorted(parse.entities, key=lambda e: (e["offset"], -e["length"]))
    return "".join(parse.pieces), entities
