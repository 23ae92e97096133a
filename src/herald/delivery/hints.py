"""Queue messages ("task N may be due") pushed by the worker side: the sweeper and retries.

Same message format as the gateway's `herald.queue.BrokerQueue`, but many ids go in one
LPUSH, and a retry or deferral can schedule its hint for the moment the task is due again.
A scheduled hint lives only in this process: if the process dies first, the sweeper finds
the task (its `enqueued_at` goes stale).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import structlog
from redis.asyncio import Redis
from taskiq import AsyncBroker
from taskiq.message import TaskiqMessage

from herald.queue import DELIVER_TASK_NAME

log = structlog.get_logger(__name__)


class Hints:
    def __init__(self, redis: Redis, broker: AsyncBroker, queue_name: str) -> None:
        self.redis = redis
        self.broker = broker
        self.queue_name = queue_name
        self._timers: set[asyncio.TimerHandle] = set()
        self._pushes: set[asyncio.Task[None]] = set()

    def _payload(self, task_id: int, correlation_id: str | None) -> bytes:
        message = TaskiqMessage(
            task_id=self.broker.id_generator(),
            task_name=DELIVER_TASK_NAME,
            labels={"correlation_id": correlation_id} if correlation_id else {},
            args=[task_id],
            kwargs={},
        )
        return self.broker.formatter.dumps(message).message

    async def push(self, items: Sequence[tuple[int, str | None]]) -> None:
        """One LPUSH for many (task id, correlation id) pairs."""
        if items:
            await self.redis.lpush(self.queue_name, *(self._payload(i, c) for i, c in items))

    async def queue_length(self) -> int:
        return int(await self.redis.llen(self.queue_name))

    def push_later(self, task_id: int, correlation_id: str | None, delay: float) -> None:
        loop = asyncio.get_running_loop()

        async def push() -> None:
            try:
                await self.push([(task_id, correlation_id)])
            except Exception:  # the sweeper re-enqueues the task once its hint is stale
                log.warning("hint_push_failed", task_id=task_id, exc_info=True)

        def fire() -> None:
            self._timers.discard(handle)
            push_task = loop.create_task(push())
            self._pushes.add(push_task)
            push_task.add_done_callback(self._pushes.discard)

        handle = loop.call_later(max(0.0, delay), fire)
        self._timers.add(handle)

    async def close(self) -> None:
        """Drop pending timers (the sweeper re-enqueues those tasks) and finish pushes."""
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        if self._pushes:
            await asyncio.gather(*self._pushes, return_exceptions=True)
