"""Telegram's limits shared by every worker: one atomic Lua script in Redis.

Each scope (the bot in total, one chat, one group) is a GCRA cell with a burst of one: its
key holds the earliest time the scope may send again (the "theoretical arrival time").
Sends are spaced evenly, so whatever window or bucket Telegram counts with, the rate it
sees never exceeds the configured one.

`reserve_many()` takes the sends of a claim's batch, in priority order, in one script: for
each, the earliest time at which every scope of the send is free, the later sends seeing
the slots the earlier ones took. When that time is close enough (each scope has its own
horizon), the slots are reserved at once (the task then waits for its slot in the worker)
and the wait is returned. When it is too far for a chat or group (a backlog in one
chat), nothing is reserved: the task is deferred in PostgreSQL and comes back when the
scope frees, without holding a worker slot. When it is too far for the bot as a whole,
nothing is reserved either and the task is left pending for a later pick (`claim.py`,
"the bot-wide horizon"); `admit()` keeps a process from picking more than the bot can
send within the horizon in the first place.

A chat or group has at most one send in flight: its reservation holds the scope for the
longest a send can take (the Telegram timeout), and the answer releases it to one interval
after the answer (`release_many()`, one script for the answers of many chats). So however
late a send reaches Telegram (a slow connection, a busy host), the next one to the same
chat keeps its distance; a task refused for a busy chat looks again after the chat's
horizon (half its interval at most).
A 429 pauses the scope it hit (the same script): its cell moves to now + retry_after.
Time comes from Redis (`TIME`), so processes on different hosts agree on it.
Keys live under the queue name, so test runs and deployments sharing a Redis stay apart.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from herald.config import Settings
from herald.keys import rate_limit_key

# A chat's next send is spaced from the answer to its previous one, which came after
# Telegram counted it; this margin only absorbs clock jitter between the processes.
_SCOPE_MARGIN_SECONDS = 0.01

# Many sends at once, in order (a claim's batch). Its input and its answer are one string
# each: redis-py encodes every argument and parses every element of an answer in Python,
# which cost more than the script itself with an argument per number.
# ARGV[1]: each key's scope kind, one character per key ('1' chat, '2' group, '3' bot).
# ARGV[2]: the sends, ';' between sends, ',' between the key indexes of one send.
# ARGV[3..11]: per kind, its interval, its horizon (max_wait) and its hold.
# The cells are read once and written once per script; the sends of one batch see each
# other's reservations, so two sends to one chat are spaced (the second is refused while
# the first holds the chat). The answer, per send: "1" reserved or "0" refused, the wait,
# the refusing scope's position in the send (0 if none); then how far ahead KEYS[1] (the
# bot's cell when the bot-wide limit is on) is booked.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local kinds = ARGV[1]
local tat = {}
local dirty = {}
local function cell(k)
  local v = tat[k]
  if v == nil then
    v = tonumber(redis.call('GET', KEYS[k]) or '0')
    tat[k] = v
  end
  return v
end
local function param(k, field)
  return tonumber(ARGV[3 + 3 * (tonumber(string.sub(kinds, k, k)) - 1) + field])
end
local out = {}
for send in string.gmatch(ARGV[2], '[^;]+') do
  local ks = {}
  for k in string.gmatch(send, '%d+') do ks[#ks + 1] = tonumber(k) end
  local at = now
  local blocked = 0
  for s, k in ipairs(ks) do
    local v = cell(k)
    if v > at then at = v end
    if at - now > param(k, 1) then
      blocked = s
      break
    end
  end
  if blocked == 0 then
    for _, k in ipairs(ks) do
      tat[k] = at + param(k, 0) + param(k, 2)
      dirty[k] = true
    end
  end
  out[#out + 1] = (blocked == 0 and '1' or '0') .. ' ' .. string.format('%.6f', at - now)
    .. ' ' .. blocked
end
for k in pairs(dirty) do
  redis.call('SET', KEYS[k], string.format('%.6f', tat[k]),
             'PX', math.ceil((tat[k] - now) * 1000) + 1000)
end
local ahead = 0
if #KEYS > 0 then ahead = cell(1) - now end
out[#out + 1] = string.format('%.6f', ahead)
return table.concat(out, ';')
"""

# Answers came (or a 429). ARGV[1]: per key, ';' between keys, its interval and a pause
# (',' between). An interval of 0 or more spaces the scope's next send from now (the
# answer frees it); a negative one leaves the cell as it is. A pause keeps the scope shut
# at least that long (after a 429).
_RELEASE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local i = 0
for interval, pause in string.gmatch(ARGV[1], '([^,;]+),([^;]+)') do
  i = i + 1
  interval = tonumber(interval)
  pause = tonumber(pause)
  local key = KEYS[i]
  local v
  if interval >= 0 then
    v = now + interval
  else
    v = tonumber(redis.call('GET', key) or '0')
  end
  if pause > 0 and v < now + pause then v = now + pause end
  if v > now then
    redis.call('SET', key, string.format('%.6f', v), 'PX', math.ceil((v - now) * 1000) + 1000)
  end
end
return 1
"""

# How far ahead a cell is booked (the bot's, read before a pick near the horizon).
_AHEAD = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
return string.format('%.6f', tonumber(redis.call('GET', KEYS[1]) or '0') - now)
"""

_KINDS = {"chat": "1", "group": "2", "bot": "3"}


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
        # Per kind of scope: its interval, its horizon and its hold.
        self._kinds: dict[str, tuple[float, float, float]] = {
            "chat": (
                self.chat_interval + _SCOPE_MARGIN_SECONDS,
                min(self.chat_max_wait, self.chat_interval / 2),
                self.hold,
            ),
            "group": (
                self.group_interval + _SCOPE_MARGIN_SECONDS,
                min(self.chat_max_wait, self.group_interval / 2),
                self.hold,
            ),
            "bot": (self.global_interval, self.max_wait, 0.0),
        }
        # The same, as the reservation script takes them (in the order of `_KINDS`).
        self._params = [repr(x) for kind in _KINDS for x in self._kinds[kind]]
        self._reserve: Any = redis.register_script(_RESERVE)
        self._release: Any = redis.register_script(_RELEASE)
        self._ahead: Any = redis.register_script(_AHEAD)
        # This process's view of the bot-wide cell (`admit`): until when, on the event
        # loop's clock, its slots are reserved. Every reservation's answer corrects it.
        self._bot_until = 0.0

    @property
    def enabled(self) -> bool:
        return any((self.global_interval, self.chat_interval, self.group_interval))

    def scopes(self, chat_id: str) -> list[Scope]:
        """The scopes of one send, the narrowest first (they block most often)."""
        scopes: list[Scope] = []
        if self.chat_interval:
            key = rate_limit_key(self.queue_name, "chat", chat_id)
            scopes.append(Scope("chat", key, *self._kinds["chat"]))
        if self.group_interval and has_group_limit(chat_id):
            key = rate_limit_key(self.queue_name, "group", chat_id)
            scopes.append(Scope("group", key, *self._kinds["group"]))
        if self.global_interval:
            scopes.append(Scope("bot", self.bot_key, *self._kinds["bot"]))
        return scopes

    async def reserve(self, chat_id: str) -> Grant:
        """One round trip: reserve a slot in every scope of `chat_id`, or say how long to wait."""
        return (await self.reserve_many([chat_id]))[0]

    async def reserve_many(self, chat_ids: Sequence[str]) -> list[Grant]:
        """One round trip for many sends, in order: as `reserve` for each, the later ones
        seeing the slots the earlier ones took (one send per chat in flight)."""
        keys: list[str] = [self.bot_key] if self.global_interval else []
        kinds: list[str] = [_KINDS["bot"]] if self.global_interval else []
        index = {key: i + 1 for i, key in enumerate(keys)}
        sends: list[str] = []
        per_send: list[list[Scope]] = []
        for chat_id in chat_ids:
            scopes = self.scopes(chat_id)
            per_send.append(scopes)
            for scope in scopes:
                if scope.key not in index:
                    keys.append(scope.key)
                    kinds.append(_KINDS[scope.name])
                    index[scope.key] = len(keys)
            sends.append(",".join(str(index[scope.key]) for scope in scopes))
        if not keys:
            return [Grant(ok=True, wait=0.0) for _ in chat_ids]
        answer = await self._reserve(
            keys=keys, args=["".join(kinds), ";".join(sends), *self._params]
        )
        *granted, ahead = (answer.decode() if isinstance(answer, bytes) else answer).split(";")
        if self.global_interval:
            self._bot_until = _now() + float(ahead)
        grants = []
        for scopes, one in zip(per_send, granted, strict=True):
            if not scopes:
                grants.append(Grant(ok=True, wait=0.0))
                continue
            ok, wait, blocker = one.split(" ")
            grants.append(self._grant(scopes, ok == "1", float(wait), int(blocker)))
        return grants

    @staticmethod
    def _grant(scopes: list[Scope], ok: bool, wait: float, blocker: int) -> Grant:
        wait_s = max(0.0, wait)
        if ok:
            return Grant(ok=True, wait=wait_s)
        scope = scopes[blocker - 1]
        if scope.hold:
            # Held by a send in flight (or paused): its answer frees the scope one interval
            # later, at a time nobody knows yet. Look again within the scope's horizon, so
            # the first look after the answer reserves the next slot.
            wait_s = min(wait_s, max(scope.max_wait, 0.05))
        return Grant(ok=False, wait=wait_s, scope=scope.name)

    def admit(self, n: int) -> int:
        """How many of `n` claims this process may make now: as many as the bot-wide slots
        still free within the horizon (`max_wait`), as it last saw them. The claims taken
        are counted at once, so the next call sees them; the script has the last word (a
        process does not see the other processes' reservations until its next answer)."""
        if not self.global_interval:
            return n
        now = _now()
        ahead = max(0.0, self._bot_until - now)
        free = 0
        if ahead <= self.max_wait:
            free = int((self.max_wait - ahead) / self.global_interval) + 1
        taken = min(n, free)
        self._bot_until = now + ahead + taken * self.global_interval
        return taken

    def booked_ahead(self) -> float:
        """How far ahead the bot's slots are reserved, as this process last saw them (0
        when the bot-wide limit is off or not binding)."""
        return max(0.0, self._bot_until - _now()) if self.global_interval else 0.0

    async def look(self) -> None:
        """Near the horizon, read the bot's cell before `admit` (one round trip): the other
        processes reserve too, and a pick the script then refuses for the bot costs a
        transaction. Far from it (the bot-wide limit not binding), nothing is read."""
        if self.booked_ahead() > self.max_wait / 2:
            ahead = await self._ahead(keys=[self.bot_key])
            self._bot_until = _now() + float(ahead)

    def unused(self, n: int) -> None:
        """`n` admitted claims found no task: their bot-wide slots are free again."""
        if self.global_interval:
            self._bot_until -= n * self.global_interval

    def later(self, k: int, ahead: float | None = None) -> float:
        """When the k-th (from 0) of the claims refused for the bot-wide horizon looks
        again: once k + 1 slots are free within it, so the waiting claims come back one
        slot apart, not all at once. `ahead`: the bot's cell as the script saw it."""
        if ahead is None:
            ahead = self.booked_ahead()
        return max(0.0, ahead - self.max_wait) + (k + 1) * self.global_interval

    async def release_many(self, answers: Sequence[tuple[str, float | None]]) -> None:
        """Sends to these chats got their answers (chat id, the 429's retry_after or None):
        one round trip frees each chat (and group) one interval from now, paused for
        `retry_after` after a 429.

        Telegram does not say which limit a 429 hit. Flood control is per chat in
        practice, and a bot-wide pause on every chat's 429 would stall all chats, so the
        chat (and its group) is paused; the bot-wide spacing already keeps the total rate.
        """
        keys: list[str] = []
        cells: list[str] = []
        for chat_id, retry_after in answers:
            for scope in self.scopes(chat_id):
                if scope.name != "bot":
                    keys.append(scope.key)
                    cells.append(f"{scope.interval!r},{float(retry_after or 0.0)!r}")
        if keys:
            await self._release(keys=keys, args=[";".join(cells)])

    async def sent(self, chat_id: str) -> None:
        """A send to `chat_id` just got its answer: space the chat's next one from now."""
        await self.release_many([(chat_id, None)])

    async def pause(self, chat_id: str, seconds: float) -> None:
        """Telegram said 429 for this chat: no send to its scopes before `seconds` pass."""
        keys = [s.key for s in self.scopes(chat_id) if s.name != "bot"]
        if keys:
            await self._release(keys=keys, args=[";".join(f"-1,{seconds!r}" for _ in keys)])


def _now() -> float:
    return time.monotonic()


def _interval(limit: float, period: float) -> float:
    """Seconds between two sends for `limit` per `period`; 0 switches the scope off."""
    return period / limit if limit > 0 else 0.0
