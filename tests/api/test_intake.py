"""POST /api/tasks: create, idempotent replay, validation, correlation ids."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from herald.metrics import INTAKE_REFUSED, TASKS_CREATED, TASKS_REPLAYED
from tests.api.conftest import TEXT_TASK, Api


async def test_create_stores_task_and_audit_event_and_enqueues(api: Api) -> None:
    body = {
        "chat_id": "@news_channel",
        "text": "<b>hi</b>",
        "parse_mode": "HTML",
        "buttons": [[{"text": "open", "url": "https://example.com/x"}]],
        "metadata": {"order": 7},
        "priority": 5,
    }
    resp = await api.post_task(body, key="order-7", **{"X-Request-ID": "req-abc"})
    assert resp.status_code == 201, resp.text
    task = resp.json()
    assert resp.headers["location"] == f"/api/tasks/{task['id']}"
    assert resp.headers["x-request-id"] == "req-abc"
    assert task["status"] == "pending"
    assert task["chat_id"] == "@news_channel"
    assert task["text"] == "<b>hi</b>"
    assert task["buttons"] == [[{"text": "open", "url": "https://example.com/x"}]]
    assert task["metadata"] == {"order": 7}
    assert task["correlation_id"] == "req-abc"
    assert task["max_attempts"] == api.settings.max_attempts

    row = await api.pool.fetchrow("SELECT * FROM tasks WHERE id = $1", task["id"])
    assert row["client"] == "billing"
    assert row["idempotency_key"] == "order-7"
    assert row["content"]["parse_mode"] == "HTML"
    assert row["correlation_id"] == "req-abc"
    assert row["enqueued_at"] is not None
    events = await api.pool.fetch("SELECT * FROM task_events WHERE task_id = $1", task["id"])
    assert [(e["actor"], e["from_status"], e["to_status"]) for e in events] == [
        ("client:billing", None, "pending")
    ]
    assert api.queue.calls == [[(task["id"], "req-abc")]]


async def test_request_id_generated_when_absent_or_malformed(api: Api) -> None:
    resp = await api.post_task(TEXT_TASK, key="a")
    generated = resp.headers["x-request-id"]
    assert len(generated) == 32
    assert resp.json()["correlation_id"] == generated
    resp = await api.post_task(TEXT_TASK, key="b", **{"X-Request-ID": "bad id\twith space"})
    assert resp.headers["x-request-id"] != "bad id\twith space"


async def test_same_key_same_body_replays_original(api: Api) -> None:
    first = await api.post_task(TEXT_TASK, key="k")
    created, replayed = TASKS_CREATED._value.get(), TASKS_REPLAYED._value.get()
    # Same meaning, other spelling: key order and the "123"/123 chat id do not matter.
    again = await api.post_task({"text": "hello", "chat_id": "42", "priority": 0}, key="k")
    assert again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert await api.count() == 1
    assert api.queue.ids == [first.json()["id"]]  # a replay enqueues nothing
    assert TASKS_CREATED._value.get() == created
    assert TASKS_REPLAYED._value.get() == replayed + 1


async def test_same_key_other_body_is_422(api: Api) -> None:
    await api.post_task(TEXT_TASK, key="k")
    before = INTAKE_REFUSED.labels(reason="idempotency_key_reused")._value.get()
    resp = await api.post_task({"chat_id": 42, "text": "other"}, key="k")
    assert resp.status_code == 422
    assert resp.json()["error"]["code"] == "idempotency_key_reused"
    assert await api.count() == 1
    assert INTAKE_REFUSED.labels(reason="idempotency_key_reused")._value.get() == before + 1


async def test_same_key_two_clients_two_tasks(api: Api) -> None:
    a = await api.post_task(TEXT_TASK, key="k", sub="alpha")
    b = await api.post_task(TEXT_TASK, key="k", sub="beta")
    assert a.status_code == b.status_code == 201
    assert a.json()["id"] != b.json()["id"]


async def test_fifty_concurrent_posts_one_key_make_one_task(api: Api) -> None:
    responses = await asyncio.gather(*(api.post_task(TEXT_TASK, key="race") for _ in range(50)))
    assert sorted(r.status_code for r in responses) == [200] * 49 + [201]
    assert len({r.json()["id"] for r in responses}) == 1
    assert await api.count() == 1
    assert await api.count("task_events") == 1
    assert len(api.queue.ids) == 1


async def test_future_send_at_is_stored_but_not_enqueued(api: Api) -> None:
    resp = await api.post_task({**TEXT_TASK, "send_at": "2099-01-01T10:00:00+02:00"}, key="s")
    assert resp.status_code == 201
    task = resp.json()
    assert task["send_at"] == task["next_attempt_at"] == "2099-01-01T08:00:00+00:00"
    row = await api.pool.fetchrow("SELECT enqueued_at FROM tasks WHERE id = $1", task["id"])
    assert row["enqueued_at"] is None
    assert api.queue.calls == []


async def test_photo_with_caption_and_options(api: Api) -> None:
    body = {
        "chat_id": -1001234567890,
        "photo": "https://example.com/cat.jpg",
        "caption": "a cat",
        "disable_notification": True,
        "protect_content": True,
        "message_thread_id": 3,
        "delivery": "at_least_once",
        "max_attempts": 9,
        "expires_at": "2099-01-01T00:00:00Z",
    }
    resp = await api.post_task(body, key="p")
    assert resp.status_code == 201, resp.text
    row = await api.pool.fetchrow("SELECT * FROM tasks")
    assert row["chat_id"] == "-1001234567890"
    assert row["content"] == {
        "photo": "https://example.com/cat.jpg",
        "caption": "a cat",
        "disable_notification": True,
        "protect_content": True,
        "message_thread_id": 3,
    }
    assert (row["delivery"], row["max_attempts"]) == ("at_least_once", 9)
    assert resp.json()["chat_id"] == -1001234567890


BAD_BODIES: list[tuple[str, dict[str, Any]]] = [
    ("no text", {"chat_id": 1}),
    ("empty text", {"chat_id": 1, "text": ""}),
    ("blank text", {"chat_id": 1, "text": "   "}),
    ("text too long", {"chat_id": 1, "text": "x" * 4097}),
    (
        "html text too long",
        {"chat_id": 1, "text": "<b>" + "x" * 4097 + "</b>", "parse_mode": "HTML"},
    ),
    ("caption too long", {"chat_id": 1, "photo": "https://a.b/c.png", "caption": "x" * 1025}),
    ("caption with text", {"chat_id": 1, "text": "x", "caption": "y"}),
    ("text and photo", {"chat_id": 1, "text": "x", "photo": "https://a.b/c.png"}),
    ("bad parse_mode", {"chat_id": 1, "text": "x", "parse_mode": "Markdown"}),
    ("button without url", {"chat_id": 1, "text": "x", "buttons": [[{"text": "a"}]]}),
    (
        "button bad scheme",
        {"chat_id": 1, "text": "x", "buttons": [[{"text": "a", "url": "javascript:alert(1)"}]]},
    ),
    ("empty button row", {"chat_id": 1, "text": "x", "buttons": [[]]}),
    (
        "too many in a row",
        {"chat_id": 1, "text": "x", "buttons": [[{"text": "a", "url": "https://a.b"}] * 9]},
    ),
    ("chat id zero", {"chat_id": 0, "text": "x"}),
    ("chat id bool", {"chat_id": True, "text": "x"}),
    ("chat id word", {"chat_id": "general", "text": "x"}),
    ("chat id huge", {"chat_id": 2**60, "text": "x"}),
    ("naive send_at", {"chat_id": 1, "text": "x", "send_at": "2099-01-01T00:00:00"}),
    ("expired", {"chat_id": 1, "text": "x", "expires_at": "2000-01-01T00:00:00Z"}),
    (
        "send after expiry",
        {
            "chat_id": 1,
            "text": "x",
            "send_at": "2099-01-02T00:00:00Z",
            "expires_at": "2099-01-01T00:00:00Z",
        },
    ),
    ("priority out of range", {"chat_id": 1, "text": "x", "priority": 1000}),
    ("unknown delivery", {"chat_id": 1, "text": "x", "delivery": "twice"}),
    ("unknown field", {"chat_id": 1, "text": "x", "colour": "red"}),
    ("flag as string", {"chat_id": 1, "text": "x", "protect_content": "yes"}),
    ("metadata not object", {"chat_id": 1, "text": "x", "metadata": [1, 2]}),
    ("metadata too big", {"chat_id": 1, "text": "x", "metadata": {"a": "x" * 20000}}),
]


@pytest.mark.parametrize(("case", "body"), BAD_BODIES, ids=[c for c, _ in BAD_BODIES])
async def test_invalid_body_is_422_and_stores_nothing(
    api: Api, case: str, body: dict[str, Any]
) -> None:
    resp = await api.post_task(body, key=case)
    assert resp.status_code == 422, (case, resp.text)
    error = resp.json()["error"]
    assert error["code"] == "validation_error"
    assert error["details"], case
    assert await api.count() == 0
    assert api.queue.calls == []


async def test_missing_or_long_idempotency_key(api: Api) -> None:
    headers = api.auth()
    resp = await api.client.post("/api/tasks", json=TEXT_TASK, headers=headers)
    assert resp.status_code == 422
    assert resp.json()["error"]["code"] == "idempotency_key_required"
    resp = await api.post_task(TEXT_TASK, key="k" * 256)
    assert resp.json()["error"]["code"] == "idempotency_key_required"
    assert await api.count() == 0


async def test_malformed_json_is_400(api: Api) -> None:
    for raw in (b"{not json", b"", b"\xff\xfe"):
        resp = await api.client.post(
            "/api/tasks", content=raw, headers={**api.auth(), "Idempotency-Key": "m"}
        )
        assert resp.status_code == 400, raw
        assert resp.json()["error"]["code"] == "malformed_json"
    resp = await api.client.post(
        "/api/tasks", content=b"[1, 2]", headers={**api.auth(), "Idempotency-Key": "m"}
    )
    assert resp.status_code == 422
    assert await api.count() == 0


async def test_body_over_cap_is_413(api: Api) -> None:
    big = {"chat_id": 1, "text": "x", "metadata": {"a": "y" * api.settings.max_body_bytes}}
    resp = await api.post_task(big, key="big")
    assert resp.status_code == 413
    assert resp.json()["error"]["code"] == "payload_too_large"

    async def chunks():  # no Content-Length: the cap holds on the streamed bytes too
        for _ in range(1 + api.settings.max_body_bytes // 65536):
            yield b" " * 65536

    resp = await api.client.post(
        "/api/tasks", content=chunks(), headers={**api.auth(), "Idempotency-Key": "big2"}
    )
    assert resp.status_code == 413
    assert await api.count() == 0
