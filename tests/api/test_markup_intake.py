"""Intake parses markup as Telegram does: in linear time, refusing what Telegram refuses.

Finding 1 of issue 11: regular expressions over the raw text made one request of
`"[" * 6000` take ~2 s; these inputs, at the size limits, must each be answered well
within a second, alone and as a full batch, and markup Telegram would refuse is a 422
naming the field, the offset and Telegram's reason.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest

from herald.api.schemas import MAX_RAW_TEXT
from tests.api.conftest import Api
from tests.support.databases import EMPTY_TABLES

# The "answered well within a second", for every request below.
BOUND_SECONDS = 1.0

# (name, parse_mode, unit repeated to the raw size limit, the answer to a task with that
# text, the answer to a photo with it as caption: an empty caption is fine, 1024 the most).
# The last of each mode were the slowest per character in a random search over units.
ADVERSARIAL: list[tuple[str, str, str, int, int]] = [
    ("brackets", "MarkdownV2", "[", 422, 422),
    ("link openings", "MarkdownV2", "[a](", 422, 422),
    ("nested brackets", "MarkdownV2", "[[[[x]]]]", 422, 422),
    ("closed links", "MarkdownV2", "[a](b)", 422, 422),
    ("bare links", "MarkdownV2", "[a]", 422, 422),
    ("emphasis marks", "MarkdownV2", "*_~", 422, 422),
    ("underline marks", "MarkdownV2", "__", 422, 201),
    ("spoiler marks", "MarkdownV2", "||", 422, 201),
    ("backslashes", "MarkdownV2", "\\", 422, 422),
    ("backticks", "MarkdownV2", "`", 422, 422),
    ("pre fences", "MarkdownV2", "```", 422, 422),
    ("unclosed pre", "MarkdownV2", "```a\nb", 422, 422),
    ("quote marks", "MarkdownV2", ">", 422, 201),
    ("emoji openings", "MarkdownV2", "![", 422, 422),
    ("links and marks", "MarkdownV2", "[*[", 422, 422),
    ("links and escapes", "MarkdownV2", "[\\.[", 422, 422),
    ("less-than", "HTML", "<", 422, 422),
    ("end tag openings", "HTML", "</", 422, 422),
    ("open tags", "HTML", "<b>", 422, 422),
    ("unclosed attribute", "HTML", '<a href="', 422, 422),
    ("attributes", "HTML", "<b a ", 422, 422),
    ("ampersands", "HTML", "&", 422, 422),
    ("numeric references", "HTML", "&#", 422, 422),
    ("long numbers", "HTML", "&#12345678", 422, 422),
    ("named references", "HTML", "&lt;", 201, 422),  # exactly 4096 characters once parsed
    ("empty anchors", "HTML", "<a></a>=", 201, 422),
    ("ampersands and anchors", "HTML", "&<a>", 422, 422),
]
IDS = [a[0] for a in ADVERSARIAL]


def _fill(unit: str, size: int) -> str:
    return (unit * (size // len(unit) + 1))[:size]


async def _timed(api: Api, call: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    resp = await call
    return resp, time.perf_counter() - started


@pytest.mark.parametrize(
    ("name", "parse_mode", "unit", "status", "as_caption"), ADVERSARIAL, ids=IDS
)
async def test_adversarial_text_at_the_raw_limit_is_answered_quickly(
    api: Api, name: str, parse_mode: str, unit: str, status: int, as_caption: int
) -> None:
    body = {"chat_id": 5, "text": _fill(unit, MAX_RAW_TEXT), "parse_mode": parse_mode}
    resp, seconds = await _timed(api, api.post_task(body, key=name))
    assert seconds < BOUND_SECONDS, (name, seconds)
    assert resp.status_code == status, resp.text[:500]
    assert await api.count() == (1 if status == 201 else 0)
    caption = {"chat_id": 5, "photo": "https://example.com/a.png", "caption": body["text"]}
    resp, seconds = await _timed(api, api.post_task({**caption, "parse_mode": parse_mode}, "c"))
    assert seconds < BOUND_SECONDS, (name, seconds)
    assert resp.status_code == as_caption, resp.text[:500]


def _batch_body(unit: str, parse_mode: str, items: int, budget: int) -> bytes:
    """`items` tasks whose texts repeat `unit`, as long as the body limit allows."""
    size = MAX_RAW_TEXT
    while True:
        text = _fill(unit, size)
        body = orjson.dumps(
            {
                "items": [
                    {
                        "idempotency_key": f"{i:04}",
                        "chat_id": 5,
                        "text": text,
                        "parse_mode": parse_mode,
                    }
                    for i in range(items)
                ]
            }
        )
        if len(body) <= budget:
            return body
        size = size * 9 // 10


async def _batch_bound(api: Api, size: int) -> float:
    """A second, or twenty times a 1,000-item batch of plain text of the same size on a
    machine slow enough for that to be more. Markup-dense text refused item by item cost
    five to eight times plain text (2026-11-30, on a machine where the slowest cases took
    1.1 to 1.5 s); a parser superlinear in its input (the regexes of finding 1 took
    seconds per item at this size) costs hundreds of times, and fails either bound."""
    plain = _batch_body("plain", "HTML", 1000, size)
    headers = {**api.auth(), "Content-Type": "application/json"}
    call = api.client.post("/api/tasks/batch", content=plain, headers=headers)
    resp, seconds = await _timed(api, call)
    assert resp.status_code == 200, resp.text[:500]
    await api.pool.execute(EMPTY_TABLES)  # its keys are the adversarial batch's
    return max(BOUND_SECONDS, 20 * seconds)


@pytest.mark.parametrize(
    ("name", "parse_mode", "unit", "status", "as_caption"), ADVERSARIAL, ids=IDS
)
async def test_adversarial_batch_of_1000_is_answered_quickly(
    api: Api, name: str, parse_mode: str, unit: str, status: int, as_caption: int
) -> None:
    body = _batch_body(unit, parse_mode, 1000, api.settings.max_body_bytes)
    headers = {**api.auth(), "Content-Type": "application/json"}
    bound = await _batch_bound(api, len(body))
    call = api.client.post("/api/tasks/batch", content=body, headers=headers)
    resp, seconds = await _timed(api, call)
    assert seconds < bound, (name, seconds, bound)
    assert resp.status_code == 200, resp.text
    results = resp.json()["results"]
    assert len(results) == 1000
    # Shorter texts than the single task's: refused ones are refused for their markup.
    refused = [r for r in results if r["result"] == "error"]
    assert await api.count() == 1000 - len(refused)
    for result in refused:
        [detail] = result["error"]["details"]
        assert detail["loc"] == ["text"]
        assert isinstance(detail.get("offset"), int) or detail["type"] == "text_length"


# Each refusal Telegram documents (tdlib's parse_html / parse_markdown_v2 messages), with
# the offset of the character where it is found, counted in characters of the source.
MARKUP_ERRORS: list[tuple[str, str, str, int]] = [
    ("HTML", "<blink>x</blink>", 'Unsupported start tag "blink" at byte offset 0', 0),
    ("HTML", "a <b", "Unclosed start tag at byte offset 2", 2),
    ("HTML", "<a href", 'Unclosed start tag "a" at byte offset 0', 0),
    ("HTML", "x <b =1>y</b>", 'Empty attribute name in the tag "b" at byte offset 2', 2),
    ("HTML", "<a href=x/y>z</a>", "Unexpected end of name token at byte offset 8", 8),
    ("HTML", "<span>s</span>", 'Tag "span" must have class "tg-spoiler" at byte offset 0', 0),
    ("HTML", "x</b>", "Unexpected end tag at byte offset 1", 1),
    ("HTML", "<b>x</b", "Unclosed end tag at byte offset 4", 4),
    ("HTML", "<b>x</i>", 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"', 4),
    ("HTML", "ok <b>bold", 'Can\'t find end tag corresponding to start tag "b"', 3),
    # Text in the reason is not a template: braces stay as they are.
    (
        "HTML",
        "<b>x</{offset}>",
        'Unmatched end tag at byte offset 4, expected "</b>", found "</{offset}>"',
        4,
    ),
    ("HTML", '<tg-emoji emoji-id="x">e</tg-emoji>', "Invalid custom emoji identifier specified", 0),
    (
        "HTML",
        "a &#xD800; b",
        "Text contains invalid Unicode characters after decoding HTML entities, check for "
        "unmatched surrogate code units",
        2,
    ),
    ("HTML", '<tg-time unix="5" format="q">t</tg-time>', "Invalid date format used", 0),
    ("HTML", "😀 <i>x", 'Can\'t find end tag corresponding to start tag "i"', 2),
    (
        "MarkdownV2",
        "Version 1.5",
        "Character '.' is reserved and must be escaped with the preceding '\\'",
        9,
    ),
    ("MarkdownV2", "a *bold", "Can't find end of Bold entity at byte offset 2", 2),
    ("MarkdownV2", "😀 *bold", "Can't find end of Bold entity at byte offset 5", 2),
    ("MarkdownV2", "*bold _italic* x_", "Can't find end of Italic entity at byte offset 16", 16),
    ("MarkdownV2", "[a](http://x", "Can't find end of a URL at byte offset 4", 4),
    ("MarkdownV2", "![e] x", "The entity must contain a tg://emoji or tg://time URL", 0),
    ("MarkdownV2", "![e](tg://emoji?id=x)", "Invalid tg://emoji or tg://time URL specified", 0),
    (
        "MarkdownV2",
        ">a\n|b",
        "Character '|' is reserved and must be escaped with the preceding '\\'",
        3,
    ),
]


@pytest.mark.parametrize(("parse_mode", "text", "reason", "offset"), MARKUP_ERRORS)
async def test_markup_telegram_refuses_is_422_with_field_offset_and_reason(
    api: Api, parse_mode: str, text: str, reason: str, offset: int
) -> None:
    resp = await api.post_task({"chat_id": 5, "text": text, "parse_mode": parse_mode}, key="m")
    assert resp.status_code == 422, resp.text
    error = resp.json()["error"]
    assert error["code"] == "validation_error"
    assert error["details"] == [
        {
            "loc": ["text"],
            "msg": f"can't parse entities: {reason}",
            "type": "markup_invalid",
            "offset": offset,
        }
    ]
    caption = {"chat_id": 5, "document": "https://example.com/r.pdf", "caption": text}
    resp = await api.post_task({**caption, "parse_mode": parse_mode}, key="c")
    assert resp.status_code == 422, resp.text
    [detail] = resp.json()["error"]["details"]
    assert (detail["loc"], detail["offset"]) == (["caption"], offset)
    assert await api.count() == 0


async def test_batch_refuses_bad_markup_item_by_item(api: Api) -> None:
    items = [
        {"idempotency_key": "good", "chat_id": 5, "text": "*fine*", "parse_mode": "MarkdownV2"},
        {"idempotency_key": "bad", "chat_id": 5, "text": "fine.", "parse_mode": "MarkdownV2"},
    ]
    resp = await api.client.post("/api/tasks/batch", json={"items": items}, headers=api.auth())
    assert resp.status_code == 200
    good, bad = resp.json()["results"]
    assert good["result"] == "created"
    assert bad["result"] == "error"
    assert bad["error"]["details"] == [
        {
            "loc": ["text"],
            "msg": "can't parse entities: Character '.' is reserved and must be escaped "
            "with the preceding '\\'",
            "type": "markup_invalid",
            "offset": 4,
        }
    ]
    assert await api.count() == 1


VISIBLE_LENGTHS: list[tuple[str | None, str, str]] = [
    # (parse_mode, a text of exactly 4096 characters as Telegram counts them, one of 4097)
    ("HTML", "<b>" + "a" * 4096 + "</b>", "<b>" + "a" * 4097 + "</b>"),
    ("HTML", "&lt;" * 4096, "&lt;" * 4090 + "<b>" + "a" * 7 + "</b>"),
    ("MarkdownV2", "\\." * 4096, "\\." * 4097),
    (
        "MarkdownV2",
        "[" + "a" * 4096 + "](https://example.com/" + "x" * 100 + ")",
        "[" + "a" * 4097 + "](https://example.com/" + "x" * 100 + ")",
    ),
    (None, "😀" * 4096, "😀" * 4097),  # Telegram counts characters, not UTF-16 units
    (None, "  \n" + "a" * 4096 + "\n  ", "  \n" + "a" * 4097 + "\n  "),  # ends trimmed
    (None, "a\r" * 4096, "a\r" * 4097),  # Telegram drops carriage returns
]


@pytest.mark.parametrize(("parse_mode", "at_limit", "over"), VISIBLE_LENGTHS)
async def test_length_is_counted_after_parsing_and_trimming(
    api: Api, parse_mode: str | None, at_limit: str, over: str
) -> None:
    body = {"chat_id": 5, "text": at_limit, "parse_mode": parse_mode}
    assert (await api.post_task(body, key="at-limit")).status_code == 201
    resp = await api.post_task({**body, "text": over}, key="over")
    assert resp.status_code == 422, resp.text
    [detail] = resp.json()["error"]["details"]
    assert (detail["loc"], detail["type"]) == (["text"], "text_length")
    assert await api.count() == 1


async def test_text_empty_once_parsed_is_refused(api: Api) -> None:
    for i, (text, mode) in enumerate([("<b> </b>", "HTML"), ("``", "MarkdownV2"), (" \n ", None)]):
        resp = await api.post_task({"chat_id": 5, "text": text, "parse_mode": mode}, key=str(i))
        assert resp.status_code == 422, (text, resp.text)
    assert await api.count() == 0
