"""Telegram's limits shared by every worker: one atomic Lua script in Redis.

Each scope (the bot in total, one chat, one group) is a GCRA cell with a burst of one: its
key holds the earliest time the scope may send again (the "theoretical arrival time").
Sends are spaced evenly, so whatever window or bucket Telegram counts with, the rate it
sees never exceeds the configured one.

`reserve()` asks for the earliest time at which every scope of a send is free. When that
time is close enough (each scope has its own horizon), the slots are reserved at once
(the task then waits for its slot in the worker) and the wait is returned. When it is too
far (a chat or group with a backlog), nothing is reserved: the task is deferred in
PostgreSQL and comes back when the scope frees, without holding a worker slot.

A 429 pauses the scope it hit (`pause()`): its cell moves to now + retry_after.
Time comes from Redis (`TIME`), so processes on different hosts agree on it.
Keys live under the queue name, so test runs and deployments sharing a Redis stay apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from herald.config import Settings

# A margin added to the per-chat and per-group spacing: a send may reach Telegram a few
# milliseconds later than its slot (scheduling, network), which shortens the gap to the
# next one. The bot-wide scope needs none: Telegram allows it a burst, and a late send
# never puts more messages into any window than there were slots.
_SCOPE_MARGIN_SECONDS = 0.05

_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local at = now
for i, key in ipairs(KEYS) do
  local tat = tonumber(redis.call('GET', key) or '0')
  if tat > at then at = tat end
  if at - now > tonumber(ARGV[2 * i]) then
    return {0, tostring(at - now), i}
  end
end
for i, key in ipairs(KEYS) do
  local next_at = at + tonumber(ARGV[2 * i - 1])
  redis.call('SET', key, tostring(next_at), 'PX', math.ceil((next_at - now) * 1000) + 1000)
end
return {1, tostring(at - now), 0}
"""

_PAUSE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local until_at = now + tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < until_at then
  redis.call('SET', KEYS[1], tostring(until_at), 'PX', math.ceil(tonumber(ARGV[1]) * 1000) + 1000)
end
return 1
"""


@dataclass(frozen=True, slots=True)
class Scope:
    name: str  # "bot", "chat" or "group": the label of RATE_LIMIT_DEFERRALS
    key: str
    interval: float  # seconds between two sends
    max_wait: float  # how far ahead a slot may be reserved


@dataclass(frozen=True, slots=True)
class Grant:
    """`ok`: slots reserved, send after `wait` seconds. Else defer by `wait`; `scope` blocked."""

    ok: bool
    wait: float
    scope: str | None = None


def is_group(chat_id: str) -> bool:
    """Groups, supergroups and channels have negative ids; `@name` is a channel."""
    return chat_id.startswith(("-", "@"))


class RateLimiter:
    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.redis = redis
        self.prefix = f"{settings.queue_name}:rl"
        self.global_interval = _interval(settings.rate_global_per_second, 1.0)
        self.chat_interval = _interval(settings.rate_chat_per_second, 1.0)
        self.group_interval = _interval(settings.rate_group_per_minute, 60.0)
        self.max_wait = settings.rate_max_wait_seconds
        self.chat_max_wait = min(settings.rate_chat_max_wait_seconds, self.max_wait)
        self._reserve: Any = redis.register_script(_RESERVE)
        self._pause: Any = redis.register_script(_PAUSE)

    @property
    def enabled(self) -> bool:
        return any((self.global_interval, self.chat_interval, self.group_interval))

    def scopes(self, chat_id: str) -> list[Scope]:
        """The scopes of one send, the narrowest first (they block most often)."""
        scopes: list[Scope] = []
        if self.chat_interval:
            scopes.append(
                Scope(
                    "chat",
                    f"{self.prefix}:chat:{chat_id}",
                    self.chat_interval + _SCOPE_MARGIN_SECONDS,
                    self.chat_max_wait,
                )
            )
        if self.group_interval and is_group(chat_id):
            scopes.append(
                Scope(
                    "group",
                    f"{self.prefix}:group:{chat_id}",
                    self.group_interval + _SCOPE_MARGIN_SECONDS,
                    self.chat_max_wait,
                )
            )
        if self.global_interval:
            scopes.append(Scope("bot", f"{self.prefix}:bot", self.global_interval, self.max_wait))
        return scopes

    async def reserve(self, chat_id: str) -> Grant:
        """One round trip: reserve a slot in every scope of `chat_id`, or say how long to wait."""
        scopes = self.scopes(chat_id)
        if not scopes:
            return Grant(ok=True, wait=0.0)
        args: list[float] = []
        for scope in scopes:
            args += [scope.interval, scope.max_wait]
        ok, wait, blocker = await self._reserve(keys=[s.key for s in scopes], args=args)
        wait_s = max(0.0, float(wait))
        if ok:
            return Grant(ok=True, wait=wait_s)
        return Grant(ok=False, wait=wait_s, scope=scopes[int(blocker) - 1].name)

    async def pause(self, chat_id: str, seconds: float) -> None:
        """Telegram said 429 for this chat: no send to its scopes before `seconds` pass.

        Telegram does not say which limit a 429 hit. Flood control is per chat in
        practice, and a bot-wide pause on every chat's 429 would stall all chats, so the
        chat (and its group) is paused; the bot-wide spacing already keeps the total rate.
        """
        for scope in self.scopes(chat_id):
            if scope.name != "bot":
                await self._pause(keys=[scope.key], args=[seconds])


def _interval(limit: float, period: float) -> float:
    """Seconds between two sends for `limit` per `period`; 0 switches the scope off."""
    return period / limit if limit > 0 else 0.0
