"""Telegram's HTML parse mode: tdlib's parse_html, read once from left to right.

Tags b/strong, i/em, u/ins, s/strike/del, tg-spoiler and span class="tg-spoiler", a href,
code (class="language-x" inside pre makes the pre's language), pre, blockquote
[expandable], tg-emoji emoji-id, tg-time unix/format; &lt; &gt; &amp; &quot; and numeric
character references (tdlib lets the `;` be left out). Anything else after `<` is
refused, and an `&` that starts no reference is text.

Linear time: every regular expression here is one character class or a bounded token,
applied where the previous step stopped, and no position is read more than a bounded
number of times. Offsets in the result are code points; `format_text` makes them UTF-16.
"""

from __future__ import annotations

import re
from typing import Any

from herald.markup.entities import (
    Open,
    ParseEntitiesError,
    ascii_lower,
    byte_offset,
    date_format_ok,
    entity,
    int32_prefix,
    int64,
    match_end,
    search_start,
)
from herald.markup.links import link_entity

_SIMPLE = {
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
}
_TAGS = frozenset({*_SIMPLE, "a", "tg-emoji", "tg-time", "pre", "code", "blockquote"})
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}

# A reference tdlib decodes: a named one not followed by a letter, or up to 7 decimal or 6
# hexadecimal digits (tdlib gives up on longer ones), then an optional `;`.
_REFERENCE = re.compile(
    r"&(?:(lt|gt|amp|quot)(?![A-Za-z])|#([0-9]{1,7})(?![0-9])|#x([0-9A-Fa-f]{1,6})(?![0-9A-Fa-f]));?"
)
# Text: anything up to the next `<` or the next `&` that may start such a reference.
_TEXT = re.compile(
    r"(?:[^<&]|&(?!(?:lt|gt|amp|quot)(?![A-Za-z])|#[0-9]{1,7}(?![0-9])|#x[0-9A-Fa-f]{1,6}(?![0-9A-Fa-f])))+"
)
_OPEN_TAG = re.compile(r"<([A-Za-z-]+)[ \t\r\n\v]*>")  # a tag without attributes
_PLAIN_TAG = "b|strong|i|em|u|ins|s|strike|del|tg-spoiler|code"  # no attribute, no merging
# Runs of such tags, each with the text after it; and a whole element of plain text.
_OPEN_TAGS = re.compile(rf"(?:<(?:{_PLAIN_TAG}|pre)>[^<&]*)+")
_OPEN_TAG_TEXT = re.compile(r"<([a-z-]+)>([^<&]*)")
_ELEMENT = re.compile(rf"<({_PLAIN_TAG})>([^<&]*)</\1>")
# The source gets a NUL appended: tdlib reads a C string, and its end is a NUL, which
# tdlib's is_space counts as a space. So these searches always find something.
_NAME_END = re.compile(r"[ \t\r\n\v\0>]")
_ATTRIBUTE_NAME_END = re.compile(r"[ \t\r\n\v\0=>/\"']")
_SPACES = re.compile(r"[ \t\r\n\v]*")
# Attributes without a value, which only <blockquote expandable> heeds: skipped at once.
# Possessive, so a name is never cut short to fit; one before the end is left to the loop.
_BARE_ATTRIBUTES = re.compile(r"(?:[ \t\r\n\v]*+[^ \t\r\n\v\0=>/\"']++(?![ \t\r\n\v]*+[=\0]))+")
_NAME_TOKEN = re.compile(r"[A-Za-z0-9.-]*")
_QUOTED = {'"': re.compile(r'[^"&\0]*'), "'": re.compile(r"[^'&\0]*")}


def _reference(s: str, i: int) -> tuple[str, int] | None:
    """The character a reference at `&` i stands for and the index after it, or None."""
    m = _REFERENCE.match(s, i)
    if m is None:
        return None
    name, decimal, hexadecimal = m.groups()
    if name is not None:
        return _NAMED[name], m.end()
    code = int(decimal) if decimal is not None else int(hexadecimal, 16)
    if code == 0 or code >= 0x10FFFF:
        return None
    return chr(code), m.end()


def _error(source: str, at: int, before: str, after: str = "") -> ParseEntitiesError:
    """Telegram's "<before> at byte offset N<after>" for the tag at `at` (a character index).

    Tag names come from the text, so they are put in by concatenation, never formatted.
    """
    return ParseEntitiesError(f"{before} at byte offset {byte_offset(source, at)}{after}", at)


def _quoted_value(s: str, i: int) -> tuple[str, int]:
    """A quoted attribute value starting at its quote i, references decoded."""
    quote = s[i]
    text = _QUOTED[quote]
    parts: list[str] = []
    i += 1
    while True:
        end = match_end(text, s, i)
        parts.append(s[i:end])
        i = end
        if s[i] != "&":
            break
        decoded = _reference(s, i)
        if decoded is None:
            parts.append("&")
            i += 1
        else:
            # Surrogates decoded here cannot reach the text; tdlib then drops the link.
            char, i = decoded
            parts.append(char if not 0xD800 <= ord(char) <= 0xDFFF else "\ufffd")
    if s[i] == quote:
        i += 1
    return "".join(parts), i


def _start_tag(source: str, s: str, i: int, begin: int) -> tuple[str, str, int, int]:
    """The tag opened at `<` begin (i: after its name): tag, argument, date, index of `>`."""
    if s[i] == "\0":
        raise _error(source, begin, "Unclosed start tag")
    tag = ascii_lower(s[begin + 1 : i])
    if tag not in _TAGS:
        raise _error(source, begin, f'Unsupported start tag "{tag}"')
    argument, date = "", 0
    while s[i] != ">":
        if tag != "blockquote" and (m := _BARE_ATTRIBUTES.match(s, i)) is not None:
            i = m.end()
        i = match_end(_SPACES, s, i)
        if s[i] == ">":
            break
        name_start = i
        i = search_start(_ATTRIBUTE_NAME_END, s, i)
        name = s[name_start:i]
        if not name:
            raise _error(source, begin, f'Empty attribute name in the tag "{tag}"')
        i = match_end(_SPACES, s, i)
        if s[i] != "=":
            if s[i] == "\0":
                raise _error(source, begin, f'Unclosed start tag "{tag}"')
            if tag == "blockquote" and name == "expandable":
                argument = "1"
            continue
        i = match_end(_SPACES, s, i + 1)
        if s[i] == "\0":
            raise _error(source, begin, f'Unclosed start tag "{tag}"')
        if s[i] in "\"'":
            value, i = _quoted_value(s, i)
        else:
            token_start = i
            i = match_end(_NAME_TOKEN, s, i)
            value = ascii_lower(s[token_start:i])
            if s[i] not in " \t\r\n\v\0>":
                raise _error(source, token_start, "Unexpected end of name token")
        if s[i] == "\0":
            raise _error(source, begin, "Unclosed start tag")
        if tag == "a" and name == "href":
            argument = value
        elif tag == "code" and name == "class" and value.startswith("language-"):
            argument = value[9:]
        elif tag == "span" and name == "class" and value.startswith("tg-"):
            argument = value[3:]
        elif (tag, name) in (("tg-emoji", "emoji-id"), ("tg-time", "format")):
            argument = value
        elif tag == "blockquote" and name == "expandable":
            argument = "1"
        elif tag == "tg-time" and name == "unix":
            date = int32_prefix(value)
    if tag == "span" and argument != "spoiler":
        raise _error(source, begin, 'Tag "span" must have class "tg-spoiler"')
    return tag, argument, date, i


class _Html:
    """One parse: the text so far (in pieces), open tags, finished entities."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.pieces: list[str] = []
        self.pos = 0  # code points of parsed text so far
        self.stack: list[Open] = []
        self.entities: list[dict[str, Any]] = []
        self.anchors = 0  # open <a> tags
        self.surrogate = -1  # where a reference first decoded to half a surrogate pair

    def close(self, item: Open) -> None:
        """The entity of a tag that ends here (none if it holds no text)."""
        tag, start, at, piece, argument, date = item
        end, entities = self.pos, self.entities
        if tag == "a":
            self.anchors -= 1
        if end == start:
            return
        if tag in _SIMPLE:
            entities.append(entity(_SIMPLE[tag], start, end))
        elif tag == "tg-emoji":
            emoji_id = int64(argument)
            if not emoji_id:
                raise ParseEntitiesError("Invalid custom emoji identifier specified", at)
            entities.append(entity("custom_emoji", start, end, custom_emoji_id=str(emoji_id)))
        elif tag == "tg-time":
            if not date_format_ok(argument):
                raise ParseEntitiesError("Invalid date format used", at)
            if date > 0:
                entities.append(
                    entity(
                        "date_time",
                        start,
                        end,
                        unix_time=date,
                        date_time_format=argument,
                    )
                )
        elif tag == "a":
            # A link inside a link is dropped by Telegram; skipping it here also keeps
            # nested links from copying the same text once per level.
            if self.anchors == 0:
                url = argument or "".join(self.pieces[piece:])
                if (link := link_entity(start, end, url)) is not None:
                    entities.append(link)
        elif tag == "pre":
            last = entities[-1] if entities else None
            if (
                last
                and last["type"] == "code"
                and last.get("language")
                and _spans(last, start, end)
            ):
                last["type"] = "pre"
            else:
                entities.append(entity("pre", start, end))
        elif tag == "code":
            last = entities[-1] if entities else None
            if last and last["type"] == "pre" and argument and _spans(last, start, end):
                last["language"] = argument
            else:
                entities.append(entity("code", start, end, language=argument))
        else:  # blockquote
            kind = "expandable_blockquote" if argument else "blockquote"
            entities.append(entity(kind, start, end))

    def end_tag(self, s: str, begin: int) -> int:
        """The end tag at `<` begin; returns the index after its `>`."""
        if not self.stack:
            raise _error(self.source, begin, "Unexpected end tag")
        i = search_start(_NAME_END, s, begin + 2)
        name = ascii_lower(s[begin + 2 : i])
        i = match_end(_SPACES, s, i)
        if s[i] != ">":
            raise _error(self.source, begin, "Unclosed end tag")
        item = self.stack.pop()
        if name and name != item[0]:
            raise _error(
                self.source,
                begin,
                "Unmatched end tag",
                f', expected "</{item[0]}>", found "</{name}>"',
            )
        self.close(item)
        return i + 1

    def open(self, tag: str, begin: int, argument: str = "", date: int = 0) -> None:
        if tag == "a":
            self.anchors += 1
        self.stack.append((tag, self.pos, begin, len(self.pieces), argument, date))


def _spans(last: dict[str, Any], start: int, end: int) -> bool:
    return bool(last["offset"] == start and last["length"] == end - start)


def parse_html(source: str) -> tuple[str, list[dict[str, Any]]]:
    """The text and entities (offsets in code points); raises ParseEntitiesError."""
    s = source + "\0"
    n = len(source)
    parse = _Html(source)
    pieces = parse.pieces
    i = 0
    while i < n:
        c = s[i]
        if c == "<":
            if s[i + 1] == "/":
                i = parse.end_tag(s, i)
            elif (m := _ELEMENT.match(s, i)) is not None:  # <b>text</b> at once
                tag, body = m.groups()
                if body:
                    pieces.append(body)
                    kind = _SIMPLE.get(tag, tag)
                    parse.entities.append(entity(kind, parse.pos, parse.pos + len(body)))
                    if kind == "code":
                        parse.entities[-1]["language"] = ""
                    parse.pos += len(body)
                i = m.end()
            elif (m := _OPEN_TAGS.match(s, i)) is not None:  # tags and their text, at once
                at = i
                for tag, body in _OPEN_TAG_TEXT.findall(m.group()):
                    parse.stack.append((tag, parse.pos, at, len(pieces), "", 0))
                    if body:
                        pieces.append(body)
                        parse.pos += len(body)
                    at += len(tag) + 2 + len(body)
                i = m.end()
            elif (m := _OPEN_TAG.match(s, i)) and (tag := ascii_lower(m.group(1))) in _TAGS:
                if tag == "span":
                    raise _error(source, i, 'Tag "span" must have class "tg-spoiler"')
                parse.open(tag, i)
                i = m.end()
            else:
                end = search_start(_NAME_END, s, i + 1)
                tag, argument, date, end = _start_tag(source, s, end, i)
                parse.open(tag, i, argument, date)
                i = end + 1
        elif c == "&" and (decoded := _reference(s, i)) is not None:
            char, i_next = decoded
            if "\ud800" <= char <= "\udfff" and parse.surrogate < 0:
                parse.surrogate = i
            pieces.append(char)
            parse.pos += 1
            i = i_next
        else:
            m = _TEXT.match(s, i, n)
            end = m.end() if m else i + 1  # an & whose reference decodes to nothing: text
            pieces.append(s[i:end])
            parse.pos += end - i
            i = end
    if parse.stack:
        tag, at = parse.stack[-1][0], parse.stack[-1][2]
        raise ParseEntitiesError(f'Can\'t find end tag corresponding to start tag "{tag}"', at)
    for found in parse.entities:
        if found["type"] == "code":
            del found["language"]
    if parse.surrogate >= 0:
        # tdlib writes them as UTF-8 and then finds the text is not valid UTF-8.
        raise ParseEntitiesError(
            "Text contains invalid Unicode characters after decoding HTML entities, "
            "check for unmatched surrogate code units",
            parse.surrogate,
        )
    return "".join(pieces), sorted(parse.entities, key=_order)


def _order(found: dict[str, Any]) -> tuple[int, int]:
    return found["offset"], -found["length"]
