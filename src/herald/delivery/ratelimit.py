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

A chat or group has at most one send in flight: its reservation holds the scope for the
longest a send can take (the Telegram timeout), and the answer releases it to one interval
after the answer (`sent()`). So however late a send reaches Telegram (a slow connection,
a busy host), the next one to the same chat keeps its distance; a task refused for a busy
chat looks again after the chat's horizon (half its interval at most).
A 429 pauses the scope it hit (`pause()`): its cell moves to now + retry_after.
Time comes from Redis (`TIME`), so processes on different hosts agree on it.
Keys live under the queue name, so test runs and deployments sharing a Redis stay apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from herald.config import Settings
from herald.keys import rate_limit_key

# A chat's next send is spaced from the answer to its previous one, which came after
# Telegram counted it; this margin only absorbs clock jitter between the processes.
_SCOPE_MARGIN_SECONDS = 0.01

_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local at = now
for i, key in ipairs(KEYS) do
  local tat = tonumber(redis.call('GET', key) or '0')
  if tat > at then at = tat end
  if at - now > tonumber(ARGV[3 * i - 1]) then
    return {0, tostring(at - now), i}
  end
end
for i, key in ipairs(KEYS) do
  local next_at = at + tonumber(ARGV[3 * i - 2]) + tonumber(ARGV[3 * i])
  redis.call('SET', key, tostring(next_at), 'PX', math.ceil((next_at - now) * 1000) + 1000)
end
return {1, tostring(at - now), 0}
"""

# The answer to a send came: its chat (and group) may send again one interval from now.
_SENT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
for i, key in ipairs(KEYS) do
  local next_at = now + tonumber(ARGV[i])
  redis.call('SET', key, tostring(next_at), 'PX', math.ceil(tonumber(ARGV[i]) * 1000) + 1000)
end
return 1
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
    hold: float = 0.0  # kept until the send's answer releases the scope (`sent()`)


@dataclass(frozen=True, slots=True)
class Grant:
    """`ok`: slots reserved, send after `wait` seconds. Else defer by `wait`; `scope` blocked."""

    ok: bool
    wait: float
    scope: str | None = None


def has_group_limit(chat_id: str) -> bool:
    """Telegram's per-group limit applies: groups, supergroups and channels have negative
    ids; `@name` is a channel."""
    return chat_id.startswith(("-", "@"))


class RateLimiter:
    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.redis = redis
        self.queue_name = settings.queue_name
        self.bot_key = rate_limit_key(settings.queue_name, "bot")
        self.global_interval = _interval(settings.rate_global_per_second, 1.0)
        self.chat_interval = _interval(settings.rate_chat_per_second, 1.0)
        self.group_interval = _interval(settings.rate_group_per_minute, 60.0)
        self.max_wait = settings.rate_max_wait_seconds
        self.chat_max_wait = min(settings.rate_chat_max_wait_seconds, self.max_wait)
        # The longest a send can take, plus its wait for a bot-wide slot.
        self.hold = settings.telegram_timeout + 1.0
        self._reserve: Any = redis.register_script(_RESERVE)
        self._pause: Any = redis.register_script(_PAUSE)
        self._sent: Any = redis.register_script(_SENT)

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
                    rate_limit_key(self.queue_name, "chat", chat_id),
                    self.chat_interval + _SCOPE_MARGIN_SECONDS,
                    min(self.chat_max_wait, self.chat_interval / 2),
                    self.hold,
                )
            )
        if self.group_interval and has_group_limit(chat_id):
            scopes.append(
                Scope(
                    "group",
                    rate_limit_key(self.queue_name, "group", chat_id),
                    self.group_interval + _SCOPE_MARGIN_SECONDS,
                    min(self.chat_max_wait, self.group_interval / 2),
                    self.hold,
                )
            )
        if self.global_interval:
            scopes.append(Scope("bot", self.bot_key, self.global_interval, self.max_wait))
        return scopes

    async def reserve(self, chat_id: str) -> Grant:
        """One round trip: reserve a slot in every scope of `chat_id`, or say how long to wait."""
        scopes = self.scopes(chat_id)
        if not scopes:
            return Grant(ok=True, wait=0.0)
        args: list[float] = []
        for scope in scopes:
            args += [scope.interval, scope.max_wait, scope.hold]
        ok, wait, blocker = await self._reserve(keys=[s.key for s in scopes], args=args)
        wait_s = max(0.0, float(wait))
        if ok:
            return Grant(ok=True, wait=wait_s)
        scope = scopes[int(blocker) - 1]
        if scope.hold:
            # Held by a send in flight (or paused): its answer frees the scope one interval
            # later, at a time nobody knows yet. Look again within the scope's horizon, so
            # the first look after the answer reserves the next slot.
            wait_s = min(wait_s, max(scope.max_wait, 0.05))
        return Grant(ok=False, wait=wait_s, scope=scope.name)

    async def sent(self, chat_id: str) -> None:
        """A send to `chat_id` just got its answer: space the chat's next one from now."""
        scopes = [s for s in self.scopes(chat_id) if s.name != "bot"]
        if scopes:
            await self._sent(keys=[s.key for s in scopes], args=[s.interval for s in scopes])

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
