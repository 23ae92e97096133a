"""What an operator sees of callbacks in the metrics: events sent, retried and failed by
the sender (run here in the test's process, against a real receiver), and each client's
backlog (its oldest undelivered event's age) on the gateway's /metrics."""

from __future__ import annotations

import asyncio
import re

import httpx
from prometheus_client import REGISTRY

from herald.callbacks.sender import run_sender
from herald.config import Settings
from herald.db.pool import Pool
from herald.metrics import refresh_state_gauges
from tests.callbacks.conftest import Received, Receiver, add_endpoint, delivered_task, make_secret
from tests.conftest import make_settings


def sample(name: str) -> float:
    return REGISTRY.get_sample_value(name, {"client": "shop"}) or 0.0


async def test_counters_and_the_backlog(
    db: Pool, settings: Settings, receiver: Receiver, gateway: httpx.AsyncClient
) -> None:
    secret = make_secret()
    await add_endpoint(db, "shop", receiver.url(), secret)
    recovers, never = [await delivered_task(db, "shop") for _ in range(2)]
    await asyncio.sleep(0.2)  # the events have an age

    await refresh_state_gauges(db)
    text = (await gateway.get("/metrics")).text
    oldest = re.search(r'herald_callback_oldest_undelivered_seconds\{client="shop"\} (\S+)', text)
    assert oldest is not None
    assert float(oldest.group(1)) >= 0.2
    assert 'herald_callback_events_waiting{client="shop"} 2.0' in text
    assert 'herald_callback_endpoint_paused{client="shop"} 0.0' in text

    tries: dict[str, int] = {}

    async def answer(got: Received) -> int:
        tries[got.id] = tries.get(got.id, 0) + 1
        if got.event["data"]["task_id"] == never:
            return 500
        return 500 if tries[got.id] == 1 else 200

    receiver.answer = answer
    before = {k: sample(f"herald_callbacks_{k}_total") for k in ("sent", "retried", "failed")}
    s = make_settings(
        settings.database_url, callback_retry_schedule=[0, 0.2], callback_poll_seconds=0.05
    )
    stop = asyncio.Event()
    sender = asyncio.create_task(run_sender(db, s, "worker:tests", stop))
    try:
        for _ in range(200):
            open_ = await db.fetchval(
                "SELECT count(*) FROM callback_events WHERE status IN ('pending', 'sending')"
            )
            if open_ == 0:
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await sender
    after = {k: sample(f"herald_callbacks_{k}_total") for k in ("sent", "retried", "failed")}
    assert {k: after[k] - before[k] for k in after} == {"sent": 1, "retried": 2, "failed": 1}
    for r in receiver.requests:
        r.verify(secret)

    await refresh_state_gauges(db)
    text = (await gateway.get("/metrics")).text
    assert 'herald_callback_oldest_undelivered_seconds{client="shop"} 0.0' in text
    assert 'herald_callback_events_waiting{client="shop"} 0.0' in text
    statuses = await db.fetch("SELECT task_id, status FROM callback_events ORDER BY task_id")
    assert [(r["task_id"], r["status"]) for r in statuses] == [
        (recovers, "delivered"),
        (never, "failed"),
    ]
