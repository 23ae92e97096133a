"""Times whose UTC value falls outside year 1 to 9999 are a 422, not a 500.

Finding 8 of issue 11: `send_at`/`expires_at` of `9999-12-31T23:59:59-12:00` or
`0001-01-01T00:00:00+14:00`, and the same in `created_after`, made the conversion to UTC
overflow: a 500, and one such item made a whole batch a 500.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.api.conftest import Api

OUT_OF_RANGE = [
    "9999-12-31T23:59:59-12:00",
    "0001-01-01T00:00:00+14:00",
    "0001-01-01T00:00:00+00:01",
]
EDGES = ["9999-12-31T23:59:59+14:00", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00-12:00"]


def _envelope(resp: object) -> dict[str, object]:
    body = resp.json()  # type: ignore[attr-defined]
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    error: dict[str, object] = body["error"]
    return error


@pytest.mark.parametrize("field", ["send_at", "expires_at"])
@pytest.mark.parametrize("when", OUT_OF_RANGE)
async def test_out_of_range_time_is_422_alone_and_in_a_batch(
    api: Api, field: str, when: str
) -> None:
    resp = await api.post_task({"chat_id": 5, "text": "x", field: when}, key="t")
    assert resp.status_code == 422, resp.text
    error = _envelope(resp)
    assert error["code"] == "validation_error"
    assert [d["loc"] for d in error["details"]] == [[field]]  # type: ignore[attr-defined]

    items = [
        {"idempotency_key": "bad", "chat_id": 5, "text": "x", field: when},
        {"idempotency_key": "good", "chat_id": 5, "text": "y"},
    ]
    resp = await api.client.post("/api/tasks/batch", json={"items": items}, headers=api.auth())
    assert resp.status_code == 200, resp.text
    assert [r["result"] for r in resp.json()["results"]] == ["error", "created"]
    assert resp.json()["results"][0]["error"]["details"][0]["loc"] == [field]
    assert await api.count() == 1


async def test_times_at_the_edges_of_the_range_are_stored(api: Api) -> None:
    for i, when in enumerate(EDGES):
        body = {"chat_id": 5, "text": "x", "send_at": when}
        if when.startswith("9999"):
            body["expires_at"] = "9999-12-31T23:59:59.999999+00:00"
        resp = await api.post_task(body, key=str(i))
        assert resp.status_code == 201, (when, resp.text)
    assert await api.count() == len(EDGES)


@pytest.mark.parametrize("param", ["created_after", "created_before"])
@pytest.mark.parametrize("when", OUT_OF_RANGE)
async def test_out_of_range_time_in_a_listing_filter_is_422(
    api: Api, param: str, when: str
) -> None:
    resp = await api.client.get(f"/api/tasks?{param}={quote(when)}", headers=api.auth())
    assert resp.status_code == 422, resp.text
    error = _envelope(resp)
    assert error["code"] == "validation_error"
    assert [d["loc"] for d in error["details"]] == [["query", param]]  # type: ignore[attr-defined]


@pytest.mark.parametrize("when", EDGES)
async def test_listing_filters_at_the_edges_answer(api: Api, when: str) -> None:
    await api.post_task({"chat_id": 5, "text": "x"}, key="one")
    for param in ("created_after", "created_before"):
        resp = await api.client.get(f"/api/tasks?{param}={quote(when)}", headers=api.auth())
        assert resp.status_code == 200, resp.text
        expected = 1 if (param == "created_after") == when.startswith("0001") else 0
        assert len(resp.json()["items"]) == expected
