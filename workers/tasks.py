"""Task definitions. The delivery task takes a task id and reloads the rest from PostgreSQL.

Each worker process opens its resources once at start-up (asyncpg pool, Redis client,
aiogram Bot) and runs beside the tasks: the sweeper, its heartbeat (`herald.fleet`), the
watch on its main process (`workers.lifeline`) and the log summary (`workers.summary`).
They are closed on shutdown, after the in-flight tasks have finished and recorded their
outcome.
"""

from __future__ import annotations

import asyncio
import gc
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
from herald.fleet import Heartbeat
from herald.queue import DELIVER_TASK_NAME
from herald.telegram.sender import TelegramSender, make_bot
from workers import lifeline
from workers.broker import broker
from workers.summary import DeliverySummary

log = structlog.get_logger(__name__)


@dataclass
class _Runtime:
    deliverer: Deliverer
    redis: Redis
    stop: asyncio.Event
    heartbeat: Heartbeat
    summary: DeliverySummary
    # The sweeper, the heartbeat, the watch on the main process, the summary.
    background: list[asyncio.Task[None]]


_runtime: _Runtime | None = None


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
    # Signalled with SIGTERM if the main process dies from now on; `lifeline.watch`
    # covers an earlier death and a kernel without prctl.
    lifeline.set_parent_death_signal()
    summary = DeliverySummary(settings.worker_summary_seconds, hints.queue_length)
    heartbeat = Heartbeat(
        redis,
        settings.queue_name,
        deliverer.owner,
        settings.worker_heartbeat_seconds,
        main_pid=lifeline.main_pid(),
        processes=lifeline.processes(),
        load=lambda: (summary.in_flight, summary.handled),
    )
    stop = asyncio.Event()
    background = [
        asyncio.create_task(Sweeper(pool, hints, settings).run(stop)),
        asyncio.create_task(heartbeat.run(stop)),
        asyncio.create_task(lifeline.watch(stop, settings.worker_heartbeat_seconds)),
        asyncio.create_task(summary.run(stop)),
    ]
    _runtime = _Runtime(deliverer, redis, stop, heartbeat, summary, background)
    # Everything allocated so far (modules, pydantic models, pools) lives as long as the
    # process: move it out of the collector's reach, so that the full collections the
    # send path triggers walk only the objects deliveries create.
    gc.collect()
    gc.freeze()
    # The first beat announces the process: tests, `herald dev` and operators see it is up.
    await heartbeat.beat_once()
    log.info("worker_started", owner=deliverer.owner, rate_limits=limiter.enabled)


@broker.on_event(TaskiqEvents.WORKER_SHUTDOWN)
async def _shutdown(state: TaskiqState) -> None:
    global _runtime
    runtime, _runtime = _runtime, None
    if runtime is None:
        return
    runtime.stop.set()
    await asyncio.gather(*runtime.background)
    await runtime.heartbeat.clear()
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
    summary = _runtime.summary
    summary.started()
    result = "error"
    try:
        result = "nothing_due" if await _runtime.deliverer.handle(task_id) is None else "claimed"
    finally:
        summary.finished(result)
