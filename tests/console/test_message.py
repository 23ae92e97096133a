"""A task's text as the console shows it: the markup parser's entities, everything escaped."""

from __future__ import annotations

from herald.console.message import entities_html, message_html, preview


def test_html_becomes_the_consoles_own_tags() -> None:
    html = message_html(
        '<b>bold <i>both</i></b> <a href="https://x.example/?a=1&amp;b=2">link</a>'
        ' <pre><code class="language-py">x &lt; 1</code></pre>',
        "HTML",
    )
    assert html == (
        "<strong>bold <em>both</em></strong>"
        ' <a href="https://x.example/?a=1&amp;b=2" rel="noopener noreferrer nofollow">link</a>'
        ' <pre data-language="py"><code>x &lt; 1</code></pre>'
    )


def test_markdown_v2_and_characters_outside_the_bmp() -> None:
    # Entity offsets count UTF-16 units: the emoji takes two, the console one character.
    assert message_html("😀 *bold* _it_", "MarkdownV2") == "😀 <strong>bold</strong> <em>it</em>"


def test_text_is_never_markup() -> None:
    assert message_html("<script>alert(1)</script>", None) == (
        "&lt;script&gt;alert(1)&lt;/script&gt;"
    )
    assert message_html('&lt;img src=x onerror="alert(1)"&gt;', "HTML") == (
        "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;"
    )
    # A text Telegram would refuse (stored before intake checked) shows as its source.
    assert message_html("<b>open", "HTML") == '<span class="unparsed">&lt;b&gt;open</span>'


def test_only_safe_links_are_links() -> None:
    entities = [{"type": "text_link", "offset": 0, "length": 4, "url": "javascript:alert(1)"}]
    assert entities_html("link", entities) == '<span class="link">link</span>'


def test_overlapping_entities_stay_well_nested() -> None:
    entities = [
        {"type": "bold", "offset": 0, "length": 6},
        {"type": "italic", "offset": 3, "length": 6},
    ]
    assert entities_html("abcdefghi", entities) == ("<strong>abc<em>def</em></strong><em>ghi</em>")


def test_previews_are_one_short_line() -> None:
    assert preview({"text": "<b>Order</b>\n  shipped", "parse_mode": "HTML"}) == "Order shipped"
    assert preview({"photo": "https://x.example/p.jpg", "caption": "Look"}) == "[photo] Look"
    assert len(preview({"text": "x" * 500})) == 80
