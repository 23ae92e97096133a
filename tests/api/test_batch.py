"""POST /api/tasks/batch: per-item results, idempotency per item, one enqueue."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import Api


async def _batch(api: Api, items: list[Any], sub: str = "billing") -> Any:
    return await api.client.post("/api/tasks/batch", json={"items": items}, headers=api.auth(sub))


async def test_batch_mixes_created_replayed_and_refused(api: Api) -> None:
    await api.post_task({"chat_id": 1, "text": "old"}, key="old")
    items = [
        {"idempotency_key": "a", "chat_id": 1, "text": "one"},
        {"idempotency_key": "b", "chat_id": 2, "text": ""},  # invalid
        {"idempotency_key": "old", "chat_id": 1, "text": "old"},  # replay of a stored task
        {"idempotency_key": "old", "chat_id": 1, "text": "changed"},  # key reused
        {"idempotency_key": "a", "chat_id": 1, "text": "one"},  # repeated in the batch
        {"idempotency_key": "a", "chat_id": 1, "text": "two"},  # repeated, other body
        {"chat_id": 3, "text": "no key"},
        {"idempotency_key": "later", "chat_id": 4, "text": "x", "send_at": "2099-01-01T00:00:00Z"},
        "not an object",
    ]
    resp = await _batch(api, items)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    results = body["results"]
    assert [r["result"] for r in results] == [
        "created",
        "error",
        "replayed",
        "error",
        "replayed",
        "error",
        "error",
        "created",
        "error",
    ]
    assert [r["index"] for r in results] == list(range(len(items)))
    assert (body["created"], body["replayed"], body["refused"]) == (2, 2, 5)
    assert results[1]["error"]["code"] == "validation_error"
    assert results[3]["error"]["code"] == "idempotency_key_reused"
    assert results[5]["error"]["code"] == "idempotency_key_reused"
    assert results[4]["id"] == results[0]["id"]
    old_id = await api.pool.fetchval("SELECT id FROM tasks WHERE idempotency_key = 'old'")
    assert results[2]["id"] == old_id

    rows = await api.pool.fetch("SELECT idempotency_key, content FROM tasks ORDER BY id")
    assert [(r["idempotency_key"], r["content"]["text"]) for r in rows] == [
        ("old", "old"),
        ("a", "one"),
        ("later", "x"),
    ]
    assert await api.count("task_events") == 3
    # Only the new task that is due now is enqueued (the scheduled one waits for the sweeper).
    assert api.queue.calls[-1] == [(results[0]["id"], resp.headers["x-request-id"])]


async def test_batch_replayed_whole_is_all_replays(api: Api) -> None:
    items = [{"idempotency_key": f"k{i}", "chat_id": i + 1, "text": f"t{i}"} for i in range(300)]
    first = (await _batch(api, items)).json()
    again = (await _batch(api, items)).json()
    assert first["created"] == 300
    assert again["replayed"] == 300
    assert [r["id"] for r in first["results"]] == [r["id"] for r in again["results"]]
    assert await api.count() == 300
    assert len(api.queue.ids) == 300


async def test_batch_limits(api: Api) -> None:
    too_many = [{"idempotency_key": str(i), "chat_id": 1, "text": "x"} for i in range(1001)]
    resp = await _batch(api, too_many)
    assert resp.status_code == 422
    assert resp.json()["error"]["code"] == "batch_too_large"
    for body in ({"items": []}, {"items": {}}, {"tasks": []}):
        resp = await api.client.post("/api/tasks/batch", json=body, headers=api.auth())
        assert resp.status_code == 422, body
    resp = await api.client.post(
        "/api/tasks/batch", json={"items": [{}]}, headers=api.auth("r", "tasks:read")
    )
    assert resp.status_code == 403
    assert await api.count() == 0


async def test_batch_stores_tasks_exactly_as_single_posts_do(api: Api) -> None:
    bodies: list[dict[str, Any]] = [
        {"chat_id": 7, "text": "plain"},
        {
            "chat_id": "@news_channel",
            "text": "*bold*",
            "parse_mode": "MarkdownV2",
            "buttons": [[{"text": "a", "url": "https://a.example"}]],
            "send_at": "2099-05-01T12:00:00+02:00",
            "expires_at": "2099-05-02T00:00:00Z",
            "priority": -3,
            "max_attempts": 2,
            "delivery": "at_least_once",
            "metadata": {"z": [1, {"y": None}], "a": "ü"},
            "message_thread_id": 9,
            "link_preview": True,
        },
        {"chat_id": -100123, "document": "https://example.com/f.pdf", "caption": "c"},
    ]
    singles = [(await api.post_task(b, key=f"s{i}")).json() for i, b in enumerate(bodies)]
    items = [{**b, "idempotency_key": f"b{i}"} for i, b in enumerate(bodies)]
    results = (await _batch(api, items)).json()["results"]
    varying = {
        "id",
        "idempotency_key",
        "created_at",
        "updated_at",
        "next_attempt_at",
        "correlation_id",
    }
    for single, result in zip(singles, results, strict=True):
        stored = (await api.client.get(f"/api/tasks/{result['id']}", headers=api.auth())).json()
        assert {k: v for k, v in stored.items() if k not in varying} == {
            k: v for k, v in single.items() if k not in varying
        }
    rows = await api.pool.fetch("SELECT request_hash, metadata FROM tasks ORDER BY id")
    assert [r["request_hash"] for r in rows[:3]] == [r["request_hash"] for r in rows[3:]]
    assert rows[0]["metadata"] is None
    assert rows[3]["metadata"] is None  # JSON null in the batch document is SQL NULL
