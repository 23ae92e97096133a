"""Whatever the text, the parser answers with a text and sound entities, or Telegram's refusal.

Random texts built from the pieces of markup (seeded, so a failure repeats): the parser
never raises anything but ParseEntitiesError, a refusal points inside the source, and
entities lie inside the text they format.
"""

from __future__ import annotations

import random

import pytest

from herald.markup import ParseEntitiesError, format_text

PIECES = {
    "MarkdownV2": [
        *"[]()*_~`>|!\\\n #.",
        *("a", "\\.", "](b.c)", "](", "||", "__", "```", "```py\n", "x.y", "😀", "\r", "\u2028"),
        *("{}", "{0}"),
        "tg://emoji?id=5",
    ],
    "HTML": [
        *("<b>", "</b>", "<i>", "</i>", "<a>", "</a>", "<a href='x.y'>", "<b >", "</>"),
        *("<code>", "</code>", "<pre>", "</pre>", "<code class='language-py'>"),
        *("<blockquote expandable>", "</blockquote>", "<span class=tg-spoiler>", "</span>"),
        *("<tg-emoji emoji-id=5>", "</tg-emoji>", '<tg-time unix="5" format="t">', "</tg-time>"),
        *("&lt;", "&", "&#", "&#65;", "&#xD800;", "a", "<", ">", "/", " ", "\n", "=", "'", '"'),
        *("x.y", "😀", "\r", "\t", "{}", "{0}", "<x{}>", "</{}>"),
    ],
}


def _utf16_length(text: str) -> int:
    return sum(2 if ord(ch) > 0xFFFF else 1 for ch in text)


@pytest.mark.parametrize("mode", sorted(PIECES))
def test_random_markup_parses_or_is_refused_soundly(mode: str) -> None:
    rng = random.Random(f"herald-{mode}")
    outcomes = {"parsed": 0, "refused": 0}
    for _ in range(20_000):
        source = "".join(rng.choice(PIECES[mode]) for _ in range(rng.randint(0, 30)))
        refusal: ParseEntitiesError | None = None
        try:
            text, entities = format_text(source, mode)
        except ParseEntitiesError as exc:
            refusal = exc
        if refusal is not None:
            assert 0 <= refusal.offset <= len(source), (source, refusal)
            assert str(refusal) == f"Bad Request: can't parse entities: {refusal.reason}"
            outcomes["refused"] += 1
            continue
        outcomes["parsed"] += 1
        assert len(text) <= len(source)
        # Trimmed as Telegram trims: the end always, the start up to the first entity.
        assert text == text.rstrip(" \n")
        assert text == text.lstrip(" \n") or min(e["offset"] for e in entities) == 0
        units = _utf16_length(text)
        for found in entities:
            assert found["length"] > 0, (source, found)
            assert 0 <= found["offset"] < found["offset"] + found["length"] <= units
    # Both outcomes were exercised, so the checks above checked something.
    assert min(outcomes.values()) > 1_000, outcomes
