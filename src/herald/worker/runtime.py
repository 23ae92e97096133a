"""A worker process's resources, opened once at its start-up and closed at its shutdown.

`WorkerRuntime.start(settings)` opens the asyncpg pool, the Redis client and the aiogram
Bot, and starts beside the deliveries the sweeper, the status callbacks' sender (on a
pool of its own, `herald.callbacks.sender`), the heartbeat (`herald.fleet`), the
watch on the main process (`lifeline`), the log summary (`summary`) and, with
HERALD_POLL_UPDATES, the turn at polling Telegram's updates (`herald.updates.leader`:
one process of all polls, on connections of its own). `close()` runs
after the in-flight deliveries have finished and recorded their outcome.

taskiq keeps the runtime in the broker's `TaskiqState` (`workers/tasks.py`), not in a
module global.
"""

from __future__ import annotations

import asyncio
import gc
from dataclasses import dataclass

import structlog
from redis.asyncio import BlockingConnectionPool, Redis

from herald.callbacks.endpoints import sync_configured
from herald.callbacks.sender import run_sender
from herald.config import Settings
from herald.db.pool import Pool, create_pool
from herald.delivery.hints import Hints
from herald.delivery.pipeline import Deliverer, worker_identity
from herald.delivery.ratelimit import RateLimiter
from herald.delivery.sweeper import Sweeper
from herald.fleet import Heartbeat
from herald.queue import RedisQueue
from herald.telegram.sender import TelegramSender, make_bot
from herald.worker import lifeline
from herald.worker.summary import DeliverySummary

log = structlog.get_logger(__name__)

# The sender's claim, its records in flight and a spare.
_CALLBACK_POOL_SIZE = 3


@dataclass
class WorkerRuntime:
    deliverer: Deliverer
    redis: Redis
    stop: asyncio.Event
    heartbeat: Heartbeat
    summary: DeliverySummary
    # The sweeper, the heartbeat, the watch on the main process, the summary, the
    # callbacks' sender, the poller's turn.
    background: list[asyncio.Task[None]]
    callback_pool: Pool

    @classmethod
    async def start(cls, settings: Settings) -> WorkerRuntime:
        pool = await create_pool(settings)
        # The callbacks' sender has its own few connections: a slow endpoint never makes
        # a delivery wait for one.
        callback_pool = await create_pool(settings, max_size=_CALLBACK_POOL_SIZE)
        await sync_configured(callback_pool, settings)
        # Blocking: with --max-async-tasks deliveries at once, a pool that raises when it
        # runs out (redis-py's default) failed rate-limit calls under a burst; this one waits.
        redis = Redis(
            connection_pool=BlockingConnectionPool.from_url(
                settings.redis_url, max_connections=64, timeout=settings.telegram_timeout
            )
        )
        hints = Hints(RedisQueue(redis, settings.queue_name))
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
            asyncio.create_task(run_sender(callback_pool, settings, deliverer.owner, stop)),
        ]
        if settings.poll_updates:
            # The welcome tasks' hints go where the deliveries' do.
            background.append(asyncio.create_task(_poll_in_turn(settings, hints.queue, stop)))
        runtime = cls(deliverer, redis, stop, heartbeat, summary, background, callback_pool)
        # Everything allocated so far (modules, pydantic models, pools) lives as long as the
        # process: move it out of the collector's reach, so that the full collections the
        # send path triggers walk only the objects deliveries create.
        gc.collect()
        gc.freeze()
        # The first beat announces the process: tests, `herald dev` and operators see it is up.
        await heartbeat.beat_once()
        log.info("worker_started", owner=deliverer.owner, rate_limits=limiter.enabled)
        return runtime

    async def deliver(self, task_id: int) -> None:
        """Claim, send and record the best due task (`task_id` is a hint), if any is due."""
        summary = self.summary
        summary.started()
        result = "error"
        try:
            result = "nothing_due" if await self.deliverer.handle(task_id) is None else "claimed"
        finally:
            summary.finished(result)

    async def close(self) -> None:
        self.stop.set()
        await asyncio.gather(*self.background)
        await self.heartbeat.clear()
        await self.deliverer.hints.close()
        await self.deliverer.sender.close()
        await self.deliverer.pool.close()
        await self.callback_pool.close()
        await self.redis.aclose()
        log.info("worker_stopped", owner=self.deliverer.owner)


async def _poll_in_turn(settings: Settings, queue: RedisQueue, stop: asyncio.Event) -> None:
    """HERALD_POLL_UPDATES: Telegram's updates by getUpdates whenever this process holds
    the bot's poll lock (herald.updates.leader), until `stop`."""
    from herald.updates.leader import while_leader

    async def poll() -> None:
        # Imported on the first turn: with the poller come the intake's table definitions
        # (SQLAlchemy's ORM, for the welcome task), which a worker process that only
        # delivers never loads (tests/delivery/test_cold_start.py).
        from herald.updates.poller import poll_updates

        await poll_updates(settings, queue)

    await while_leader(settings, stop, poll)
