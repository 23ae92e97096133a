"""Task definitions. The delivery task takes a task id and reloads the rest from PostgreSQL.

Each worker process opens its resources once at start-up (asyncpg pool, Redis client,
aiogram Bot) and runs the sweeper beside the tasks; they are closed on shutdown, after
the in-flight tasks have finished and recorded their outcome.
"""

from __future__ import annotations

import asyncio
import gc
import os
from dataclasses import dataclass

import structlog
from redis.asyncio import BlockingConnectionPool, Redis
from taskiq import TaskiqEvents, TaskiqState

from herald.config import get_settings
from herald.db.pool import create_pool
from herald.delivery.hints import Hints
from herald.delivery.pipeline import Deliverer, worker_identity
from herald.delivery.ratelimit import RateLimiter
from herald.delivery.sweeper import Sweeper
from herald.queue import DELIVER_TASK_NAME
from herald.telegram.sender import TelegramSender, make_bot
from workers.broker import broker

log = structlog.get_logger(__name__)


@dataclass
class _Runtime:
    deliverer: Deliverer
    redis: Redis
    stop: asyncio.Event
    sweeper_task: asyncio.Task[None]


_runtime: _Runtime | None = None


def _presence_key(owner: str) -> str:
    return f"{get_settings().queue_name}:workers:{owner}"


@broker.on_event(TaskiqEvents.WORKER_STARTUP)
async def _startup(state: TaskiqState) -> None:
    global _runtime
    settings = get_settings()
    pool = await create_pool(settings)
    # Blocking: with --max-async-tasks deliveries at once, a pool that raises when it runs
    # out (redis-py's default) failed rate-limit calls under a burst; this one waits.
    redis = Redis(
        connection_pool=BlockingConnectionPool.from_url(
            settings.redis_url, max_connections=64, timeout=settings.telegram_timeout
        )
    )
    hints = Hints(redis, broker, settings.queue_name)
    limiter = RateLimiter(redis, settings)
    deliverer = Deliverer(
        settings=settings,
        pool=pool,
        sender=TelegramSender(make_bot(settings)),
        hints=hints,
        limiter=limiter if limiter.enabled else None,
        owner=worker_identity(),
    )
    stop = asyncio.Event()
    sweeper_task = asyncio.create_task(Sweeper(pool, hints, settings).run(stop))
    _runtime = _Runtime(deliverer, redis, stop, sweeper_task)
    # Everything allocated so far (modules, pydantic models, pools) lives as long as the
    # process: move it out of the collector's reach, so that the full collections the
    # send path triggers walk only the objects deliveries create.
    gc.collect()
    gc.freeze()
    # Announce the process: tests and operators see which workers are up.
    await redis.set(_presence_key(deliverer.owner), os.getpid(), ex=3600)
    log.info("worker_started", owner=deliverer.owner, rate_limits=limiter.enabled)


@broker.on_event(TaskiqEvents.WORKER_SHUTDOWN)
async def _shutdown(state: TaskiqState) -> None:
    global _runtime
    runtime, _runtime = _runtime, None
    if runtime is None:
        return
    await runtime.redis.delete(_presence_key(runtime.deliverer.owner))
    runtime.stop.set()
    await runtime.sweeper_task
    await runtime.deliverer.hints.close()
    await runtime.deliverer.sender.close()
    await runtime.deliverer.pool.close()
    await runtime.redis.aclose()
    log.info("worker_stopped", owner=runtime.deliverer.owner)


@broker.task(task_name=DELIVER_TASK_NAME)
async def deliver(task_id: int) -> None:
    """Claim, send and record the best due task (`task_id` is a hint); a no-op if none is due."""
    if _runtime is None:
        raise RuntimeError("the worker's resources are not started")
    await _runtime.deliverer.handle(task_id)
