"""Many concurrent calls, one round trip: the hot path's claims and records in batches.

A worker runs up to `--max-async-tasks` deliveries at once. Each would claim with its own
statement and record with another; instead, the calls made while a batch is on its way
wait and go together in the next one. An idle worker sends a batch of one at once (no
timer), a busy one sends fewer, larger statements: PostgreSQL and the kernel's loopback
do far less work per task, which is what the throughput of a process is made of.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

In = TypeVar("In")
Out = TypeVar("Out")


class Coalescer(Generic[In, Out]):
    """`await submit(item)` runs `run_batch([... item ...])` and gives item's result."""

    def __init__(
        self,
        run_batch: Callable[[list[In]], Awaitable[Sequence[Out]]],
        max_batch: int = 64,
        in_flight: int = 4,
        linger: Callable[[], float] | None = None,
    ) -> None:
        self._run_batch = run_batch
        self._max_batch = max_batch
        # How long a batch may wait for more calls before it goes (seconds, asked before
        # each batch; none by default). Where the calls come one at a time but their results
        # are needed only later (claims reserving slots ahead under a rate limit), a few
        # milliseconds make one statement of what would be many.
        self._linger = linger
        # A few batches may be on their way at once: one at a time would make every call
        # wait for the statement before its own, whatever the database's spare capacity.
        self._in_flight = in_flight
        self._pending: list[tuple[In, asyncio.Future[Out]]] = []
        self._active = 0  # flushers started and not yet past their last batch
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, item: In) -> asyncio.Future[Out]:
        """Queue `item` for the next batch; await the answer to get its result. A future,
        not a coroutine: `asyncio.gather` of a few of them makes no task per call."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Out] = loop.create_future()
        self._pending.append((item, future))
        if self._active < self._in_flight:
            self._active += 1
            flusher = loop.create_task(self._flush())
            self._tasks.add(flusher)
            flusher.add_done_callback(self._tasks.discard)
        return future

    async def _flush(self) -> None:
        try:
            await asyncio.sleep(0)  # let the callers woken in the same loop pass join
            while self._pending:
                if self._linger is not None and len(self._pending) < self._max_batch:
                    delay = self._linger()
                    if delay > 0:
                        await asyncio.sleep(delay)
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                try:
                    results = await self._run_batch([item for item, _ in batch])
                except BaseException as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            # No await between the last look at `_pending` and here: a call that comes
            # after sees this flusher gone and starts another.
            self._active -= 1
