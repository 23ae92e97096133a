"""Chat ids: one parser for intake and the listing's filter, and request hashes that
survive an upgrade (a producer's retry after a deploy must still replay, not 422)."""

from __future__ import annotations

import pytest

from herald.api.schemas import TaskIn
from herald.chat_id import ChatId
from tests.api.conftest import Api


@pytest.mark.parametrize(
    ("given", "stored", "ref"),
    [
        (42, "42", 42),
        ("-0042", "-42", -42),
        (-1001234567890, "-1001234567890", -1001234567890),
        ("@news_channel", "@news_channel", "@news_channel"),
    ],
)
def test_parse_stores_text_and_gives_telegram_its_form(
    given: int | str, stored: str, ref: int | str
) -> None:
    chat = ChatId.parse(given)
    assert chat == stored
    assert chat.ref == ref
    assert type(chat.ref) is type(ref)


@pytest.mark.parametrize("bad", [0, "0", 2**52, -(2**52), "12a", "@abc", "@1abc", "", " 42"])
def test_parse_refuses(bad: int | str) -> None:
    with pytest.raises(ValueError, match=r"out of range|integer or @channelusername"):
        ChatId.parse(bad)


# sha256 of each body's normalized request, as the releases before ChatId computed them.
STABLE_HASHES = [
    (
        {"chat_id": 42, "text": "hi"},
        "b5329993c0719b509e489ae64be4e69aea9f46d0e8d658b894f85ed1a080e201",
    ),
    (
        {"chat_id": "-100123", "text": "hi", "priority": 3, "metadata": {"b": 1, "a": 2}},
        "45f769b62292baaa792674fd00a92b8c52c47115765f6143d68b6324ee0384e4",
    ),
    (
        {
            "chat_id": "@channel_x",
            "photo": "https://e.x/a.png",
            "caption": "c",
            "buttons": [[{"text": "t", "url": "https://x"}]],
        },
        "60cae5c09389834c60140c59fd82c6761e859a438216507e4204b35e2d2de5cc",
    ),
]


@pytest.mark.parametrize(("body", "digest"), STABLE_HASHES)
def test_request_hash_is_what_earlier_releases_stored(body: dict[str, object], digest: str) -> None:
    assert TaskIn.model_validate(body).request_hash().hex() == digest


async def test_numeric_chat_id_as_text_or_integer_is_one_chat(api: Api) -> None:
    first = await api.post_task({"chat_id": "-1001234", "text": "hi"}, key="a")
    assert first.json()["chat_id"] == -1001234
    # The same request with the id as an integer replays: same chat, same hash.
    again = await api.post_task({"chat_id": -1001234, "text": "hi"}, key="a")
    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    listed = await api.client.get("/api/tasks?chat_id=-1001234", headers=api.auth())
    assert [t["id"] for t in listed.json()["items"]] == [first.json()["id"]]
    refused = await api.client.get("/api/tasks?chat_id=0", headers=api.auth())
    assert refused.status_code == 422
    assert refused.json()["error"]["details"] == {"chat_id": "0"}
