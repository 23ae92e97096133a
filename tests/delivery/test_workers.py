"""Real worker processes (`herald worker`) against PostgreSQL, Redis and the emulator."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from typing import Any

import psutil
from redis.asyncio import Redis

from herald.config import Settings
from herald.emulator.testing import EmulatorHandle
from herald.keys import all_keys_pattern, queue_client_name
from tests.delivery.conftest import events, insert_task, task_row
from tests.delivery.workers import wait_for


async def status_of(db: Any, task_id: int) -> str:
    return str((await task_row(db, task_id))["status"])


async def test_sigterm_finishes_the_inflight_send_and_exits_within_seconds(
    db: Any, tg: EmulatorHandle, start_worker: Any, enqueue: Any
) -> None:
    worker = await start_worker()
    # Telegram takes 1.5 s to answer: the send is in flight when the signal comes.
    tg.set_faults(rate_timeout=1.0, timeout_seconds=1.5)
    task_id = await insert_task(db, chat_id=11)
    await enqueue([task_id])
    await tg.wait_messages(1, timeout=10)
    took = await worker.stop(signal.SIGTERM)
    # The 1.5 s send, taskiq's manager noticing the signal (it polls every second), closing
    # the pool, the Bot and Redis; on a loaded 2-core machine that has taken up to 6.4 s.
    assert took < 10, f"took {took:.1f} s"
    row = await task_row(db, task_id)
    assert row["status"] == "delivered"
    assert row["telegram_message_id"] == tg.messages(11)[0]["message_id"]


async def test_worker_processes_stop_with_their_killed_main_and_record_the_inflight_send(
    db: Any, tg: EmulatorHandle, redis: Redis, settings: Settings, start_worker: Any, enqueue: Any
) -> None:
    worker = await start_worker(workers=2)
    children = await worker.pids()
    assert len(children) == 2
    # Telegram takes 2 s to answer: the send is in flight when the main process dies.
    tg.set_faults(rate_timeout=1.0, timeout_seconds=2)
    task_id = await insert_task(db, chat_id=14)
    await enqueue([task_id])
    await tg.wait_messages(1, timeout=10)
    assert await status_of(db, task_id) == "sending"
    assert worker.proc is not None
    os.kill(worker.proc.pid, signal.SIGKILL)
    try:
        # As on SIGTERM: the 2 s send finishes, is recorded, the process closes its resources.
        await wait_for(lambda: _all_gone(children), 10, "both worker processes gone")
    finally:
        for pid in children:  # the fixture cannot reach orphans: its main is gone
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    row = await task_row(db, task_id)
    assert row["status"] == "delivered"
    assert row["telegram_message_id"] == tg.messages(14)[0]["message_id"]
    assert await worker.pids() == []  # their heartbeats are gone too
    # Nobody takes messages any more.
    tg.set_faults()
    later = await insert_task(db, chat_id=15)
    await enqueue([later])
    await asyncio.sleep(1)
    assert await status_of(db, later) == "pending"
    assert int(await redis.llen(settings.queue_name)) == 1
    assert tg.messages(15) == []


async def test_sigkill_between_claim_and_record_leaves_uncertain_never_resent(
    db: Any, tg: EmulatorHandle, start_worker: Any, enqueue: Any
) -> None:
    worker = await start_worker(lease_seconds=1)
    # Telegram keeps the answer for 30 s: the worker is killed with the send in flight.
    tg.set_faults(rate_timeout=1.0, timeout_seconds=30)
    task_id = await insert_task(db, chat_id=12)
    await enqueue([task_id])
    await tg.wait_messages(1, timeout=10)
    assert await status_of(db, task_id) == "sending"
    [pid] = await worker.pids()
    os.kill(pid, signal.SIGKILL)
    # taskiq restarts the process; its sweeper finds the expired lease.
    await wait_for(lambda: _is(db, task_id, "uncertain"), 20, "uncertain")
    tg.set_faults()
    await enqueue([task_id] * 3)
    await asyncio.sleep(1.5)  # several sweeps and three hints: none may resend it
    assert await status_of(db, task_id) == "uncertain"
    assert len(tg.messages(12)) == 1
    assert [e[1] for e in await events(db, task_id)] == ["pending", "sending", "uncertain"]


async def test_worker_killed_before_it_claimed_another_delivers(
    db: Any, tg: EmulatorHandle, redis: Redis, settings: Settings, start_worker: Any, enqueue: Any
) -> None:
    worker = await start_worker()
    [pid] = await worker.pids()
    # Frozen inside its blocking pop (BRPOP just began: over a second left), Redis hands
    # it the message, and it never claims.
    await wait_for(lambda: _blocked_in_brpop(redis, settings), 10, "a fresh BRPOP")
    os.kill(pid, signal.SIGSTOP)
    task_id = await insert_task(db, chat_id=13)
    await enqueue([task_id])
    await wait_for(lambda: _queue_empty(redis, settings), 5, "the message taken")
    os.kill(pid, signal.SIGKILL)
    await wait_for(lambda: _is(db, task_id, "delivered"), 20, "delivered")
    assert len(tg.messages(13)) == 1
    actors = await db.fetch(
        "SELECT DISTINCT actor FROM task_events WHERE task_id = $1 AND actor LIKE 'worker:%'",
        task_id,
    )
    assert len(actors) == 1
    assert f":{pid}:" not in actors[0]["actor"]


async def test_redis_flushed_while_pending_every_task_delivered_once(
    db: Any, tg: EmulatorHandle, redis: Redis, settings: Settings, start_worker: Any, enqueue: Any
) -> None:
    ids = [await insert_task(db, chat_id=1000 + i) for i in range(60)]
    await enqueue(ids)
    # Everything this deployment keeps in Redis is gone: queue, rate limits.
    keys = [k async for k in redis.scan_iter(match=all_keys_pattern(settings.queue_name))]
    assert keys
    await redis.delete(*keys)
    await start_worker(workers=2)
    await tg.wait_messages(60, timeout=30)
    await wait_for(lambda: _all(db, "delivered", 60), 10, "all delivered")
    assert sorted(m["chat_id"] for m in tg.messages()) == [1000 + i for i in range(60)]


async def test_burst_of_300_with_limits_on_gets_no_429(
    db: Any, tg: EmulatorHandle, start_worker: Any, enqueue: Any
) -> None:
    tg.set_limits(enabled=True, per_chat_per_second=1, global_per_second=30)
    ids = [await insert_task(db, chat_id=2000 + i % 10, text=f"m{i}") for i in range(300)]
    await start_worker(
        workers=3,
        rate_global_per_second=30,
        rate_chat_per_second=1,
        rate_group_per_minute=20,
        lease_seconds=30,
        requeue_after_seconds=5,
    )
    await enqueue(ids)
    await tg.wait_messages(300, timeout=80)
    await wait_for(lambda: _all(db, "delivered", 300), 10, "all delivered")
    assert [r for r in tg.received if r["status"] == 429] == []
    assert sorted(m["text"] for m in tg.messages()) == sorted(f"m{i}" for i in range(300))


async def _is(db: Any, task_id: int, status: str) -> bool:
    return await status_of(db, task_id) == status


async def _all(db: Any, status: str, n: int) -> bool:
    got = await db.fetchval("SELECT count(*) FROM tasks WHERE status = $1", status)
    return bool(got == n)


async def _blocked_in_brpop(redis: Redis, settings: Settings) -> bool:
    name = queue_client_name(settings.queue_name)
    clients = await redis.client_list()
    return any(
        c["name"] == name and c["cmd"] == "brpop" and "b" in c["flags"] and c["idle"] == "0"
        for c in clients
    )


async def _all_gone(pids: list[int]) -> bool:
    def gone(pid: int) -> bool:
        try:
            return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    return all(gone(pid) for pid in pids)


async def _queue_empty(redis: Redis, settings: Settings) -> bool:
    return int(await redis.llen(settings.queue_name)) == 0
