"""Status callbacks end to end: the gateway, a `herald worker` process, the emulator as
Telegram and a real HTTP receiver; every request verified with `standardwebhooks`."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import WebhookVerificationError

from herald.db.pool import Pool
from herald.emulator.testing import EmulatorHandle
from tests.callbacks.conftest import (
    FAST_CALLBACKS,
    Received,
    Receiver,
    callbacks_env,
    make_secret,
)
from tests.delivery.conftest import insert_task, post


def operator(client: httpx.AsyncClient) -> dict[str, str]:
    return {"Authorization": client.headers["X-Operator"]}


def writer(client: httpx.AsyncClient) -> dict[str, str]:
    return {"Authorization": client.headers["X-Writer"]}


async def patch(client: httpx.AsyncClient, task_id: int, **body: Any) -> None:
    r = await client.patch(f"/api/tasks/{task_id}", json=body, headers=operator(client))
    assert r.status_code == 200, r.text


async def status_of(client: httpx.AsyncClient, task_id: int) -> str:
    r = await client.get(f"/api/tasks/{task_id}", headers=operator(client))
    return str(r.json()["status"])


async def until(check: Any, seconds: float = 20) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def types(received: list[Received]) -> list[str]:
    return [r.event["type"] for r in received]


async def test_every_final_state_sends_exactly_its_events(
    db: Pool,
    gateway: httpx.AsyncClient,
    receiver: Receiver,
    start_worker: Any,
    tg: EmulatorHandle,
    enqueue: Any,
) -> None:
    secret = make_secret()
    await start_worker(callbacks=callbacks_env(receiver.url(), secret), **FAST_CALLBACKS)
    tg.block_chat(2)
    delivered = await post(gateway, "d", chat_id=1, text="hi", metadata={"order": 7})
    failed = await post(gateway, "f", chat_id=2, text="hi")
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    cancelled = await post(gateway, "c", chat_id=3, text="hi", send_at=later)
    r = await gateway.delete(f"/api/tasks/{cancelled}", headers=writer(gateway))
    assert r.status_code == 200, r.text
    expired = await insert_task(
        db, 4, client="shop", expires_at=datetime.now(UTC) - timedelta(seconds=1)
    )
    await enqueue([expired])
    for task_id in (delivered, failed, cancelled, expired):
        await receiver.wait(lambda t=task_id: len(receiver.by_task(t)) >= 1)

    tg.set_faults(rate_500=1.0)
    resolved = await post(gateway, "u1", chat_id=5, text="hi")
    resent = await post(gateway, "u2", chat_id=6, text="hi")
    for task_id in (resolved, resent):
        await receiver.wait(lambda t=task_id: len(receiver.by_task(t)) >= 1)
    tg.set_faults()
    await patch(gateway, resolved, status="delivered", telegram_message_id=99)
    await patch(gateway, resent, status="pending")
    await receiver.wait(lambda: len(receiver.by_task(resolved)) >= 2)
    await receiver.wait(lambda: len(receiver.by_task(resent)) >= 3)
    await asyncio.sleep(1)  # nothing more comes

    expected = {
        delivered: ["task.delivered"],
        failed: ["task.failed"],
        cancelled: ["task.cancelled"],
        expired: ["task.expired"],
        resolved: ["task.uncertain", "task.resolved"],
        resent: ["task.uncertain", "task.resent", "task.delivered"],
    }
    for task_id, kinds in expected.items():
        got = receiver.by_task(task_id)
        assert types(got) == kinds, task_id
        assert [r.verify(secret)["data"]["seq"] for r in got] == list(range(1, len(kinds) + 1))
        assert len({r.id for r in got}) == len(got)  # one webhook-id per event
    assert len(receiver.requests) == sum(map(len, expected.values()))  # no retry was needed
    assert all(r.path == "/hook" for r in receiver.requests)

    data = receiver.by_task(delivered)[0].verify(secret)["data"]
    message = tg.messages(1)[0]
    assert data["telegram_message_id"] == message["message_id"]
    assert data["metadata"] == {"order": 7}
    assert data["idempotency_key"] == "d"
    assert data["status"] == "delivered"
    assert data["attempt"] == 1
    assert {"created_at", "updated_at"} <= data.keys()
    failure = receiver.by_task(failed)[0].verify(secret)["data"]
    assert failure["error_code"] == 403
    assert "blocked" in failure["error"]
    assert receiver.by_task(resolved)[1].verify(secret)["data"]["telegram_message_id"] == 99
    assert len(tg.messages(1)) == 1  # Telegram deliveries untouched: once each


async def test_retries_keep_the_id_and_follow_the_schedule(
    db: Pool, gateway: httpx.AsyncClient, receiver: Receiver, start_worker: Any
) -> None:
    secret = make_secret()
    seen: dict[str, int] = {}
    gives_up: set[int] = set()

    async def answer(got: Received) -> int | None:
        seen[got.id] = seen.get(got.id, 0) + 1
        if got.event["data"]["task_id"] in gives_up:
            return 500
        return {1: 500, 2: None}.get(seen[got.id], 204)  # a 500, a dropped connection, a 2xx

    receiver.answer = answer
    await start_worker(callbacks=callbacks_env(receiver.url(), secret), **FAST_CALLBACKS)
    task_id = await post(gateway, "r", chat_id=1, text="hi")
    await receiver.wait(lambda: len(receiver.accepted) == 1)
    attempts = [r for r in receiver.requests if r.event["data"]["task_id"] == task_id]
    assert len(attempts) == 3
    assert len({r.id for r in attempts}) == 1  # the same webhook-id on every retry
    for r in attempts:
        r.verify(secret)
    gaps = [b.at - a.at for a, b in pairwise(attempts)]
    # The schedule is [0, 0.4, 0.8]: each retry that long after the failure, not sooner.
    assert 0.4 <= gaps[0] < 1.4, gaps
    assert 0.8 <= gaps[1] < 1.8, gaps

    r = await gateway.get(f"/api/tasks/{task_id}/callbacks", headers=writer(gateway))
    assert r.status_code == 200, r.text
    [event] = r.json()["items"]
    assert event["id"] == attempts[0].id
    assert event["type"] == "task.delivered"
    assert event["status"] == "delivered"
    assert [a["status_code"] for a in event["attempts"]] == [500, None, 204]
    assert event["attempts"][0]["error"] == "HTTP 500"
    assert "Disconnected" in event["attempts"][1]["error"]
    assert all(a["latency_ms"] >= 0 for a in event["attempts"])

    # An endpoint that never accepts: three attempts, then the event failed.
    doomed = await post(gateway, "x", chat_id=2, text="hi")
    gives_up.add(doomed)

    async def failed() -> bool:
        r = await gateway.get(f"/api/tasks/{doomed}/callbacks", headers=writer(gateway))
        items = r.json()["items"]
        return bool(items) and items[0]["status"] == "failed"

    await until(failed)
    r = await gateway.get(f"/api/tasks/{doomed}/callbacks", headers=writer(gateway))
    assert [a["status_code"] for a in r.json()["items"][0]["attempts"]] == [500, 500, 500]


async def test_events_of_a_task_go_out_in_order(
    db: Pool, gateway: httpx.AsyncClient, receiver: Receiver, start_worker: Any, tg: EmulatorHandle
) -> None:
    secret = make_secret()
    tries: dict[str, int] = {}

    async def answer(got: Received) -> int:
        tries[got.id] = tries.get(got.id, 0) + 1
        # The first event of each task is refused twice: the second must wait for it.
        return 500 if got.event["data"]["seq"] == 1 and tries[got.id] <= 2 else 200

    receiver.answer = answer
    await start_worker(callbacks=callbacks_env(receiver.url(), secret), **FAST_CALLBACKS)
    tg.set_faults(rate_500=1.0)
    first = await post(gateway, "o1", chat_id=1, text="hi")
    other = await post(gateway, "o2", chat_id=2, text="hi")

    async def uncertain() -> bool:
        return {await status_of(gateway, t) for t in (first, other)} == {"uncertain"}

    await until(uncertain)
    tg.set_faults()
    await patch(gateway, first, status="failed", reason="checked with the recipient")
    await receiver.wait(lambda: len(receiver.by_task(first)) == 2)
    await receiver.wait(lambda: len(receiver.by_task(other)) == 1)
    mine = [r for r in receiver.requests if r.event["data"]["task_id"] == first]
    assert [(r.event["data"]["seq"], r.event["type"]) for r in mine] == [
        (1, "task.uncertain"),
        (1, "task.uncertain"),
        (1, "task.uncertain"),
        (2, "task.resolved"),
    ]
    for r in mine:
        r.verify(secret)


async def test_rotation_signs_with_both_secrets(
    db: Pool, gateway: httpx.AsyncClient, receiver: Receiver, start_worker: Any, tmp_path: Any
) -> None:
    r = await gateway.put(
        "/api/callbacks", json={"client": "shop", "url": receiver.url()}, headers=operator(gateway)
    )
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    first = r.json()["secret"]
    await start_worker(**FAST_CALLBACKS)
    one = await post(gateway, "a", chat_id=1, text="hi")
    await receiver.wait(lambda: len(receiver.by_task(one)) == 1)
    [got] = receiver.by_task(one)
    got.verify(first)
    assert len(got.headers["webhook-signature"].split(" ")) == 1

    r = await gateway.put(
        "/api/callbacks",
        json={"client": "shop", "url": receiver.url(), "rotate": True},
        headers=operator(gateway),
    )
    assert r.status_code == 200, r.text
    second = r.json()["secret"]
    assert second != first
    assert r.json()["previous_secret_until"] is not None
    two = await post(gateway, "b", chat_id=2, text="hi")
    await receiver.wait(lambda: len(receiver.by_task(two)) == 1)
    [got] = receiver.by_task(two)
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    assert got.verify(first) == got.verify(second)  # a receiver with either secret accepts

    # A rotation without a grace period: the old secret stops at once.
    r = await gateway.put(
        "/api/callbacks",
        json={"client": "shop", "url": receiver.url(), "rotate": True, "grace_seconds": 0},
        headers=operator(gateway),
    )
    third = r.json()["secret"]
    three = await post(gateway, "c", chat_id=3, text="hi")
    await receiver.wait(lambda: len(receiver.by_task(three)) == 1)
    [got] = receiver.by_task(three)
    got.verify(third)
    with pytest.raises(WebhookVerificationError):
        got.verify(second)

    # Updating the URL alone shows no secret; reading the endpoint never does.
    r = await gateway.put(
        "/api/callbacks", json={"client": "shop", "url": receiver.url()}, headers=operator(gateway)
    )
    assert "secret" not in r.json()
    r = await gateway.get("/api/callbacks/shop", headers=operator(gateway))
    assert r.status_code == 200
    r = await gateway.put(
        "/api/callbacks", json={"client": "shop", "url": receiver.url()}, headers=writer(gateway)
    )
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "missing_scope"
    await assert_no_secret_shown(gateway, tmp_path, (first, second, third), one)
    audit = await db.fetch("SELECT action, details::text FROM callback_audit ORDER BY id")
    assert [a["action"] for a in audit] == ["created", "rotated", "rotated", "updated"]


async def assert_no_secret_shown(
    gateway: httpx.AsyncClient, tmp_path: Any, secrets: tuple[str, ...], task_id: int
) -> None:
    """Neither the logs, the pages, the audit trail nor the metrics show a secret."""
    shown = [
        (await gateway.get("/api/callbacks/shop", headers=operator(gateway))).text,
        (await gateway.get(f"/api/tasks/{task_id}/callbacks", headers=operator(gateway))).text,
        (await gateway.get("/metrics")).text,
        (await gateway.get("/openapi.json")).text,
    ]
    shown += [p.read_text() for p in tmp_path.glob("*.log")]
    for secret in secrets:
        key = secret.removeprefix("whsec_")
        assert not any(key in text for text in shown)


async def test_callback_url_only_within_the_allowed_hosts(
    db: Pool, gateway: httpx.AsyncClient, receiver: Receiver, start_worker: Any
) -> None:
    body: dict[str, Any] = {"chat_id": 1, "text": "hi", "callback_url": receiver.url("/mine")}
    headers = {**writer(gateway), "Idempotency-Key": "k"}
    # No endpoint for the client yet: refused.
    r = await gateway.post("/api/tasks", json=body, headers=headers)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "callback_url_not_allowed"

    r = await gateway.put(
        "/api/callbacks", json={"client": "shop", "url": receiver.url()}, headers=operator(gateway)
    )
    secret = r.json()["secret"]
    outside = {**body, "callback_url": "http://169.254.169.254/latest/meta-data"}
    r = await gateway.post("/api/tasks", json=outside, headers=headers)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "callback_url_not_allowed"
    assert r.json()["error"]["details"]["allowed_hosts"] == ["127.0.0.1"]
    batch = {"items": [{**outside, "idempotency_key": "b1"}]}
    r = await gateway.post("/api/tasks/batch", json=batch, headers=writer(gateway))
    assert r.json()["results"][0]["error"]["code"] == "callback_url_not_allowed"
    assert await db.fetchval("SELECT count(*) FROM tasks") == 0  # nothing stored

    await start_worker(**FAST_CALLBACKS)
    r = await gateway.post("/api/tasks", json=body, headers=headers)
    assert r.status_code == 201, r.text
    assert r.json()["callback_url"] == receiver.url("/mine")
    await receiver.wait(lambda: len(receiver.accepted) == 1)
    assert receiver.accepted[0].path == "/mine"
    receiver.accepted[0].verify(secret)


async def test_an_endpoint_failing_everything_is_paused_until_resumed(
    db: Pool, gateway: httpx.AsyncClient, receiver: Receiver, start_worker: Any, tmp_path: Any
) -> None:
    secret = make_secret()
    up = False

    async def answer(_: Received) -> int:
        return 200 if up else 503

    receiver.answer = answer
    await start_worker(
        callbacks=callbacks_env(receiver.url(), secret),
        **{**FAST_CALLBACKS, "callback_retry_schedule": "[0" + ", 0.2" * 30 + "]"},
        callback_pause_after_seconds=1,
    )
    task_id = await post(gateway, "p", chat_id=1, text="hi")

    async def paused() -> bool:
        r = await gateway.get("/api/callbacks/shop", headers=operator(gateway))
        return r.json()["paused_at"] is not None

    await until(paused)
    await asyncio.sleep(0.5)  # an attempt in flight at the pause finishes
    count = len(receiver.requests)
    await asyncio.sleep(1)
    assert len(receiver.requests) == count  # paused: nothing is sent
    assert receiver.accepted == []
    [audit] = await db.fetch("SELECT action, actor FROM callback_audit")
    assert audit["action"] == "paused"

    up = True
    r = await gateway.post("/api/callbacks/shop/resume", headers=operator(gateway))
    assert r.status_code == 200, r.text
    assert r.json()["paused_at"] is None
    await receiver.wait(lambda: len(receiver.accepted) == 1)
    receiver.accepted[0].verify(secret)
    r = await gateway.post("/api/callbacks/nobody/resume", headers=operator(gateway))
    assert r.status_code == 404
    await assert_no_secret_shown(gateway, tmp_path, (secret,), task_id)


async def test_a_hanging_endpoint_does_not_hold_up_telegram_deliveries(
    db: Pool,
    gateway: httpx.AsyncClient,
    receiver: Receiver,
    start_worker: Any,
    tg: EmulatorHandle,
) -> None:
    """The sender has its own pool, session and concurrency: with every callback request
    hanging (more of them than its connections), tasks are still delivered."""
    release = asyncio.Event()

    async def hang(_: Received) -> int:
        await release.wait()
        return 200

    receiver.answer = hang
    settings = FAST_CALLBACKS | {"callback_timeout_seconds": 60, "callback_lease_seconds": 90}
    await start_worker(callbacks=callbacks_env(receiver.url(), make_secret()), **settings)
    try:
        tasks = [await post(gateway, f"h{i}", chat_id=100 + i, text="hi") for i in range(60)]

        async def all_delivered() -> bool:
            return all([await status_of(gateway, t) == "delivered" for t in tasks])

        await until(all_delivered, seconds=60)
        assert all(len(tg.messages(100 + i)) == 1 for i in range(60))
        assert receiver.requests  # the sender was at work all along ...
        assert receiver.accepted == []  # ... and not one of its requests was answered
    finally:
        release.set()
