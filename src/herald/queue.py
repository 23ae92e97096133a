"""Queue messages: "task N may be due", built by `encode` and pushed by `RedisQueue.push`.

Every message goes this one way: the gateway's after-commit pushes (`api/enqueue.py`),
the worker's retry and deferral hints (`delivery/hints.py`) and the sweeper's re-enqueues
(through the hints). Losing a message or sending it twice changes nothing: the worker's
claim is conditional, and the sweeper re-enqueues due tasks no message covers.

A message is taskiq's JSON message for the `herald.deliver` task, its one argument the
task id and its one label the correlation id of the request behind it; the worker's broker
(`herald.broker`, taskiq's default formatter and JSON serializer) reads it back.
"""

from __future__ import annotations

import itertools
import os
import secrets
from collections.abc import Sequence
from typing import Protocol

import orjson
from redis.asyncio import Redis

from herald.keys import queue_key
from herald.logging import CORRELATION_LABEL

DELIVER_TASK_NAME = "herald.deliver"

# A task id and the correlation id of the request behind it (None for the sweeper's).
Hint = tuple[int, str | None]


class TaskQueue(Protocol):
    async def push(self, hints: Sequence[Hint]) -> None:
        """One message per hint, all in one round trip; raise on failure (the sweeper recovers)."""


class RedisQueue:
    """The Redis list the worker's broker pops from."""

    def __init__(self, redis: Redis, queue_name: str) -> None:
        self.redis = redis
        self.name = queue_key(queue_name)

    async def push(self, hints: Sequence[Hint]) -> None:
        """One LPUSH for all of them."""
        if hints:
            await self.redis.lpush(self.name, *[encode(t, c) for t, c in hints])

    async def length(self) -> int:
        return int(await self.redis.llen(self.name))


def encode(task_id: int, correlation_id: str | None) -> bytes:
    """The message `TaskiqMessage(...).model_dump(mode="json")` would be, written by orjson.

    Several times faster than taskiq's formatter (pydantic, then the standard json module),
    which matters for a batch of 500. Message ids are a per-process prefix and a counter
    rather than uuid4: taskiq only logs them.
    """
    return orjson.dumps(
        {
            "task_id": f"{_prefix}{next(_counter):x}",
            "task_name": DELIVER_TASK_NAME,
            "labels": {CORRELATION_LABEL: correlation_id} if correlation_id else {},
            "labels_types": None,
            "args": [task_id],
            "kwargs": {},
        }
    )


def _new_prefix() -> None:
    global _prefix, _counter
    _prefix, _counter = secrets.token_hex(6), itertools.count()


_prefix = ""
_counter = itertools.count()
_new_prefix()
# `herald worker` forks its processes after importing this module: each gets its own ids.
os.register_at_fork(after_in_child=_new_prefix)
