"""Protection under load: per-client intake quotas (429) and backlog backpressure (503).

Quotas are a GCRA per client in Redis (one atomic script), so every gateway process
shares them. A request is let in while its client is within its burst and then charged
its full cost (a batch costs its item count), so a batch larger than the burst still
passes once and the client then waits its debt out; Retry-After says how long. If Redis
does not answer, intake goes on unlimited: PostgreSQL, not Redis, decides what is stored.

Backpressure reads the due backlog (pending tasks whose time has come) once per
`intake_backlog_check_seconds` in the background; requests only read the cached verdict.
The count stops at the limit, so it stays cheap however large the backlog grows.
"""

from __future__ import annotations

import asyncio
import math

import structlog
from redis.asyncio import Redis

from herald.api.errors import ServiceUnavailable, TooManyRequests
from herald.config import Settings
from herald.db.pool import Executor
from herald.db.stats import due_backlog
from herald.keys import quota_key
from herald.metrics import INTAKE_REFUSED

log = structlog.get_logger(__name__)

# KEYS[1]: the client's key. ARGV: emission interval (s per task), tolerance (s), cost.
# Returns 0 when admitted, else the seconds until the client is admitted again.
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
if tat - now > tolerance then
  return tostring(tat - now - tolerance)
end
local new_tat = tat + interval * tonumber(ARGV[3])
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil((new_tat - now) * 1000) + 1000)
return '0'
"""

# A quota check slower than this admits the request (Redis restarting must not stall intake).
QUOTA_TIMEOUT = 0.5


class IntakeGuard:
    def __init__(self, settings: Settings, redis: Redis, pool: Executor) -> None:
        self._quotas = settings.intake_quotas
        self._burst = settings.intake_quota_burst_seconds
        self._queue_name = settings.queue_name
        self._limit = settings.intake_backlog_limit
        self._interval = settings.intake_backlog_check_seconds
        self._retry_after = settings.intake_retry_after_seconds
        self._redis = redis
        self._pool = pool
        self._script = redis.register_script(_GCRA)
        self.backlog: int | None = None  # last count seen (capped at the limit + 1)
        self.backlog_checked = asyncio.Event()  # set after each check (tests wait on it)

    async def admit(self, client: str, cost: int = 1) -> None:
        """Raise 503 while the backlog is over its bound, 429 when `client` is over quota."""
        if self._limit and self.backlog is not None and self.backlog > self._limit:
            INTAKE_REFUSED.labels(reason="backlog").inc()
            raise ServiceUnavailable(
                "intake is paused: the backlog of due tasks is over its bound",
                code="backlog_full",
                details={"limit": self._limit},
                headers={"Retry-After": str(self._retry_after)},
            )
        rate = self._quotas.get(client, self._quotas.get("*"))
        if not rate:
            return
        try:
            answer = self._script(
                keys=[quota_key(self._queue_name, client)], args=[1.0 / rate, self._burst, cost]
            )
            wait = float(await asyncio.wait_for(answer, QUOTA_TIMEOUT))
        except Exception as exc:  # Redis down or slow: admit; PostgreSQL protects itself
            log.warning("quota_unavailable", client=client, error=repr(exc))
            return
        if wait > 0:
            INTAKE_REFUSED.labels(reason="quota_exceeded").inc()
            raise TooManyRequests(
                f"client {client!r} is over its intake quota of {rate:g} tasks/s",
                details={"rate_per_second": rate, "retry_after_seconds": wait},
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )

    async def refresh_backlog(self) -> int:
        count = await due_backlog(self._pool, self._limit + 1)
        self.backlog = count
        self.backlog_checked.set()
        return count

    async def watch_backlog(self) -> None:
        """Refresh the backlog count forever (a background task when backpressure is on)."""
        while True:
            try:
                await self.refresh_backlog()
            except Exception as exc:
                log.warning("backlog_check_failed", error=repr(exc))
            await asyncio.sleep(self._interval)
