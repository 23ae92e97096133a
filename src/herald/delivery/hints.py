"""Queue messages ("task N may be due") pushed by the worker side: the sweeper and retries.

They go through the one queue (`herald.queue`), as the gateway's do; what the worker side
adds is time: a retry or deferral schedules its hint for the moment the task is due again.
A scheduled hint lives only in this process: if the process dies first, the sweeper finds
the task (its `enqueued_at` goes stale).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import structlog

from herald.queue import Hint, RedisQueue

log = structlog.get_logger(__name__)


class Hints:
    def __init__(self, queue: RedisQueue) -> None:
        self.queue = queue
        self._timers: set[asyncio.TimerHandle] = set()
        self._pushes: set[asyncio.Task[None]] = set()

    async def push(self, hints: Sequence[Hint]) -> None:
        """Now, in one round trip (the sweeper's re-enqueues)."""
        await self.queue.push(hints)

    async def queue_length(self) -> int:
        return await self.queue.length()

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
