"""The gateway application: `create_app(settings, queue=None)`.

Without a queue, the app pushes to the workers' Redis list (`herald.queue.RedisQueue`)
through its own Redis client; it needs no taskiq broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI
from redis.asyncio import Redis

from herald.api.auth import TokenVerifier
from herald.api.correlation import CorrelationIdMiddleware
from herald.api.enqueue import CoalescingEnqueuer
from herald.api.errors import install_error_handlers
from herald.api.openapi import install_openapi
from herald.api.protection import IntakeGuard
from herald.api.routes import callbacks, intake, recipients, system, tasks, telegram
from herald.api.state import GatewayState
from herald.callbacks.endpoints import sync_configured
from herald.config import Settings
from herald.console import install_console
from herald.db.intake import clear_enqueued
from herald.db.pool import create_pool
from herald.metrics import keep_state_gauges_fresh
from herald.queue import RedisQueue, TaskQueue


def create_app(settings: Settings, queue: TaskQueue | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await create_pool(settings)
        await sync_configured(pool, settings)  # HERALD_CALLBACKS into the table
        redis = Redis.from_url(settings.redis_url)
        task_queue = queue if queue is not None else RedisQueue(redis, settings.queue_name)

        async def on_enqueue_failure(task_ids: Sequence[int]) -> None:
            await clear_enqueued(pool, task_ids)

        enqueuer = CoalescingEnqueuer(
            task_queue,
            on_enqueue_failure,
            window=settings.enqueue_window_seconds,
            timeout=settings.enqueue_timeout_seconds,
        )
        guard = IntakeGuard(settings, redis, pool)
        app.state.gateway = GatewayState(
            settings=settings,
            verifier=TokenVerifier(settings),
            pool=pool,
            redis=redis,
            enqueuer=enqueuer,
            guard=guard,
        )
        # As in the worker: what start-up built lives as long as the process; keep it out
        # of the full collections the request path triggers.
        gc.collect()
        gc.freeze()
        watcher = None
        if settings.intake_backlog_limit:
            watcher = asyncio.create_task(guard.watch_backlog())
        # /metrics renders what this task last read: a scrape costs no query.
        gauges = asyncio.create_task(
            keep_state_gauges_fresh(pool, settings.metrics_refresh_seconds)
        )
        try:
            yield
        finally:
            gauges.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await gauges
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            await enqueuer.aclose()
            await redis.aclose()
            await pool.close()

    app = FastAPI(
        title="Herald",
        version="0.1.0",
        description="Telegram notification delivery with exactly-once semantics.",
        lifespan=lifespan,
        # /docs is served by the console package from vendored assets (no CDN); ReDoc,
        # which only exists from a CDN, is off.
        docs_url=None,
        redoc_url=None,
    )
    install_error_handlers(app)
    install_openapi(app)
    app.include_router(intake.router)
    app.include_router(tasks.router)
    app.include_router(callbacks.router)
    app.include_router(recipients.router)
    app.include_router(telegram.router)
    app.include_router(system.router)
    install_console(app)
    app.add_middleware(CorrelationIdMiddleware)
    return app
