"""Enqueue after commit, coalescing the pushes of concurrent requests.

A request calls `enqueue(ids, correlation_id)` only once its transaction committed. Ids
from requests arriving within a tiny window (and while a push is in flight) go to the
queue together (`herald.queue`): one LPUSH carries all their messages, instead of one
round trip to Redis per task.

A failed push never fails the request (the task is committed): the ids' `enqueued_at`
is cleared (they were never handed over), and the sweeper re-enqueues them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import structlog

from herald.queue import TaskQueue

log = structlog.get_logger(__name__)

OnFailure = Callable[[Sequence[int]], Awaitable[None]]


@dataclass(slots=True)
class _Pending:
    task_ids: Sequence[int]
    correlation_id: str | None
    done: asyncio.Future[bool] = field(repr=False)


class CoalescingEnqueuer:
    def __init__(
        self,
        queue: TaskQueue,
        on_failure: OnFailure,
        *,
        window: float = 0.001,
        timeout: float = 1.0,
    ) -> None:
        self._queue = queue
        self._on_failure = on_failure
        self._window = window
        self._timeout = timeout
        self._buffer: list[_Pending] = []
        self._flusher: asyncio.Task[None] | None = None

    async def enqueue(self, task_ids: Sequence[int], correlation_id: str | None) -> bool:
        """Hand ids to the workers; True if pushed, False if the push failed (logged)."""
        if not task_ids:
            return True
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._buffer.append(_Pending(task_ids, correlation_id, done))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush())
        # The push goes on even if this request is cancelled (its client went away), and a
        # request waits for it at most the push timeout: pushes queued behind a slow one
        # (Redis restarting) must not hold their requests for several timeouts in a row.
        try:
            return await asyncio.wait_for(asyncio.shield(done), self._timeout)
        except TimeoutError:
            return False

    async def aclose(self) -> None:
        """Wait for the pushes already accepted (at shutdown)."""
        if self._flusher is not None:
            await self._flusher

    async def _flush(self) -> None:
        try:
            if self._window > 0:
                await asyncio.sleep(self._window)
            while self._buffer:
                batch, self._buffer = self._buffer, []
                ok = await self._push(batch)
                for item in batch:
                    if not item.done.done():
                        item.done.set_result(ok)
        finally:
            self._flusher = None

    async def _push(self, batch: list[_Pending]) -> bool:
        try:
            hints = [(i, p.correlation_id) for p in batch for i in p.task_ids]
            await asyncio.wait_for(self._queue.push(hints), self._timeout)
            return True
        except Exception as exc:
            ids = [i for p in batch for i in p.task_ids]
            log.warning("enqueue_failed", task_ids=len(ids), error=repr(exc))
            try:
                await self._on_failure(ids)
            except Exception as exc2:  # the sweeper still finds them once enqueued_at is stale
                log.warning("enqueue_failure_not_recorded", error=repr(exc2))
            return False
