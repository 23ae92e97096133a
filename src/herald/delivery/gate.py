"""A claim's go-ahead to send, so that a worker lost before its send leaves no doubt.

With rate limits on, a worker claims a task (status `sending`, committed) and may then
wait up to `HERALD_RATE_MAX_WAIT_SECONDS` for its reserved slot before the request goes
out. A worker killed in that wait never sent anything, yet without more to go on the
sweeper could only call the expired lease `uncertain`: the operator would be asked about
a message that never left.

So the reservation that grants the slot also sets a gate in Redis, one key per task and
attempt, in the same script (no extra round trip). Whoever deletes it owns the decision:

- the worker deletes it right before the request goes out; only if its DEL removed the
  key does it send. Otherwise (the sweeper took the task back, Redis lost the key, Redis
  is unreachable) it sends nothing and records the attempt as not sent;
- the sweeper, for a `sending` task whose lease expired, deletes it too: if its DEL
  removed the key, no request was ever started and none will be, so the task goes back to
  `pending` instead of `uncertain`.

A DEL is atomic, so at most one of them wins. Losing the key (a flush, a restart, its
expiry) can only make the answer more cautious: the worker does not send, the sweeper
says `uncertain`. Exactly-once never rests on Redis keeping the key.
"""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis


class SendGates:
    def __init__(self, redis: Redis, queue_name: str) -> None:
        self.redis = redis
        self.prefix = f"{queue_name}:gate"

    def key(self, task_id: int, attempt: int) -> str:
        return f"{self.prefix}:{task_id}:{attempt}"

    async def take(self, task_id: int, attempt: int) -> bool:
        """True when this call removed the gate: the caller alone may act on the attempt."""
        return bool(await self.redis.delete(self.key(task_id, attempt)))

    async def take_many(self, attempts: Sequence[tuple[int, int]]) -> list[bool]:
        """`take` for each (task id, attempt), in one round trip."""
        if not attempts:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for task_id, attempt in attempts:
                pipe.delete(self.key(task_id, attempt))
            return [bool(n) for n in await pipe.execute()]
