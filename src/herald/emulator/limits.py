"""Telegram's flood limits as GCRA buckets: per chat, per group, per bot in total.

Each scope allows its rate with a burst of one window's worth (1 message per chat, 20 per
group, 30 per bot), so a client that obeys a token bucket or a sliding window of the same
rate never sees a 429. A tolerance (at most 250 ms, half an interval) absorbs the
jitter between a client's decision to send and the request's arrival.
"""

from __future__ import annotations

import math

from herald.emulator.options import LimitConfig

_MAX_SLACK = 0.25


class _Gcra:
    __slots__ = ("interval", "tat", "tolerance")

    def __init__(self, rate_per_second: float, burst: int) -> None:
        self.interval = 1.0 / rate_per_second
        slack = min(_MAX_SLACK, self.interval / 2)
        self.tolerance = (burst - 1) * self.interval + slack
        self.tat: dict[object, float] = {}

    def wait(self, key: object, now: float) -> float:
        """Seconds until `key` may send again; 0.0 when it may send now."""
        tat = self.tat.get(key)
        if tat is None:
            return 0.0
        earliest = tat - self.tolerance
        return earliest - now if earliest > now else 0.0

    def take(self, key: object, now: float) -> None:
        tat = self.tat.get(key, now)
        self.tat[key] = (tat if tat > now else now) + self.interval


class FloodLimits:
    """Checks and consumes all scopes of one send at once: a refused send consumes nothing."""

    def __init__(self, config: LimitConfig) -> None:
        self.config = config
        self._chat = self._bucket(config.per_chat_per_second, 1)
        self._group = self._bucket(config.per_group_per_minute / 60.0, config.per_group_per_minute)
        self._global = self._bucket(config.global_per_second, config.global_per_second)

    @staticmethod
    def _bucket(rate_per_second: float, burst: float) -> _Gcra | None:
        if rate_per_second <= 0:
            return None
        return _Gcra(rate_per_second, max(1, int(burst)))

    def acquire(self, token: str, chat_id: int, now: float) -> int:
        """0 when the send may go (and is counted), else Telegram's `retry_after` in seconds."""
        if not self.config.enabled:
            return 0
        chat_key = (token, chat_id)
        wait = 0.0
        if self._chat is not None:
            wait = self._chat.wait(chat_key, now)
        if self._group is not None and chat_id < 0:
            wait = max(wait, self._group.wait(chat_key, now))
        if self._global is not None:
            wait = max(wait, self._global.wait(token, now))
        if wait > 0.0:
            return max(1, math.ceil(wait))
        if self._chat is not None:
            self._chat.take(chat_key, now)
        if self._group is not None and chat_id < 0:
            self._group.take(chat_key, now)
        if self._global is not None:
            self._global.take(token, now)
        return 0
