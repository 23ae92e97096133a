"""The sweeper: expired leases become uncertain, due tasks nobody covers get a hint."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from redis.asyncio import Redis

from herald.config import Settings
from herald.delivery.claim import Claimed, claim
from herald.delivery.hints import Hints
from herald.delivery.sweeper import Sweeper
from herald.queue import RedisQueue
from tests.conftest import make_settings
from tests.delivery.conftest import events, insert_task, task_row


def sweeper(pool: Any, redis: Redis, settings: Settings, **overrides: Any) -> Sweeper:
    s = make_settings(settings.database_url, queue_name=settings.queue_name, **overrides)
    return Sweeper(pool, Hints(RedisQueue(redis, s.queue_name)), s)


async def queued_ids(redis: Redis, settings: Settings) -> list[int]:
    import json

    raw = await redis.lrange(settings.queue_name, 0, -1)
    return sorted(json.loads(m)["args"][0] for m in raw)


async def test_expired_lease_becomes_uncertain_and_at_least_once_goes_back(
    db: Any, redis: Redis, settings: Settings
) -> None:
    held = await insert_task(db, chat_id=1)
    retried = await insert_task(db, chat_id=2, delivery="at_least_once")
    fresh = await insert_task(db, chat_id=3)
    for _ in range(3):
        assert isinstance(await claim(db, None, "worker:dead", 3600), Claimed)
    await db.execute(
        "UPDATE tasks SET lease_expires_at = now() - interval '1 second' WHERE id <> $1", fresh
    )
    result = await sweeper(db, redis, settings).sweep_once()
    assert result.leases_expired == 2
    assert (await task_row(db, held))["status"] == "uncertain"
    assert (await task_row(db, retried))["status"] == "pending"
    assert (await task_row(db, fresh))["status"] == "sending"
    assert (await events(db, held))[-1] == ("sending", "uncertain", "lease expired")


async def test_requeues_due_tasks_nobody_covers_once(
    db: Any, redis: Redis, settings: Settings
) -> None:
    just_enqueued = await insert_task(db)
    lost = await insert_task(db)
    await db.execute(
        "UPDATE tasks SET enqueued_at = now() - interval '1 minute' WHERE id = $1", lost
    )
    became_due = await insert_task(db, send_at=datetime.now(UTC) - timedelta(seconds=1))
    await db.execute(
        "UPDATE tasks SET enqueued_at = now() - interval '2 seconds' WHERE id = $1", became_due
    )
    not_yet = await insert_task(db, send_at=datetime.now(UTC) + timedelta(hours=1))
    s = sweeper(db, redis, settings, requeue_after_seconds=30)
    assert (await s.sweep_once()).requeued == 2
    assert await queued_ids(redis, settings) == sorted([lost, became_due])
    # Hinted now: the next pass leaves them alone.
    assert (await s.sweep_once()).requeued == 0
    assert just_enqueued not in await queued_ids(redis, settings)
    assert not_yet not in await queued_ids(redis, settings)


async def test_skips_requeue_while_the_queue_is_long(
    db: Any, redis: Redis, settings: Settings
) -> None:
    await insert_task(db, send_at=datetime.now(UTC) - timedelta(seconds=1))
    await db.execute("UPDATE tasks SET enqueued_at = now() - interval '1 minute'")
    await redis.lpush(settings.queue_name, *[b"x"] * 5)
    s = sweeper(db, redis, settings, sweep_max_queue_length=5)
    assert (await s.sweep_once()).requeued == 0
    await redis.delete(settings.queue_name)
    assert (await s.sweep_once()).requeued == 1


async def test_concurrent_sweepers_hint_each_task_once(
    db: Any, redis: Redis, settings: Settings
) -> None:
    ids = [await insert_task(db, chat_id=i) for i in range(200)]
    await db.execute("UPDATE tasks SET enqueued_at = now() - interval '1 minute'")
    sweepers = [sweeper(db, redis, settings, sweep_batch_size=50) for _ in range(4)]
    for _ in range(4):
        await asyncio.gather(*(s.sweep_once() for s in sweepers))
    assert await queued_ids(redis, settings) == ids


async def test_a_backlog_the_queue_covers_is_not_hinted_again(
    db: Any, redis: Redis, settings: Settings
) -> None:
    # A broadcast waiting its turn under the rate limits: 30 due tasks hinted long ago,
    # their 30 messages still queued. Any message claims the best due task, so the queue
    # covers them all; only the tasks the queue falls short of get a hint.
    ids = [await insert_task(db, chat_id=i) for i in range(30)]
    await db.execute("UPDATE tasks SET enqueued_at = now() - interval '1 minute'")
    await redis.lpush(settings.queue_name, *[b"x"] * 30)
    s = sweeper(db, redis, settings, requeue_after_seconds=5)
    assert (await s.sweep_once()).requeued == 0
    await redis.rpop(settings.queue_name, 10)  # ten messages lost
    assert (await s.sweep_once()).requeued == 10
    assert await redis.llen(settings.queue_name) == 30
    await redis.delete(settings.queue_name)  # Redis flushed
    # The twenty not hinted since; the ten hinted just now wait requeue_after_seconds.
    assert (await s.sweep_once()).requeued == 20
    assert await queued_ids(redis, settings) == ids[10:]
    assert (await s.sweep_once()).requeued == 0
