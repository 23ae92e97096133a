"""`photo` and `document` are an http(s) URL or a Telegram file_id, nothing else.

Finding 7 of issue 11: local paths, `file://`, other schemes and `attach://` were
accepted (201) and forwarded; a local Bot API server in `--local` mode uploads `file://`
paths from its own disk.
"""

from __future__ import annotations

import pytest

from tests.api.conftest import Api

FILE_ID = "AgACAgIAAxkBAAIBY2Zx0eWq-kq_9Vn3pE0hXJ8rK2bYAAJQ1jEbk7qYS0xYg9WbX0jmAQADAgADeQADNQQ"

REFUSED = [
    "file:///etc/passwd",
    "FILE:///etc/passwd",
    "/etc/passwd",
    "../../etc/passwd",
    "C:\\Windows\\win.ini",
    "gopher://example.com/1",
    "ftp://example.com/a.png",
    "attach://x",
    "javascript:alert(1)",
    "data:image/png;base64,iVBORw0KGgo",
    "http://",
    "https:///etc/passwd",
    "http:/example.com/a.png",
    "https://example.com/a b.png",
    " https://example.com/a.png",
    "https://example.com/a.png\n",
    "short_id",  # not a file_id: too short to be one
    FILE_ID + "=",
    FILE_ID + "/",
    "AgACAgIAAxkBAAIBY2Zx0eWq.kq",
]

ACCEPTED = [
    "https://example.com/cat.jpg",
    "http://example.com/r.pdf?x=1#y",
    "HTTPS://EXAMPLE.COM/A.PNG",
    "https://user@example.com:8443/a.png",
    FILE_ID,
    "BQACAgIAAxkBAAIBZGZx0f" + "-_" * 10,
]


@pytest.mark.parametrize("field", ["photo", "document"])
@pytest.mark.parametrize("ref", REFUSED)
async def test_file_reference_other_than_http_url_or_file_id_is_refused(
    api: Api, field: str, ref: str
) -> None:
    resp = await api.post_task({"chat_id": 5, field: ref, "caption": "c"}, key="f")
    assert resp.status_code == 422, resp.text
    error = resp.json()["error"]
    assert error["code"] == "validation_error"
    assert [d["loc"] for d in error["details"]] == [[field]]
    item = {"idempotency_key": "b", "chat_id": 5, field: ref}
    resp = await api.client.post("/api/tasks/batch", json={"items": [item]}, headers=api.auth())
    assert resp.json()["results"][0]["result"] == "error"
    assert await api.count() == 0
    assert api.queue.calls == []


@pytest.mark.parametrize("field", ["photo", "document"])
async def test_http_urls_and_file_ids_are_accepted(api: Api, field: str) -> None:
    for i, ref in enumerate(ACCEPTED):
        resp = await api.post_task({"chat_id": 5, field: ref}, key=str(i))
        assert resp.status_code == 201, (ref, resp.text)
        assert resp.json()[field] == ref
    assert await api.count() == len(ACCEPTED)
