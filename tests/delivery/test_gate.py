"""The send gate: a worker lost while waiting for its rate-limit slot leaves no doubt.

A claimed task whose worker never began the send goes back to pending (and is delivered
once), instead of being held as uncertain; a send that may have begun is still uncertain.
"""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

from prometheus_client import REGISTRY
from redis.asyncio import Redis

from herald.config import Settings
from herald.delivery.claim import Claimed, claim
from herald.delivery.gate import SendGates
from herald.delivery.hints import Hints
from herald.delivery.ratelimit import RateLimiter
from herald.delivery.sweeper import Sweeper
from herald.emulator.testing import EmulatorHandle
from herald.states import TaskStatus
from tests.conftest import make_settings
from tests.delivery.conftest import events, insert_task, make_due, task_row
from tests.delivery.workers import wait_for
from workers.broker import make_broker

LIMITS = {"rate_global_per_second": 30, "rate_chat_per_second": 1, "rate_group_per_minute": 20}


def limited(settings: Settings, **overrides: Any) -> Settings:
    return make_settings(
        settings.database_url, queue_name=settings.queue_name, **{**LIMITS, **overrides}
    )


async def expire_leases(db: Any) -> None:
    await db.execute(
        "UPDATE tasks SET lease_expires_at = now() - interval '1 second' WHERE status = 'sending'"
    )


async def test_sweeper_returns_a_claim_whose_send_never_began_and_holds_one_that_may_have(
    db: Any, redis: Redis, settings: Settings
) -> None:
    s = limited(settings)
    limiter = RateLimiter(redis, s)
    waiting = await insert_task(db, chat_id=31)
    sending = await insert_task(db, chat_id=32)
    claims = [await claim(db, limiter, "worker:dead", 3600) for _ in range(2)]
    assert all(isinstance(c, Claimed) and c.gated for c in claims)
    # The worker of `sending` took its gate (the request went out), then died; the
    # worker of `waiting` died still waiting for its slot.
    assert await limiter.gates.take(sending, 1)
    await expire_leases(db)
    gates = SendGates(redis, s.queue_name)
    sweeper = Sweeper(db, Hints(redis, make_broker(s), s.queue_name), gates, s)
    assert (await sweeper.sweep_once()).leases_expired == 2

    assert (await task_row(db, waiting))["status"] == "pending"
    assert (await events(db, waiting))[-1] == (
        "sending",
        "pending",
        "lease expired before the send",
    )
    assert (await task_row(db, sending))["status"] == "uncertain"
    assert (await events(db, sending))[-1] == ("sending", "uncertain", "lease expired")
    # The gate is spent: a late worker of `waiting` may no longer send.
    assert not await gates.take(waiting, 1)


async def test_worker_whose_gate_is_gone_sends_nothing_and_retries(
    db: Any, redis: Redis, settings: Settings, tg: EmulatorHandle, make_deliverer: Any
) -> None:
    # 1 message/s in total: the second task waits about a second for its slot.
    deliverer = await make_deliverer(**{**LIMITS, "rate_global_per_second": 1})
    waited_before = _waited_seconds()
    first = await insert_task(db, chat_id=41)
    second = await insert_task(db, chat_id=42)
    assert await deliverer.handle(first) is TaskStatus.DELIVERED
    waiting = asyncio.create_task(deliverer.handle(second))
    gate = SendGates(redis, settings.queue_name).key(second, 1)
    await wait_for(lambda: _exists(redis, gate), 5, "the second claim's gate")
    await redis.delete(gate)  # as a Redis flush or the sweeper would
    assert await waiting is TaskStatus.PENDING
    assert tg.messages(42) == []
    # The wait for the slot shows in the worker's metrics.
    assert 0.5 < _waited_seconds() - waited_before < 1.5
    row = await task_row(db, second)
    assert (row["status"], row["last_error_code"]) == ("pending", None)
    assert "nothing was sent" in row["last_error"]

    await make_due(db, second)
    await asyncio.sleep(1.1)  # the bot-wide slot of the send that never happened
    assert await deliverer.handle(second) is TaskStatus.DELIVERED
    assert len(tg.messages(42)) == 1
    assert [e[1] for e in await events(db, second)] == [
        "sending",
        "pending",
        "sending",
        "delivered",
    ]


async def test_worker_killed_while_waiting_for_its_slot_loses_nothing_and_doubts_nothing(
    db: Any, tg: EmulatorHandle, start_worker: Any, enqueue: Any
) -> None:
    tg.set_limits(enabled=True, per_chat_per_second=1, global_per_second=30)
    # One message every 2 s in total: of three tasks due at once, two wait 2 and 4 s.
    worker = await start_worker(**{**LIMITS, "rate_global_per_second": 0.5})
    ids = [await insert_task(db, chat_id=50 + i, text=f"t{i}") for i in range(3)]
    await enqueue(ids)
    # The first is delivered and recorded; the other two are claimed, waiting for slots.
    await wait_for(lambda: _counts(db, delivered=1, sending=2), 10, "one sent, two waiting")
    [pid] = await worker.pids()
    os.kill(pid, signal.SIGKILL)
    # taskiq restarts the process; its sweeper finds the two expired leases.
    await tg.wait_messages(3, timeout=40)
    await wait_for(lambda: _counts(db, delivered=3), 10, "all delivered")
    assert sorted(m["text"] for m in tg.messages()) == ["t0", "t1", "t2"]
    assert [r for r in tg.received if r["status"] == 429] == []
    reasons = await db.fetch(
        "SELECT reason FROM task_events WHERE from_status = 'sending'"
        " AND to_status IN ('uncertain', 'pending')"
    )
    assert [r["reason"] for r in reasons] == ["lease expired before the send"] * 2


def _waited_seconds() -> float:
    return REGISTRY.get_sample_value("herald_rate_limit_wait_seconds_sum") or 0.0


async def _exists(redis: Redis, key: str) -> bool:
    return bool(await redis.exists(key))


async def _counts(db: Any, **expected: int) -> bool:
    rows = await db.fetch("SELECT status, count(*) AS n FROM tasks GROUP BY status")
    got = {r["status"]: r["n"] for r in rows}
    return all(got.get(status, 0) == n for status, n in expected.items())
