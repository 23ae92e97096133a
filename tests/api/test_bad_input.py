"""Bad input at every endpoint: a clear 4xx in the envelope, and nothing stored."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import TEXT_TASK, Api

OPERATOR = "tasks:read tasks:manage"


async def _stored(api: Api) -> tuple[int, int]:
    return await api.count(), await api.count("task_events")


def _assert_envelope(resp: Any, status: int | tuple[int, ...]) -> None:
    statuses = status if isinstance(status, tuple) else (status,)
    assert resp.status_code in statuses, resp.text
    error = resp.json()["error"]
    assert set(error) == {"code", "message", "details"}
    assert error["code"]
    assert error["message"]


RAW_BODIES = [
    (b"{", 400),
    (b"null", 422),
    (b'"text"', 422),
    (b"[]", 422),
    (b'{"chat_id": 1, "text": "x",}', 400),
    (b'{"chat_id": 1, "text": "\\ud800"}', (400, 422)),  # a lone surrogate
    (b'{"chat_id": 1, "text": "a\\u0000b"}', 422),  # PostgreSQL cannot store NUL
    (b'{"chat_id": 1, "text": "x", "metadata": {"k\\u0000": 1}}', 422),
    (b'{"chat_id": 1, "text": "x", "metadata": {"k": "\\u0000"}}', 422),
    (b'{"chat_id": 1e400, "text": "x"}', (400, 422)),
    (b'{"chat_id": 1, "text": "x", "metadata": {"n": 40702051926409009707352064}}', 422),
    (b'{"chat_id": 1, "text": "x", "priority": 1.5}', 422),
    (b'{"chat_id": 1, "text": "x", "send_at": "2099-13-45T99:00:00Z"}', 422),
    (b"\x00\x01\x02", 400),
]


@pytest.mark.parametrize(("raw", "status"), RAW_BODIES)
async def test_create_refuses_bad_bytes(api: Api, raw: bytes, status: Any) -> None:
    headers = {**api.auth(), "Idempotency-Key": "bad", "Content-Type": "application/json"}
    resp = await api.client.post("/api/tasks", content=raw, headers=headers)
    _assert_envelope(resp, status)
    assert await _stored(api) == (0, 0)


async def test_batch_refuses_bad_bytes_and_bad_items(api: Api) -> None:
    for raw in (b"{", b'{"items": "x"}', b'{"items": null}', b"[1]"):
        resp = await api.client.post("/api/tasks/batch", content=raw, headers=api.auth())
        _assert_envelope(resp, (400, 422))
    items = [
        {"idempotency_key": "n", "chat_id": 1, "text": "a\u0000b"},  # PostgreSQL stores no NUL
        {"idempotency_key": "nul\u0000key", "chat_id": 1, "text": "x"},
        {"idempotency_key": "", "chat_id": 1, "text": "x"},
        {"idempotency_key": "k" * 300, "chat_id": 1, "text": "x"},
        {"idempotency_key": 5, "chat_id": 1, "text": "x"},
        {"idempotency_key": "big", "chat_id": 1, "text": "x", "metadata": {"n": 2**70}},
    ]
    resp = await api.client.post("/api/tasks/batch", json={"items": items}, headers=api.auth())
    assert resp.status_code == 200
    assert [r["result"] for r in resp.json()["results"]] == ["error"] * len(items)
    big = {"items": [{"idempotency_key": "b", "chat_id": 1, "text": "x" * 4000}] * 300}
    _assert_envelope(await api.client.post("/api/tasks/batch", json=big, headers=api.auth()), 413)
    assert await _stored(api) == (0, 0)


UNICODE_TEXTS = [
    "🚀 émoji ✓ 漢字",
    "\u202eRTL override",
    "zero\u200bwidth",
    "e\u0301 combining",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 outside the BMP",
    "'; DROP TABLE tasks; --",
    "Robert'); DELETE FROM task_events WHERE ('1'='1",
]


async def test_unicode_and_sql_looking_text_is_stored_verbatim(api: Api) -> None:
    for i, text in enumerate(UNICODE_TEXTS):
        body = {"chat_id": 1, "text": text, "metadata": {text: text}}
        resp = await api.post_task(body, key=f"u{i}")
        assert resp.status_code == 201, (text, resp.text)
        task = (await api.client.get(f"/api/tasks/{resp.json()['id']}", headers=api.auth())).json()
        assert task["text"] == text
        assert task["metadata"] == {text: text}
    assert await _stored(api) == (len(UNICODE_TEXTS), len(UNICODE_TEXTS))


async def test_sql_looking_query_parameters_are_refused_or_harmless(api: Api) -> None:
    await api.post_task(TEXT_TASK, key="one")
    headers = api.auth()
    for query in ("status=pending' OR '1'='1", "chat_id=1 OR 1=1", "limit=1;DROP TABLE tasks"):
        _assert_envelope(await api.client.get(f"/api/tasks?{query}", headers=headers), 422)
    resp = await api.client.get("/api/tasks?chat_id=@x'--", headers=headers)
    _assert_envelope(resp, 422)
    resp = await api.client.get("/api/tasks?chat_id=@robert_tables", headers=headers)
    assert resp.json()["items"] == []
    assert await _stored(api) == (1, 1)


async def test_patch_and_delete_refuse_bad_input(api: Api) -> None:
    task_id = (await api.post_task(TEXT_TASK, key="p")).json()["id"]
    headers = api.auth("ops", OPERATOR)
    for raw in (b"{", b"[]", b'{"status": 5}', b'{"status": "cancelled", "extra": 1}', b""):
        resp = await api.client.patch(f"/api/tasks/{task_id}", content=raw, headers=headers)
        _assert_envelope(resp, (400, 422))
    huge = b'{"status": "cancelled", "reason": "' + b"x" * 2_000_000 + b'"}'
    _assert_envelope(
        await api.client.patch(f"/api/tasks/{task_id}", content=huge, headers=headers), 413
    )
    for bad_id in ("-1", "0", "9" * 30, "1e3", "%00"):
        _assert_envelope(
            await api.client.delete(f"/api/tasks/{bad_id}", headers=headers), (404, 422)
        )
        _assert_envelope(
            await api.client.patch(
                f"/api/tasks/{bad_id}", json={"status": "cancelled"}, headers=headers
            ),
            (404, 422),
        )
    row = await api.pool.fetchrow("SELECT status FROM tasks WHERE id = $1", task_id)
    assert row["status"] == "pending"
    assert await _stored(api) == (1, 1)


async def test_header_edge_cases(api: Api) -> None:
    resp = await api.post_task(TEXT_TASK, key="'; DROP TABLE tasks; --")
    assert resp.json()["idempotency_key"] == "'; DROP TABLE tasks; --"
    resp = await api.post_task(TEXT_TASK, key="  ")
    assert resp.status_code == 201  # any visible key is the client's business
    too_long_request_id = "r" * 500
    resp = await api.post_task(TEXT_TASK, key="h2", **{"X-Request-ID": too_long_request_id})
    assert resp.status_code == 201
    assert resp.headers["x-request-id"] != too_long_request_id
