"""Delivery fixtures: an asyncpg pool over the session's database, a Redis client, the
emulator, a helper that inserts tasks with the gateway's own insert, and a factory for
in-process deliverers (the worker's pipeline without taskiq around it)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from herald.api.app import create_app
from herald.api.auth import mint_token
from herald.config import Settings
from herald.db import intake
from herald.db.pool import Pool, create_pool
from herald.delivery.hints import Hints
from herald.delivery.pipeline import Deliverer, worker_identity
from herald.delivery.ratelimit import RateLimiter
from herald.emulator.testing import EmulatorHandle
from herald.keys import all_keys_pattern
from herald.queue import RedisQueue
from herald.telegram.sender import TelegramSender, make_bot
from tests.conftest import REDIS_URL, make_settings
from tests.delivery.workers import WorkerProcess
from tests.support.databases import EMPTY_TABLES

InsertTask = Callable[..., Awaitable[int]]


@pytest.fixture(scope="session")
async def pool(database_url: str) -> AsyncIterator[Pool]:
    p = await create_pool(make_settings(database_url), max_size=10)
    yield p
    await p.close()


@pytest.fixture
async def db(pool: Pool) -> Pool:
    """The pool, over empty tables."""
    await pool.execute(EMPTY_TABLES)
    return pool


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL)
    yield client
    keys = [k async for k in client.scan_iter(match=all_keys_pattern(settings.queue_name))]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture
def tg(telegram_emulator: EmulatorHandle) -> EmulatorHandle:
    """The session's one emulator (herald.emulator.pytest_plugin), reset before and after
    the test: no messages, no faults, no limits."""
    return telegram_emulator


async def insert_task(
    pool: Pool,
    chat_id: int | str = 42,
    text: str = "hello",
    *,
    priority: int = 0,
    send_at: datetime | None = None,
    expires_at: datetime | None = None,
    delivery: str = "exactly_once",
    max_attempts: int = 5,
    client: str = "tests",
    key: str | None = None,
) -> int:
    """Insert a pending task with intake's insert (no request validation, so a test may
    store what the API would refuse, such as an `expires_at` already past); its id."""
    key = key or uuid.uuid4().hex
    new = intake.NewTask(
        idempotency_key=key,
        request_hash=hashlib.sha256(key.encode()).digest(),
        chat_id=str(chat_id),
        content={"text": text},
        metadata=None,
        priority=priority,
        delivery=delivery,
        send_at=send_at,
        expires_at=expires_at,
        max_attempts=max_attempts,
    )
    stored = await intake.insert_task(pool, client, new, None, f"client:{client}")
    return stored.task.id


@pytest.fixture
async def make_deliverer(
    settings: Settings, pool: Pool, redis: Redis, tg: EmulatorHandle
) -> AsyncIterator[Callable[..., Awaitable[Deliverer]]]:
    """Build a deliverer against the emulator; closed at the end of the test."""
    made: list[Deliverer] = []

    async def build(**overrides: Any) -> Deliverer:
        values: dict[str, Any] = {
            "telegram_api_url": tg.base_url,
            "queue_name": settings.queue_name,
            "rate_global_per_second": 0,
            "rate_chat_per_second": 0,
            "rate_group_per_minute": 0,
            "telegram_timeout": 2.0,
        }
        values.update(overrides)
        s = make_settings(settings.database_url, **values)
        limiter = RateLimiter(redis, s)
        deliverer = Deliverer(
            settings=s,
            pool=pool,
            sender=TelegramSender(make_bot(s)),
            hints=Hints(RedisQueue(redis, s.queue_name)),
            limiter=limiter if limiter.enabled else None,
            owner=worker_identity(),
        )
        made.append(deliverer)
        return deliverer

    yield build
    for d in made:
        await d.hints.close()
        await d.sender.close()


async def task_row(pool: Pool, task_id: int) -> Any:
    return await pool.fetchrow("SELECT * FROM tasks WHERE id = $1", task_id)


async def events(pool: Pool, task_id: int) -> list[tuple[str | None, str, str | None]]:
    rows = await pool.fetch(
        "SELECT from_status, to_status, reason FROM task_events WHERE task_id = $1 ORDER BY id",
        task_id,
    )
    return [(r["from_status"], r["to_status"], r["reason"]) for r in rows]


async def make_due(pool: Pool, task_id: int) -> None:
    """Skip a backoff or deferral instead of sleeping through it."""
    await pool.execute("UPDATE tasks SET next_attempt_at = now() WHERE id = $1", task_id)


# Short intervals so that leases expire and the sweeper acts within a test's seconds.
FAST = {
    "lease_seconds": 2,
    "sweep_interval_seconds": 0.2,
    "requeue_after_seconds": 1,
    "telegram_timeout": 5,
    "rate_global_per_second": 0,
    "rate_chat_per_second": 0,
    "rate_group_per_minute": 0,
}


StartWorker = Callable[..., Awaitable[WorkerProcess]]


@asynccontextmanager
async def worker_starter(
    settings: Settings, redis: Redis, logs: Path
) -> AsyncIterator[StartWorker]:
    """`start(workers, max_async_tasks, **env)` runs `herald worker` subprocesses with
    `settings`, the intervals short (FAST) and `env` on top; all stop (or are killed) when
    the block ends. The `start_worker` fixtures of the test packages are this."""
    started: list[WorkerProcess] = []

    async def start(workers: int = 1, max_async_tasks: int = 100, **env: Any) -> WorkerProcess:
        log = logs / f"worker-{len(started)}.log"
        proc = WorkerProcess(settings, redis, log, **{**FAST, **env})
        started.append(proc)
        return await proc.start(workers, max_async_tasks)

    try:
        yield start
    finally:
        for proc in started:
            try:
                # Bounded by the worker's wait for in-flight tasks (Telegram timeout + rate wait).
                await proc.stop(within=30)
            finally:
                proc.kill_all()


@pytest.fixture
async def start_worker(
    settings: Settings, redis: Redis, tg: EmulatorHandle, tmp_path: Path
) -> AsyncIterator[StartWorker]:
    """Start `herald worker` subprocesses against this test's database, queue and emulator."""
    s = make_settings(
        settings.database_url, queue_name=settings.queue_name, telegram_api_url=tg.base_url
    )
    async with worker_starter(s, redis, tmp_path) as start:
        yield start


@pytest.fixture
async def enqueue(settings: Settings, redis: Redis) -> Callable[..., Awaitable[None]]:
    """The gateway's push: one queue message per task id."""
    queue = RedisQueue(redis, settings.queue_name)

    async def push(task_ids: Sequence[int], correlation_id: str | None = None) -> None:
        await queue.push([(task_id, correlation_id) for task_id in task_ids])

    return push


@pytest.fixture
async def gateway(settings: Settings, db: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The real app (pushing to this test's queue) behind an in-process client."""
    s = make_settings(settings.database_url, queue_name=settings.queue_name)
    app = create_app(s)
    writer = mint_token(s, "shop", ["tasks:write"])
    operator = mint_token(s, "ops", ["tasks:manage", "tasks:read"])
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://herald") as client:
            client.headers["X-Writer"] = f"Bearer {writer}"
            client.headers["X-Operator"] = f"Bearer {operator}"
            yield client


async def post(client: httpx.AsyncClient, key: str, **body: Any) -> int:
    r = await client.post(
        "/api/tasks",
        json=body,
        headers={"Authorization": client.headers["X-Writer"], "Idempotency-Key": key},
    )
    assert r.status_code == 201, r.text
    task_id: int = r.json()["id"]
    return task_id
