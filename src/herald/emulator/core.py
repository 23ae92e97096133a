"""The emulator's state and its request dispatch, free of HTTP.

`Emulator.call(token, method, params)` runs one Bot API request: token check, method
lookup, the fault draw (send methods only), the method itself (Telegram's checks, then the
rate limits, then acceptance) and the request log. Everything runs on one event loop, so a
call is atomic; no locks. What is kept, and why it holds no token: `records.py`.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterable
from typing import Any

from herald.emulator.chats import ChatBook
from herald.emulator.faults import GARBAGE, Fault, FaultInjector, mistyped
from herald.emulator.limits import FloodLimits
from herald.emulator.methods import METHODS, SENDS
from herald.emulator.options import DEFAULT_KEEP, FaultConfig, LimitConfig
from herald.emulator.records import Records, bot_id, kept_params
from herald.emulator.replies import (
    BAD_GATEWAY,
    INTERNAL_ERROR,
    NOT_FOUND,
    PROXY_BAD_GATEWAY,
    UNAUTHORIZED,
    BotApiError,
    Reply,
    ok,
    too_many_requests,
)
from herald.emulator.updates import BotUpdates

_TOKEN = re.compile(r"(\d+):\S+")
# Bots remembered by token; past this, any-token mode answers getMe without remembering,
# so a flood of made-up tokens costs no memory.
_MAX_BOTS = 1024


def _without_secret(params: dict[str, Any]) -> dict[str, Any]:
    """setWebhook's secret_token is a secret: the request log never keeps it."""
    if "secret_token" in params:
        return {**params, "secret_token": "<not kept>"}
    return params


class Emulator:
    def __init__(
        self,
        *,
        tokens: Iterable[str] | None = None,
        limits: LimitConfig | None = None,
        faults: FaultConfig | None = None,
        keep: int = DEFAULT_KEEP,
    ) -> None:
        self.tokens = frozenset(tokens) if tokens is not None else None
        self._keep = keep
        self._initial_limits = limits or LimitConfig()
        self._initial_faults = faults or FaultConfig()
        self._waiters: list[tuple[int, int | None, asyncio.Future[None]]] = []
        self._bots: dict[str, dict[str, Any]] = {}
        self.updates: dict[int, BotUpdates] = {}
        self.reset()

    # --- control -----------------------------------------------------------------------

    def reset(self) -> None:
        """Forget messages, requests, chat marks and limit state; options back to start."""
        self.records = Records(self._keep)
        for box in self.updates.values():
            box.close()
        self.updates = {}
        self.chats = ChatBook()
        self.files: dict[str, dict[str, Any]] = {}
        self._next_message_id: dict[int, int] = {}
        self.set_limits(self._initial_limits)
        self.set_faults(self._initial_faults)

    def set_limits(self, config: LimitConfig) -> None:
        self.flood_limits = FloodLimits(config)

    def set_faults(self, config: FaultConfig) -> None:
        self.faults = FaultInjector(config)

    def stats(self) -> dict[str, int]:
        """Counts only: cheap to ask for after a benchmark of many thousand messages."""
        records = self.records
        return {
            "messages": records.message_count,
            "received": records.request_count,
            "chats": len(records.by_chat),
        }

    @property
    def received(self) -> list[dict[str, Any]]:
        """The latest requests, oldest first."""
        return list(self.records.requests)

    def chat_messages(self, chat_id: int | None = None) -> list[dict[str, Any]]:
        """The latest messages (of one chat, or all), oldest first."""
        return list(self.records.chat_log(chat_id))

    async def wait_messages(
        self,
        count: int,
        timeout: float = 5.0,  # noqa: ASYNC109 - the interface tests use
        chat_id: int | None = None,
    ) -> list[dict[str, Any]]:
        """The messages (of a chat, or all) once there are at least `count` of them."""
        if len(self.records.chat_log(chat_id)) < count:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            waiter = (count, chat_id, future)
            self._waiters.append(waiter)
            try:
                await asyncio.wait_for(future, timeout)
            except TimeoutError:
                got = len(self.records.chat_log(chat_id))
                raise TimeoutError(f"{got} of {count} messages after {timeout} s") from None
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        return self.chat_messages(chat_id)

    def _wake(self) -> None:
        for count, chat_id, future in list(self._waiters):
            if not future.done() and len(self.records.chat_log(chat_id)) >= count:
                future.set_result(None)

    def bot_updates(self, bot: int) -> BotUpdates:
        """The update queue of the bot with id `bot` (made on first use)."""
        box = self.updates.get(bot)
        if box is None:
            box = self.updates[bot] = BotUpdates(bot, self._keep)
        return box

    def known_bot(self) -> int | None:
        """The one bot this emulator deals with, when there is exactly one: the bots with
        an update queue, else the bots whose tokens it has seen."""
        ids = set(self.updates) or {bot["id"] for bot in self._bots.values()}
        return next(iter(ids)) if len(ids) == 1 else None

    def next_message_id(self, chat_id: int) -> int:
        """Message ids count per chat, for the bot's messages and people's alike."""
        message_id = self._next_message_id.get(chat_id, 0) + 1
        self._next_message_id[chat_id] = message_id
        return message_id

    # --- the Bot API -------------------------------------------------------------------

    def bot(self, token: str) -> dict[str, Any] | None:
        """The bot a token belongs to (getMe's User), or None for a token Telegram refuses."""
        bot = self._bots.get(token)
        if bot is None:
            match = _TOKEN.fullmatch(token)
            if match is None or (self.tokens is not None and token not in self.tokens):
                return None
            number = int(match.group(1))
            bot = {
                "id": number,
                "is_bot": True,
                "first_name": "Herald Emulator",
                "username": f"herald_emulator_{number}_bot",
                "can_join_groups": True,
                "can_read_all_group_messages": False,
                "supports_inline_queries": False,
            }
            if len(self._bots) < _MAX_BOTS:
                self._bots[token] = bot
        return bot

    def call(
        self, token: str, method: str, params: dict[str, Any], size: int | None = None
    ) -> tuple[Reply, Fault | None]:
        """Answer one request; `size` is its length when it holds only strings (records.py)."""
        if self.bot(token) is None:
            return UNAUTHORIZED, None  # not recorded: nobody's request, maybe a guess
        known = method.lower() in METHODS
        record: dict[str, Any] = {
            "time": time.time(),
            "bot_id": bot_id(token),
            "method": method,
            "params": kept_params(_without_secret(params), size) if known else {},
        }
        self.records.add_request(record)
        reply, fault = self._dispatch(token, method, params)
        record["status"] = reply.status
        record["outcome"] = reply.outcome
        return reply, fault

    def _dispatch(
        self, token: str, method: str, params: dict[str, Any]
    ) -> tuple[Reply, Fault | None]:
        reply, fault = self._answer(token, method, params)
        if method.lower() in SENDS and self.faults.mistypes():
            reply = mistyped(reply)
        return reply, fault

    def _answer(
        self, token: str, method: str, params: dict[str, Any]
    ) -> tuple[Reply, Fault | None]:
        if self.bot(token) is None:
            return UNAUTHORIZED, None
        name = method.lower()
        handler = METHODS.get(name)
        if handler is None:
            return NOT_FOUND, None
        fault = self.faults.draw() if name in SENDS else None
        if fault is Fault.TOO_MANY_REQUESTS:
            return too_many_requests(self.faults.config.retry_after, fault.value), fault
        if fault is Fault.INTERNAL_ERROR:
            return INTERNAL_ERROR, fault
        if fault is Fault.BAD_GATEWAY:
            return BAD_GATEWAY, fault
        if fault is Fault.PROXY_BAD_GATEWAY:
            return PROXY_BAD_GATEWAY, fault
        try:
            reply = ok(handler(self, token, params))
        except BotApiError as exc:
            reply = exc.reply()
        if fault is Fault.GARBAGE:  # processed, then answered with nonsense
            reply = GARBAGE
        elif fault is not None:  # timeout or drop: processed, then the answer is lost
            reply = Reply(reply.status, reply.body, fault.value)
        return reply, fault

    def check_rate(self, token: str, chat_id: int) -> None:
        retry_after = self.flood_limits.acquire(token, chat_id, time.monotonic())
        if retry_after:
            raise BotApiError(
                429,
                f"Too Many Requests: retry after {retry_after}",
                "rate_limited",
                retry_after=retry_after,
            )

    def accept(
        self, token: str, chat_id: int, method: str, logged: dict[str, Any]
    ) -> tuple[int, int]:
        """Record a delivered message; returns its message_id and date."""
        message_id = self.next_message_id(chat_id)
        now = time.time()
        logged.update(
            chat_id=chat_id, message_id=message_id, method=method, time=now, bot_id=bot_id(token)
        )
        self.records.add_message(chat_id, logged)
        if self._waiters:
            self._wake()
        return message_id, int(now)
