"""Parse modes: the text a user sees and its entities (UTF-16 offsets), or Telegram's refusal.

The expected results and error messages are tdlib's: the cases follow those of tdlib's
own test/message_entities.cpp (the parser the Bot API runs), rewritten here.
"""

from __future__ import annotations

from typing import Any

import pytest

from herald.markup import (
    ParseEntitiesError,
    UnsupportedParseMode,
    format_text,
    parse_html,
    parse_markdown_v2,
)

STADIUM = "🏟"  # outside the BMP: 4 UTF-8 bytes, 2 UTF-16 units


def _utf16(text: str, entities: list[dict[str, Any]]) -> list[tuple[str, int, int]]:
    units = [0]
    for ch in text:
        units.append(units[-1] + (2 if ord(ch) > 0xFFFF else 1))
    spans = [
        (e["type"], units[e["offset"]], units[e["offset"] + e["length"]] - units[e["offset"]])
        for e in entities
    ]
    return sorted(spans, key=lambda s: (s[1], -s[2]))


HTML_ERRORS = [
    (f"{STADIUM} {STADIUM}&lt;<abacaba", "Unclosed start tag at byte offset 13", 7),
    (f"{STADIUM} {STADIUM}&lt;<abac aba>", 'Unsupported start tag "abac" at byte offset 13', 7),
    ("<i   =aba>", 'Empty attribute name in the tag "i" at byte offset 0', 0),
    ("<i    aba  =  ", 'Unclosed start tag "i" at byte offset 0', 0),
    ("<i    aba  =  190azAz-.,", "Unexpected end of name token at byte offset 14", 14),
    ('<i    aba  =  "&lt;&gt;&quot;>', "Unclosed start tag at byte offset 0", 0),
    ("<b></b></", "Unexpected end tag at byte offset 7", 7),
    ("<i>a</i   ", "Unclosed end tag at byte offset 4", 4),
    ("<i>a</em   >", 'Unmatched end tag at byte offset 4, expected "</i>", found "</em>"', 4),
    ("<i    aba>", 'Can\'t find end tag corresponding to start tag "i"', 0),
    ("<span>s</span>", 'Tag "span" must have class "tg-spoiler" at byte offset 0', 0),
    ('<tg-emoji emoji-id="007">e</tg-emoji>', "Invalid custom emoji identifier specified", 0),
    ('<tg-time unix="12345" format="rt">t</tg-time>', "Invalid date format used", 0),
    (
        "&#xDFDF",
        "Text contains invalid Unicode characters after decoding HTML entities, "
        "check for unmatched surrogate code units",
        0,
    ),
]


@pytest.mark.parametrize(("source", "reason", "offset"), HTML_ERRORS)
def test_html_refusals_are_tdlibs(source: str, reason: str, offset: int) -> None:
    with pytest.raises(ParseEntitiesError) as caught:
        parse_html(source)
    assert caught.value.reason == reason
    assert caught.value.offset == offset
    assert str(caught.value) == f"Bad Request: can't parse entities: {reason}"


HTML_PARSED: list[tuple[str, str, list[tuple[str, int, int]]]] = [
    ("&ge;&lt;&gt;&amp;&quot;&laquo;&#12345678;", '&ge;<>&"&laquo;&#12345678;', []),
    ("&lt&gt;x&#65&#x42;&#0;", "<>xAB&#0;", []),
    (f"{STADIUM} {STADIUM}<i>{STADIUM} &lt{STADIUM}</i>", "🏟 🏟🏟 <🏟", [("italic", 5, 6)]),
    ("<b aba   =   caba>x</>", "x", [("bold", 0, 1)]),
    ("<i>a</    >", "a", [("italic", 0, 1)]),
    (
        '<span class = "tg-spoiler">s</span><tg-spoiler>t</tg-spoiler>',
        "st",
        [("spoiler", 0, 1), ("spoiler", 1, 1)],
    ),
    ("<a href=telegram.org> </a>", " ", [("text_link", 0, 1)]),
    ("<a>telegram.org</a><a>not a link</a>", "telegram.orgnot a link", [("text_link", 0, 12)]),
    ('<pre><code class="language-fift">x</code></pre>', "x", [("pre", 0, 1)]),
    ("<pre><code>x</code></pre>", "x", [("pre", 0, 1), ("code", 0, 1)]),
    (
        "<blockquote expandable>a<pre>b</pre></blockquote>",
        "ab",
        [("expandable_blockquote", 0, 2), ("pre", 1, 1)],
    ),
    ('<tg-emoji emoji-id="12345">e</tg-emoji>', "e", [("custom_emoji", 0, 1)]),
    ('<tg-time unix="12345" format="tT">t</tg-time>', "t", [("date_time", 0, 1)]),
    ("<b></b><i>\n</i>", "\n", [("italic", 0, 1)]),
]


@pytest.mark.parametrize(("source", "text", "spans"), HTML_PARSED)
def test_html_text_and_entities_are_tdlibs(
    source: str, text: str, spans: list[tuple[str, int, int]]
) -> None:
    parsed, entities = parse_html(source)
    assert parsed == text
    assert sorted(_utf16(parsed, entities)) == sorted(spans)


def test_html_entity_details() -> None:
    _, entities = parse_html(
        "<a href='telegram.org?&lt;'>l</a><a href=\"tg://user?id=42\">m</a>"
        '<pre><code class="language-py">p</code></pre><tg-emoji emoji-id="5">e</tg-emoji>'
    )
    assert entities == [
        {"type": "text_link", "offset": 0, "length": 1, "url": "http://telegram.org/?<"},
        {"type": "text_mention", "offset": 1, "length": 1, "user": {"id": 42}},
        {"type": "pre", "offset": 2, "length": 1, "language": "py"},
        {"type": "custom_emoji", "offset": 3, "length": 1, "custom_emoji_id": "5"},
    ]


RESERVED_OUTSIDE_ENTITIES = "]()#+-=|{}.!"

MARKDOWN_ERRORS = [
    (f"{STADIUM} {STADIUM}_abacaba", "Can't find end of Italic entity at byte offset 9", 3),
    (f"{STADIUM} {STADIUM}_abac * asd _", "Can't find end of Italic entity at byte offset 21", 15),
    (f"{STADIUM} {STADIUM}```a ", "Can't find end of PreCode entity at byte offset 9", 3),
    (f"{STADIUM} {STADIUM}```", "Can't find end of Pre entity at byte offset 9", 3),
    (
        f"{STADIUM} {STADIUM}_{STADIUM} {STADIUM}__",
        "Can't find end of Underline entity at byte offset 19",
        7,
    ),
    ("[telegram\\.org](asd\\)", "Can't find end of a URL at byte offset 16", 16),
    ("||test\\|", "Can't find end of Spoiler entity at byte offset 0", 0),
    ("a>", "Character '>' is reserved and must be escaped with the preceding '\\'", 1),
    ("![", "Can't find end of CustomEmoji entity at byte offset 0", 0),
    ("![👍]", "The entity must contain a tg://emoji or tg://time URL", 0),
    ("![👍](tg://emoji?test=1231&id=025)", "Invalid tg://emoji or tg://time URL specified", 0),
    ("![👍](tg://time?unix=0)", "Invalid tg://emoji or tg://time URL specified", 0),
    (">*b\n>ld \n>bo\nld*\nasd", "Can't find end of Bold entity at byte offset 1", 1),
    (">asd\n>q||ew\n||asdad", "Can't find end of Spoiler entity at byte offset 7", 7),
]


@pytest.mark.parametrize(("source", "reason", "offset"), MARKDOWN_ERRORS)
def test_markdown_v2_refusals_are_tdlibs(source: str, reason: str, offset: int) -> None:
    with pytest.raises(ParseEntitiesError) as caught:
        parse_markdown_v2(source)
    assert (caught.value.reason, caught.value.offset) == (reason, offset)


@pytest.mark.parametrize("char", RESERVED_OUTSIDE_ENTITIES)
def test_markdown_v2_reserved_characters_need_a_backslash(char: str) -> None:
    with pytest.raises(ParseEntitiesError, match=f"Character '\\{char}' is reserved"):
        parse_markdown_v2(f"ab{char}")
    assert parse_markdown_v2(f"ab\\{char}") == (f"ab{char}", [])


MARKDOWN_PARSED: list[tuple[str, str, list[tuple[str, int, int]]]] = [
    ("\\\\\\\\\\_\\*\\`", "\\\\_*`", []),
    ("\\\\\\a\\b\\➡️\\", "\\ab\\➡️\\", []),
    ("🏟 🏟``", "🏟 🏟", []),
    ("🏟 🏟**____``````", "🏟 🏟", []),
    ("🏟 🏟_🏟 __🏟___", "🏟 🏟🏟 🏟", [("italic", 5, 5), ("underline", 8, 2)]),
    ("🏟 🏟__🏟 _🏟_ __", "🏟 🏟🏟 🏟 ", [("underline", 5, 6), ("italic", 8, 2)]),
    ("🏟 🏟`🏟 🏟```", "🏟 🏟🏟 🏟", [("code", 5, 5)]),
    ("🏟 🏟```🏟\r\n🏟```", "🏟 🏟🏟", [("pre", 5, 2)]),
    ("🏟 🏟```🏟\n\n🏟```", "🏟 🏟\n🏟", [("pre", 5, 3)]),
    (
        "`_* *_`__*` `*__",
        "_* *_ ",
        [("code", 0, 5), ("underline", 5, 1), ("bold", 5, 1), ("code", 5, 1)],
    ),
    ("[](telegram.org)[ ](as)", " ", []),
    ("[telegram\\.org]a", "telegram.orga", [("text_link", 0, 12)]),
    ("[a](tg:user?id=123456)", "a", [("text_mention", 0, 1)]),
    ("![👍](TG://EMoJI/?test=1231&id=25#id=32)a", "👍a", [("custom_emoji", 0, 2)]),
    ("![👍](TG://TiME/?format=Wt&unix=25)", "👍", [("date_time", 0, 2)]),
    ("> \n> \n>", " \n \n", [("blockquote", 0, 4)]),
    (
        "abc\n>def\n>def\n\r>ghi2\njkl",
        "abc\ndef\ndef\n\rghi2\njkl",
        [("blockquote", 4, 8), ("blockquote", 13, 5)],
    ),
    (
        ">asd\n>q||e||w||\nasdad",
        "asd\nqew\nasdad",
        [("expandable_blockquote", 0, 8), ("spoiler", 5, 1)],
    ),
    (">asd\r\n>q||ew||", "asd\r\nqew", [("blockquote", 0, 8), ("spoiler", 6, 2)]),
    ("*>abcd\n*", "abcd\n", [("bold", 0, 5), ("blockquote", 0, 5)]),
    ("[[[x]]]", "x", []),
]


@pytest.mark.parametrize(("source", "text", "spans"), MARKDOWN_PARSED)
def test_markdown_v2_text_and_entities_are_tdlibs(
    source: str, text: str, spans: list[tuple[str, int, int]]
) -> None:
    parsed, entities = parse_markdown_v2(source)
    assert parsed == text
    assert sorted(_utf16(parsed, entities)) == sorted(spans)


def test_a_link_inside_a_link_is_dropped() -> None:
    # tdlib's parser makes all three, then drops the inner ones (fix_formatted_text); here
    # they are never made, so nested brackets do not copy the same text once per level.
    assert parse_markdown_v2("[[[telegram\\.org]]]")[1] == [
        {"type": "text_link", "offset": 0, "length": 12, "url": "http://telegram.org/"}
    ]
    assert parse_html("<a><a href='x.org'>y.org</a></a>")[1] == [
        {"type": "text_link", "offset": 0, "length": 5, "url": "http://y.org/"}
    ]


def test_markdown_v2_entity_details() -> None:
    _, entities = parse_markdown_v2(
        "[l](https://telegram.dog?\\\\\\()```python\nx```![e](tg://emoji?id=7)"
    )
    assert entities == [
        {"type": "text_link", "offset": 0, "length": 1, "url": "https://telegram.dog/?\\("},
        {"type": "pre", "offset": 1, "length": 1, "language": "python"},
        {"type": "custom_emoji", "offset": 2, "length": 1, "custom_emoji_id": "7"},
    ]


def test_format_text_offsets_are_utf16_and_text_is_trimmed() -> None:
    text, entities = format_text("  😀 <b>b</b>  ", "HTML")
    assert text == "😀 b"
    assert entities == [{"type": "bold", "offset": 3, "length": 1}]  # the emoji is 2 units


def test_format_text_cleans_like_telegram() -> None:
    # Carriage returns and U+2028..U+202E are dropped, control characters become spaces,
    # and only spaces and line breaks are trimmed (at the start, only before an entity).
    text, entities = format_text("\n a\r\u2028\tb<b>c\rd</b>\u00a0\n ", "HTML")
    assert text == "a bcd\u00a0"
    assert entities == [{"type": "bold", "offset": 3, "length": 2}]
    assert format_text(" <i> x</i>", "HTML") == (
        " x",
        [{"type": "italic", "offset": 0, "length": 2}],
    )


@pytest.mark.parametrize("blank", ["", " \n ", "<b> </b>", "\u200b\u00a0\u2800\ufeff", "``"])
def test_format_text_of_nothing_visible_is_empty(blank: str) -> None:
    mode = "MarkdownV2" if blank == "``" else "HTML"
    assert format_text(blank, mode) == ("", [])


def test_unsupported_parse_mode() -> None:
    with pytest.raises(UnsupportedParseMode, match="Bad Request: unsupported parse_mode"):
        format_text("x", "BBCode")
