"""The TaskIQ broker the worker listens on: a Redis list (LPUSH/BRPOP).

`make_broker(settings)` builds it; `workers/broker.py` holds the instance that taskiq's CLI
finds (`workers.broker:broker`). The gateway needs no broker: it pushes through
`herald.queue`, whose messages this broker's formatter reads.

Why a list and not a stream: a queue message only says "task N may be ready"; PostgreSQL
holds the truth and the sweeper re-enqueues every due task that no worker picked up. So
the queue may lose or repeat messages without harm, and the simplest broker wins. The
stream broker's acknowledgements would buy nothing the sweeper does not already give,
and bring its traps (a group created after the first kick, an unbounded stream,
redelivery of a running task after `idle_timeout`, a consumer that ignores SIGTERM,
NOGROUP after a Redis flush). See docs/delivery.md.

Workers pop up to `worker_fetch_batch` messages per round trip (`RPOP key count`, then a
blocking BRPOP when the list is empty): one BRPOP per message caps a worker process near
a thousand messages a second on its own. Messages popped but not started when the worker
stops are pushed back to the consuming end of the list.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from taskiq_redis import ListQueueBroker

from herald.config import Settings
from herald.keys import queue_client_name, queue_key
from herald.logging import CorrelationMiddleware

logger = structlog.get_logger(__name__)
BRPOP_SECONDS = 2


class BatchListQueueBroker(ListQueueBroker):
    """ListQueueBroker whose listener pops many messages per round trip."""

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__(
            url=settings.redis_url,
            queue_name=queue_key(settings.queue_name),
            # Named, so CLIENT LIST shows which connections wait on which queue.
            client_name=queue_client_name(settings.queue_name),
            **kwargs,
        )
        # The worker's start-up builds its resources from these, not from the environment
        # again (`workers/tasks.py`).
        self.settings = settings
        self.fetch_batch = settings.worker_fetch_batch

    async def listen(self) -> AsyncGenerator[bytes, None]:
        buffer: list[Any] = []
        redis = Redis(connection_pool=self.connection_pool)
        try:
            while True:
                try:
                    if not buffer:
                        got: Any = await redis.rpop(self.queue_name, self.fetch_batch)
                        buffer = list(got or [])
                    if not buffer:
                        # Blocks until a message arrives or BRPOP_SECONDS pass; shorter than
                        # redis-py's socket timeout (5 s by default in redis-py 8), which
                        # would otherwise end an idle BRPOP with a TimeoutError.
                        popped = await redis.brpop([self.queue_name], timeout=BRPOP_SECONDS)
                        if popped is None:
                            continue
                        buffer = [popped[1]]
                except (RedisConnectionError, RedisTimeoutError) as exc:
                    # Redis restarting, or this process frozen past the socket timeout (a
                    # SIGSTOP, a paused VM): wait and retry; the sweeper re-enqueues what
                    # was lost. Raised, it would end the process.
                    logger.warning("redis_unavailable", error=str(exc))
                    await asyncio.sleep(0.5)
                    continue
                yield buffer.pop(0)
        finally:
            if buffer:
                # Oldest last, so the next RPOP takes it first.
                await asyncio.shield(redis.rpush(self.queue_name, *reversed(buffer)))
            await redis.aclose()


def make_broker(settings: Settings) -> BatchListQueueBroker:
    return BatchListQueueBroker(settings, max_connection_pool_size=64).with_middlewares(
        CorrelationMiddleware()
    )
