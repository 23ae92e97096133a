"""Parse modes: the text a user sees and its entities, in UTF-16 offsets."""

from __future__ import annotations

import pytest

from herald.emulator.markup import ParseEntitiesError, format_text


def test_html_nesting_entities_and_pre_language() -> None:
    text, entities = format_text(
        '<b>a <i>b</i></b> &lt;x&gt; &amp; &#33; <pre><code class="language-py">p()</code></pre>',
        "HTML",
    )
    assert text == "a b <x> & ! p()"
    assert entities == [
        {"type": "bold", "offset": 0, "length": 3},
        {"type": "italic", "offset": 2, "length": 1},
        {"type": "pre", "offset": 12, "length": 3, "language": "py"},
    ]


def test_html_spoiler_needs_its_class() -> None:
    assert format_text('<span class="tg-spoiler">s</span>', "HTML")[1][0]["type"] == "spoiler"
    with pytest.raises(ParseEntitiesError, match='Tag "span" must have class "tg-spoiler"'):
        format_text("<span>s</span>", "HTML")


def test_markdown_v2_entities_escapes_and_links() -> None:
    text, entities = format_text(
        "__u__ ~s~ ||sp|| `c\\`` [link](https://x.org/a\\)b) \\*not bold\\*", "MarkdownV2"
    )
    assert text == "u s sp c` link *not bold*"
    assert entities == [
        {"type": "underline", "offset": 0, "length": 1},
        {"type": "strikethrough", "offset": 2, "length": 1},
        {"type": "spoiler", "offset": 4, "length": 2},
        {"type": "code", "offset": 7, "length": 2},
        {"type": "text_link", "offset": 10, "length": 4, "url": "https://x.org/a)b"},
    ]


def test_markdown_v2_pre_and_blockquote() -> None:
    text, entities = format_text("```python\nx = 1.5\n```\n>quoted\n>lines\nafter", "MarkdownV2")
    assert text == "x = 1.5\n\nquoted\nlines\nafter"
    assert entities == [
        {"type": "pre", "offset": 0, "length": 8, "language": "python"},
        {"type": "blockquote", "offset": 9, "length": 12},
    ]


def test_offsets_are_utf16_and_text_is_trimmed() -> None:
    text, entities = format_text("  😀 <b>b</b>  ", "HTML")
    assert text == "😀 b"
    assert entities == [{"type": "bold", "offset": 3, "length": 1}]  # the emoji is 2 units


def test_unsupported_parse_mode() -> None:
    with pytest.raises(ParseEntitiesError, match="unsupported parse_mode"):
        format_text("x", "BBCode")
