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
from herald.delivery.claim import Claimed, claim, open_gates
from herald.delivery.hints import Hints
from herald.delivery.ratelimit import RateLimiter
from herald.delivery.sweeper import Sweeper
from herald.emulator.testing import EmulatorHandle
from herald.queue import RedisQueue
from herald.states import TaskStatus
from tests.conftest import make_settings
from tests.delivery.conftest import events, insert_task, make_due, task_row
from tests.delivery.workers import wait_for

LIMITS = {"rate_global_per_second": 30, "rate_chat_per_second": 1, "rate_group_per_minute": 20}
# One message a second in total: of tasks claimed at once, the second waits ~1 s, the
# third ~2 s for their slots (within a horizon of 10 s).
SLOW = {**LIMITS, "rate_global_per_second": 1, "rate_max_wait_seconds": 10}


def limited(settings: Settings, **overrides: Any) -> Settings:
    return make_settings(
        settings.database_url, queue_name=settings.queue_name, **{**SLOW, **overrides}
    )


def sweeper(db: Any, redis: Redis, s: Settings) -> Sweeper:
    return Sweeper(db, Hints(RedisQueue(redis, s.queue_name)), s)


async def expire_lease(db: Any, task_id: int) -> None:
    await db.execute(
        "UPDATE tasks SET lease_expires_at = now() - interval '1 second' WHERE id = $1", task_id
    )


async def test_sweeper_returns_a_claim_whose_send_never_began_and_holds_one_that_may_have(
    db: Any, redis: Redis, settings: Settings
) -> None:
    s = limited(settings)
    limiter = RateLimiter(redis, s)
    for chat in (31, 32, 33):
        await insert_task(db, chat_id=chat)
    claims = [await claim(db, limiter, "worker:dead", 3600) for _ in range(3)]
    at_once, waiting, opened = [c for c in claims if isinstance(c, Claimed)]
    # The first slot was free: no wait, no gate. The other two wait, gate closed.
    assert [(c.gated, c.wait > 0.5) for c in (at_once, waiting, opened)] == [
        (False, False),
        (True, True),
        (True, True),
    ]
    # The worker of `opened` began its request, then all three workers died.
    assert await open_gates(db, "worker:dead", [(opened.id, opened.attempt)]) == [True]
    for task in (at_once, waiting, opened):
        await expire_lease(db, task.id)
    assert (await sweeper(db, redis, s).sweep_once()).leases_expired == 3

    assert (await task_row(db, waiting.id))["status"] == "pending"
    assert (await events(db, waiting.id))[-1] == (
        "sending",
        "pending",
        "lease expired before the send",
    )
    for task in (at_once, opened):
        assert (await task_row(db, task.id))["status"] == "uncertain"
        assert (await events(db, task.id))[-1] == ("sending", "uncertain", "lease expired")
    # Too late for the worker of `waiting`: it may no longer send.
    assert await open_gates(db, "worker:dead", [(waiting.id, waiting.attempt)]) == [False]


async def test_worker_whose_claim_was_taken_back_sends_nothing(
    db: Any, redis: Redis, settings: Settings, tg: EmulatorHandle, make_deliverer: Any
) -> None:
    deliverer = await make_deliverer(**SLOW)
    waited_before = _waited_seconds()
    first = await insert_task(db, chat_id=41)
    second = await insert_task(db, chat_id=42)
    assert await deliverer.handle(first) is TaskStatus.DELIVERED
    waiting = asyncio.create_task(deliverer.handle(second))
    await wait_for(lambda: _status_is(db, second, "sending"), 5, "the second claimed")
    # Its worker looks dead (a stalled process): the lease runs out during the wait.
    await expire_lease(db, second)
    assert (await sweeper(db, redis, limited(settings)).sweep_once()).leases_expired == 1
    assert await waiting is TaskStatus.PENDING
    assert tg.messages(42) == []
    row = await task_row(db, second)
    assert row["status"] == "pending"
    assert "nothing was sent" in row["last_error"]
    # The wait for the slot shows in the worker's metrics.
    assert 0.5 < _waited_seconds() - waited_before < 1.5

    await make_due(db, second)
    await asyncio.sleep(1.1)  # the bot-wide slot of the send that never happened
    assert await deliverer.handle(second) is TaskStatus.DELIVERED
    assert len(tg.messages(42)) == 1
    assert [e[1] for e in await events(db, second)] == [
        "pending",
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
    worker = await start_worker(
        **{**LIMITS, "rate_global_per_second": 0.5, "rate_max_wait_seconds": 10}
    )
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


async def _status_is(db: Any, task_id: int, status: str) -> bool:
    return bool((await task_row(db, task_id))["status"] == status)


async def _counts(db: Any, **expected: int) -> bool:
    rows = await db.fetch("SELECT status, count(*) AS n FROM tasks GROUP BY status")
    got = {r["status"]: r["n"] for r in rows}
    return all(got.get(status, 0) == n for status, n in expected.items())
