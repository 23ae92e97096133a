"""End to end: the gateway's API, its enqueue into Redis, a `herald worker` process, the
emulator. Operator transitions acting on delivery."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from herald.emulator.testing import EmulatorHandle
from tests.delivery.conftest import events, post, task_row
from tests.delivery.workers import wait_for


async def patch(client: httpx.AsyncClient, task_id: int, **body: Any) -> httpx.Response:
    return await client.patch(
        f"/api/tasks/{task_id}", json=body, headers={"Authorization": client.headers["X-Operator"]}
    )


async def is_status(db: Any, task_id: int, status: str) -> bool:
    return bool((await task_row(db, task_id))["status"] == status)


async def test_created_through_the_gateway_delivered_once_and_operators_act_on_delivery(
    db: Any, tg: EmulatorHandle, gateway: httpx.AsyncClient, start_worker: Any
) -> None:
    await start_worker(lease_seconds=1)

    # Created through the API: reaches Telegram once, with its message_id and audit trail.
    task_id = await post(gateway, "order-1", chat_id=4242, text="Your order has shipped")
    await wait_for(lambda: is_status(db, task_id, "delivered"), 20, "delivered")
    [sent] = tg.messages(4242)
    assert sent["text"] == "Your order has shipped"
    row = await task_row(db, task_id)
    assert row["telegram_message_id"] == sent["message_id"]
    trail = await events(db, task_id)
    assert [(e[0], e[1]) for e in trail] == [
        (None, "pending"),
        ("pending", "sending"),
        ("sending", "delivered"),
    ]
    r = await gateway.get(
        f"/api/tasks/{task_id}/events", headers={"Authorization": gateway.headers["X-Writer"]}
    )
    assert [e["to_status"] for e in r.json()["items"]] == ["pending", "sending", "delivered"]

    # Cancel stops a pending task: scheduled a second ahead, cancelled, never sent.
    later = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    cancelled = await post(gateway, "order-2", chat_id=4343, text="x", send_at=later)
    assert (await patch(gateway, cancelled, status="cancelled")).status_code == 200

    # Resend enqueues again: a task failed because the user blocked the bot.
    tg.block_chat(4444)
    blocked = await post(gateway, "order-3", chat_id=4444, text="again")
    await wait_for(lambda: is_status(db, blocked, "failed"), 20, "failed")
    tg.emulator.chats.blocked.discard(4444)
    assert (await patch(gateway, blocked, status="pending")).status_code == 200
    await wait_for(lambda: is_status(db, blocked, "delivered"), 20, "delivered after resend")
    assert [m["text"] for m in tg.messages(4444)] == ["again"]

    # An uncertain task is resolved by an operator, and stays resolved.
    tg.set_faults(rate_500=1.0)
    doubtful = await post(gateway, "order-4", chat_id=4545, text="?")
    await wait_for(lambda: is_status(db, doubtful, "uncertain"), 20, "uncertain")
    tg.set_faults()
    r = await patch(gateway, doubtful, status="failed", reason="checked with the user")
    assert r.status_code == 200
    assert await is_status(db, doubtful, "failed")

    # Nothing to await for "never sent": let send_at pass and the sweeper run a few times.
    await asyncio.sleep(
        max(0.0, (datetime.fromisoformat(later) - datetime.now(UTC)).total_seconds())
    )
    await asyncio.sleep(1.0)
    assert await is_status(db, cancelled, "cancelled")
    assert tg.messages(4343) == []
    assert tg.messages(4545) == []
