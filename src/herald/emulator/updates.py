"""The updates a bot gets, as Telegram hands them out: by getUpdates or by webhook.

Each bot has one queue (`BotUpdates`). What people do (the control API: a user sends
`/start <code>` or a message, blocks or unblocks the bot; a group migrates) adds an
update with the next `update_id`. Then, as Telegram does:

- without a webhook, `getUpdates(offset)` confirms every update below `offset` (they are
  gone for good) and returns the rest, waiting up to `timeout` seconds for one when
  there is none (long polling); an update not confirmed comes again. A getUpdates that
  arrives while another one's long poll waits ends that one with 409 `Conflict:
  terminated by other getUpdates request` (two pollers of one bot; counted in
  `conflicts`);
- with a webhook (`setWebhook`), the updates are POSTed to its URL one at a time, in
  order, with `X-Telegram-Bot-Api-Secret-Token` when a secret was set; an update leaves
  the queue when the answer is a 2xx, and is retried (backing off up to 5 s) otherwise;
  `getUpdates` is then a 409 Conflict;
- `allowed_updates` (either way) keeps only the kinds named; Telegram remembers the last
  list it was given; `drop_pending_updates` empties the queue.

Differences from Telegram: the webhook URL may be plain http (Telegram needs https on
port 443, 80, 88 or 8443), and one update is in flight at a time (Telegram's
`max_connections` allows up to 100).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from typing import Any

import aiohttp

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
_MAX_BACKOFF = 5.0
# Telegram's default when allowed_updates was never given: all but these.
_NOT_BY_DEFAULT = frozenset({"chat_member", "message_reaction", "message_reaction_count"})


class BotUpdates:
    """One bot's queue of updates and its webhook."""

    def __init__(self, bot_id: int, keep: int) -> None:
        self.bot_id = bot_id
        self.next_update_id = 1
        self.pending: deque[dict[str, Any]] = deque()
        # The latest updates handed out (by getUpdates or the webhook), for the page.
        self.delivered: deque[dict[str, Any]] = deque(maxlen=keep)
        self.allowed: list[str] | None = None
        self.webhook_url = ""
        self.secret: str | None = None  # never shown: not in the page, info or logs
        self.last_error: str | None = None
        self.last_error_date: int | None = None
        self.webhook_deliveries = 0
        self.polls = 0  # getUpdates calls so far: a newer one ends a waiting long poll
        self.conflicts = 0  # long polls ended that way
        self._handed_up_to = 0  # the highest update_id handed out so far
        self._waiters: list[asyncio.Future[None]] = []
        self._pusher: asyncio.Task[None] | None = None

    # --- what people do ------------------------------------------------------------------

    def add(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        """A new update; dropped (its id used all the same) when allowed_updates excludes it."""
        update = {"update_id": self.next_update_id, kind: body}
        self.next_update_id += 1
        if self._allows(kind):
            self.pending.append(update)
            for waiter in self._waiters:
                if not waiter.done():
                    waiter.set_result(None)
        return update

    def _allows(self, kind: str) -> bool:
        if self.allowed is None or not self.allowed:
            return kind not in _NOT_BY_DEFAULT
        return kind in self.allowed

    # --- getUpdates ----------------------------------------------------------------------

    def confirm(self, offset: int) -> None:
        """Forget every update below `offset`: the client has them."""
        while self.pending and self.pending[0]["update_id"] < offset:
            self.pending.popleft()

    def take(self, limit: int) -> list[dict[str, Any]]:
        updates = [u for _, u in zip(range(limit), self.pending, strict=False)]
        for update in updates:
            self._handed(update)
        return updates

    def _handed(self, update: dict[str, Any]) -> None:
        if update["update_id"] > self._handed_up_to:
            self._handed_up_to = update["update_id"]
            self.delivered.append(update)

    def poll_began(self) -> int:
        """A getUpdates call: a long poll waiting now ends (its `long_poll` says so). The
        number of this call."""
        self.polls += 1
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        return self.polls

    async def long_poll(self, seconds: float, poll: int) -> bool:
        """getUpdates call number `poll` waits for an update; False when a newer call
        ended it (Telegram's 409 for two pollers at once)."""
        await self.wait(seconds)
        if self.polls != poll:
            self.conflicts += 1
            return False
        return True

    async def wait(self, seconds: float) -> None:
        """Until an update is pending or `seconds` pass (a long poll)."""
        if self.pending or seconds <= 0:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter, seconds)
        finally:
            self._waiters.remove(waiter)

    # --- the webhook ---------------------------------------------------------------------

    def set_webhook(self, url: str, secret: str | None, drop_pending: bool) -> None:
        if drop_pending:
            self.pending.clear()
        self.webhook_url = url
        self.secret = secret
        self.last_error = None
        if url and (self._pusher is None or self._pusher.done()):
            self._pusher = asyncio.get_running_loop().create_task(self._push())
        for waiter in self._waiters:  # a long poll in progress ends now
            if not waiter.done():
                waiter.set_result(None)

    def delete_webhook(self, drop_pending: bool) -> None:
        self.set_webhook("", None, drop_pending)

    def info(self) -> dict[str, Any]:
        """getWebhookInfo's answer (never the secret)."""
        info: dict[str, Any] = {
            "url": self.webhook_url,
            "has_custom_certificate": False,
            "pending_update_count": len(self.pending),
        }
        if self.last_error is not None:
            info["last_error_date"] = self.last_error_date
            info["last_error_message"] = self.last_error
        if self.allowed:
            info["allowed_updates"] = list(self.allowed)
        return info

    def close(self) -> None:
        if self._pusher is not None:
            self._pusher.cancel()
            self._pusher = None
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def _push(self) -> None:
        backoff = 0.1
        async with aiohttp.ClientSession() as session:
            while self.webhook_url:
                if not self.pending:
                    await self.wait(3600)
                    continue
                update = self.pending[0]
                url, secret = self.webhook_url, self.secret
                headers = {SECRET_HEADER: secret} if secret else {}
                try:
                    async with session.post(
                        url, json=update, headers=headers, timeout=aiohttp.ClientTimeout(total=10)
                    ) as response:
                        ok = 200 <= response.status < 300
                        error = f"Wrong response from the webhook: {response.status}"
                except (aiohttp.ClientError, TimeoutError) as exc:
                    ok, error = False, f"Connection failed: {type(exc).__name__}"
                if ok:
                    backoff = 0.1
                    self.webhook_deliveries += 1
                    if self.pending and self.pending[0] is update:
                        self.pending.popleft()
                    self._handed(update)
                else:
                    self.last_error, self.last_error_date = error, int(time.time())
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, _MAX_BACKOFF)
