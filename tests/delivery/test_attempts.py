"""Attempts mean what the docs say: a 429 never uses up a task's max_attempts (issue 12,
item 5). `attempt` counts claims (the fence of each record); `failures` counts the attempts
that failed, and max_attempts bounds that.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from herald.config import Settings
from herald.delivery.claim import Claimed, claim
from herald.delivery.hints import Hints
from herald.delivery.sweeper import Sweeper
from herald.emulator.testing import EmulatorHandle
from herald.queue import RedisQueue
from herald.states import TaskStatus
from tests.delivery.conftest import events, insert_task, make_due, post, task_row
from tests.support.processes import free_port


async def test_four_429s_then_connection_errors_get_all_max_attempts(
    db: Any, tg: EmulatorHandle, make_deliverer: Any
) -> None:
    task_id = await insert_task(db, chat_id=9, max_attempts=5)
    tg.set_faults(rate_429=1.0, retry_after=1)
    throttled = await make_deliverer()
    for _ in range(4):
        assert await throttled.handle(task_id) is TaskStatus.PENDING
        await make_due(db, task_id)  # instead of sleeping through retry_after
    assert [r["outcome"] for r in tg.received] == ["fault_429"] * 4
    row = await task_row(db, task_id)
    assert (row["attempt"], row["failures"]) == (4, 0)

    down = await make_deliverer(telegram_api_url=f"http://127.0.0.1:{free_port()}")
    for failures in range(1, 5):
        assert await down.handle(task_id) is TaskStatus.PENDING
        row = await task_row(db, task_id)
        assert (row["status"], row["failures"]) == ("pending", failures)
        await make_due(db, task_id)
    assert await down.handle(task_id) is TaskStatus.FAILED
    row = await task_row(db, task_id)
    assert (row["attempt"], row["failures"]) == (9, 5)
    assert "ClientConnectorError" in row["last_error"]
    trail = await events(db, task_id)
    assert [e[2] for e in trail].count("claimed") == 9
    assert trail[-1] == ("sending", "failed", "attempts exhausted")


async def test_at_least_once_429s_between_server_errors_do_not_count(
    db: Any, tg: EmulatorHandle, make_deliverer: Any
) -> None:
    # An at-least-once task retries its ambiguous answers, each one a failure.
    task_id = await insert_task(db, chat_id=10, max_attempts=3, delivery="at_least_once")
    deliverer = await make_deliverer()
    faults = [{"rate_429": 1.0}, {"rate_500": 1.0}] * 3
    for n, fault in enumerate(faults[:-1]):
        tg.set_faults(**fault, retry_after=1)
        assert await deliverer.handle(task_id) is TaskStatus.PENDING, n
        await make_due(db, task_id)
    tg.set_faults(rate_500=1.0)
    assert await deliverer.handle(task_id) is TaskStatus.FAILED
    outcomes = [r["outcome"] for r in tg.received]
    assert (outcomes.count("fault_429"), outcomes.count("fault_500")) == (3, 3)
    row = await task_row(db, task_id)
    assert (row["attempt"], row["failures"]) == (6, 3)
    assert tg.messages() == []


async def test_a_resend_starts_the_failures_over_and_the_api_shows_both_counters(
    db: Any, tg: EmulatorHandle, gateway: Any, make_deliverer: Any
) -> None:
    task_id = await post(gateway, "retried", chat_id=11, text="x", max_attempts=2)
    down = await make_deliverer(telegram_api_url=f"http://127.0.0.1:{free_port()}")
    tg.set_faults(rate_429=1.0, retry_after=1)
    up = await make_deliverer()
    assert await up.handle(task_id) is TaskStatus.PENDING
    for status in (TaskStatus.PENDING, TaskStatus.FAILED):
        await make_due(db, task_id)
        assert await down.handle(task_id) is status
    writer = {"Authorization": gateway.headers["X-Writer"]}
    shown = (await gateway.get(f"/api/tasks/{task_id}", headers=writer)).json()
    assert (shown["status"], shown["attempt"], shown["failures"]) == ("failed", 3, 2)

    operator = {"Authorization": gateway.headers["X-Operator"]}
    resent = await gateway.patch(
        f"/api/tasks/{task_id}", json={"status": "pending"}, headers=operator
    )
    assert resent.status_code == 200
    assert (resent.json()["attempt"], resent.json()["failures"]) == (3, 0)
    # Two more real failures before it fails again, not one.
    await make_due(db, task_id)
    assert await down.handle(task_id) is TaskStatus.PENDING
    await make_due(db, task_id)
    assert await down.handle(task_id) is TaskStatus.FAILED


async def test_the_sweeper_counts_an_at_least_once_lost_send_as_a_failure(
    db: Any, redis: Redis, settings: Settings
) -> None:
    lost = await insert_task(db, chat_id=12, delivery="at_least_once", max_attempts=2)
    never_sent = await insert_task(db, chat_id=13, delivery="at_least_once", max_attempts=2)
    sweeper = Sweeper(db, Hints(RedisQueue(redis, settings.queue_name)), settings)
    for expected in ("pending", "failed"):
        assert isinstance(await claim(db, None, "worker:dead", 3600), Claimed)
        assert isinstance(await claim(db, None, "worker:dead", 3600), Claimed)
        # The second claim was waiting for its rate-limit slot: its send gate never opened.
        await db.execute("UPDATE tasks SET send_started = false WHERE id = $1", never_sent)
        await db.execute("UPDATE tasks SET lease_expires_at = now() - interval '1 second'")
        assert (await sweeper.sweep_once()).leases_expired == 2
        assert (await task_row(db, lost))["status"] == expected
    assert (await task_row(db, lost))["failures"] == 2
    row = await task_row(db, never_sent)
    assert (row["status"], row["attempt"], row["failures"]) == ("pending", 2, 0)
