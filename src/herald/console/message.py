"""A task's message as its recipient sees it, as HTML that is safe to put in a page.

The text goes through `herald.markup` (the parser intake and the emulator use), and the
page is built from what it returns: the plain text, escaped, and its entities turned into
a fixed set of tags. Nothing of the source's own markup reaches the page, so a text such as
`<script>` or `<img onerror=...>` shows as the characters it is. A text Telegram would
refuse (stored before intake checked markup) is shown as its escaped source.
"""

from __future__ import annotations

from itertools import accumulate
from typing import Any

from markupsafe import Markup, escape

from herald.markup import MarkupError, format_text

PREVIEW_CHARS = 80

_SIMPLE = {
    "bold": ("<strong>", "</strong>"),
    "italic": ("<em>", "</em>"),
    "underline": ("<u>", "</u>"),
    "strikethrough": ("<s>", "</s>"),
    "spoiler": ('<span class="spoiler">', "</span>"),
    "code": ("<code>", "</code>"),
    "blockquote": ("<blockquote>", "</blockquote>"),
    "expandable_blockquote": ('<blockquote class="expandable">', "</blockquote>"),
    "custom_emoji": ('<span class="emoji">', "</span>"),
    "text_mention": ('<span class="mention">', "</span>"),
}
# Links open only where a browser cannot be made to run something (no javascript:, data:).
_LINK_SCHEMES = ("http://", "https://", "tg://", "mailto:")


def _tags(found: dict[str, Any]) -> tuple[str, str]:
    kind = found["type"]
    if kind in _SIMPLE:
        return _SIMPLE[kind]
    if kind == "pre":
        language = found.get("language")
        if language:
            return f'<pre data-language="{escape(language)}"><code>', "</code></pre>"
        return "<pre><code>", "</code></pre>"
    if kind == "text_link":
        url = str(found.get("url", ""))
        if url.lower().startswith(_LINK_SCHEMES):
            return f'<a href="{escape(url)}" rel="noopener noreferrer nofollow">', "</a>"
        return '<span class="link">', "</span>"
    return f'<span class="entity-{escape(kind)}">', "</span>"


def _code_points(text: str, entities: list[dict[str, Any]]) -> list[tuple[int, int, int]]:
    """(start, end, index) in characters of `text`; entities count UTF-16 units."""
    if text.isascii() or all(ord(ch) <= 0xFFFF for ch in text):
        return [(e["offset"], e["offset"] + e["length"], i) for i, e in enumerate(entities)]
    units = [0, *accumulate(2 if ord(ch) > 0xFFFF else 1 for ch in text)]
    at = {unit: index for index, unit in enumerate(units)}
    spans = []
    for i, e in enumerate(entities):
        start, end = at.get(e["offset"]), at.get(e["offset"] + e["length"])
        if start is not None and end is not None:
            spans.append((start, end, i))
    return spans


def entities_html(text: str, entities: list[dict[str, Any]]) -> Markup:
    """The text, escaped, with each entity as its tag. Overlapping entities are closed and
    opened again around each other, so the HTML is always well nested."""
    spans = sorted(_code_points(text, entities), key=lambda s: (s[0], -s[1], s[2]))
    tags = [_tags(e) for e in entities]
    points = sorted({p for start, end, _ in spans for p in (start, end)} | {0, len(text)})
    out: list[str] = []
    stack: list[tuple[int, int, int]] = []  # open spans, outermost first
    waiting = 0  # spans[waiting:] have not started yet
    cursor = 0
    for point in points:
        out.append(str(escape(text[cursor:point])))
        cursor = point
        ended = [k for k, span in enumerate(stack) if span[1] <= point]
        if ended:
            # Close down to the outermost span that ends here; reopen the others.
            for span in reversed(stack[ended[0] :]):
                out.append(tags[span[2]][1])
            survivors = [span for span in stack[ended[0] :] if span[1] > point]
            del stack[ended[0] :]
            for span in survivors:
                out.append(tags[span[2]][0])
                stack.append(span)
        while waiting < len(spans) and spans[waiting][0] <= point:
            span = spans[waiting]
            waiting += 1
            if span[1] > point:
                out.append(tags[span[2]][0])
                stack.append(span)
    for span in reversed(stack):
        out.append(tags[span[2]][1])
    return Markup("".join(out))


def message_html(source: str | None, parse_mode: str | None) -> Markup:
    if not source:
        return Markup("")
    try:
        text, entities = format_text(source, parse_mode)
    except MarkupError:
        return Markup('<span class="unparsed">') + escape(source) + Markup("</span>")
    return entities_html(text, entities)


def plain_text(source: str | None, parse_mode: str | None) -> str:
    """What the recipient reads, without formatting (for previews)."""
    if not source:
        return ""
    try:
        return format_text(source, parse_mode)[0]
    except MarkupError:
        return source


def preview(content: dict[str, Any]) -> str:
    """One line for a list: the text (or the media kind and its caption), shortened."""
    body = content.get("text")
    if body is None:
        kind = "photo" if "photo" in content else "document"
        caption = plain_text(content.get("caption"), content.get("parse_mode"))
        line = f"[{kind}] {caption}".strip()
    else:
        line = plain_text(body, content.get("parse_mode"))
    line = " ".join(line.split())
    return line if len(line) <= PREVIEW_CHARS else line[: PREVIEW_CHARS - 1] + "…"
