"""`herald poll`: Telegram's updates by getUpdates long polling, for where no public URL
reaches the gateway (a closed network, `herald dev`). The worker does the same with
HERALD_POLL_UPDATES. Whichever runs it, one process per bot polls at a time: the one
holding the bot's poll lock (herald.updates.leader); the others wait for their turn.

The offset lives in PostgreSQL (`telegram_offsets`). For each update fetched, one
transaction stores it (and acts on it, herald.updates.take) and moves the offset past
it; the next getUpdates sends that offset, which is what confirms the update to
Telegram. So:
- killed after getUpdates and before the store: the offset in PostgreSQL still points at
  the update, the next poller asks for it again, and Telegram (which never saw it
  confirmed) hands it out again: nothing lost;
- killed after the store: the offset moved with it in the same commit; the next poller
  confirms it: nothing repeated (and a repeat would be refused by the update's key).

getUpdates is called over aiohttp, not aiogram's typed method: the update is stored as
Telegram wrote it, and aiogram's models would rewrite it (dates as datetimes, defaults).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
from collections.abc import Sequence
from typing import Any

import aiohttp
import orjson
import structlog
from aiogram.client.telegram import TelegramAPIServer
from redis.asyncio import Redis

from herald.config import Settings, get_settings
from herald.db.pool import Pool, create_pool
from herald.db.updates import read_offset
from herald.logging import configure_logging
from herald.queue import RedisQueue, TaskQueue
from herald.telegram.redact import redact
from herald.updates.leader import while_leader
from herald.updates.read import read_update
from herald.updates.take import take_update
from herald.updates.webhook import ALLOWED_UPDATES

log = structlog.get_logger(__name__)

_MAX_BACKOFF = 30.0


class PollError(Exception):
    """getUpdates did not answer with updates: the poller waits and asks again."""

    def __init__(self, message: str, wait: float) -> None:
        super().__init__(message)
        self.wait = wait


class Poller:
    def __init__(self, settings: Settings, pool: Pool, queue: TaskQueue) -> None:
        self.settings = settings
        self.pool = pool
        self.queue = queue
        self.url = TelegramAPIServer.from_base(settings.telegram_api_url).api_url(
            settings.bot_token, "getUpdates"
        )
        self.stored = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until `stop` is set."""
        bot_id = self.settings.bot_id
        offset = await read_offset(self.pool, bot_id)
        log.info("polling", bot_id=bot_id, offset=offset)
        backoff = 1.0
        async with aiohttp.ClientSession() as session:
            while not stop.is_set():
                try:
                    updates = await self._fetch(session, offset)
                except PollError as exc:
                    log.warning("get_updates_failed", error=str(exc))
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), exc.wait or backoff)
                    backoff = min(backoff * 2, _MAX_BACKOFF)
                    continue
                backoff = 1.0
                if updates and self.settings.poll_crash_after_fetch:
                    os._exit(3)  # tests: the crash between getUpdates and the store
                for raw in updates:
                    offset = await self._take(raw, offset)

    async def _fetch(self, session: aiohttp.ClientSession, offset: int) -> list[Any]:
        wait = self.settings.poll_timeout_seconds
        body: dict[str, Any] = {"timeout": wait, "allowed_updates": ALLOWED_UPDATES}
        if offset:
            body["offset"] = offset
        timeout = aiohttp.ClientTimeout(total=wait + self.settings.telegram_timeout)
        try:
            async with session.post(self.url, json=body, timeout=timeout) as response:
                data = await response.json(loads=orjson.loads, content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            text = redact(f"{type(exc).__name__}: {exc}", (self.settings.bot_token,))
            raise PollError(text, 0) from None
        if not isinstance(data, dict) or data.get("ok") is not True:
            return self._refused(data)
        result = data.get("result")
        return result if isinstance(result, list) else []

    def _refused(self, data: Any) -> list[Any]:
        data = data if isinstance(data, dict) else {}
        code, text = data.get("error_code"), str(data.get("description", ""))[:200]
        params = data.get("parameters") if isinstance(data.get("parameters"), dict) else {}
        if code == 409 and "webhook" in text:
            text += " (a webhook is set: `herald webhook delete` before polling)"
        elif code == 409:
            text += " (another process polls this bot, one not holding Herald's poll lock)"
        retry_after = params.get("retry_after")
        wait = float(retry_after) if isinstance(retry_after, int) else 0.0
        raise PollError(f"{code}: {text}", wait)

    async def _take(self, raw: Any, offset: int) -> int:
        update = read_update(raw)
        if update is None or update.update_id < offset:
            log.warning("update_skipped", reason="not an update, or below the offset")
            return offset
        payload = orjson.dumps(raw).decode()
        taken = await take_update(
            self.pool,
            self.settings.bot_id,
            update,
            payload,
            max_attempts=self.settings.max_attempts,
            advance_to=update.update_id + 1,
        )
        if taken.stored:
            self.stored += 1
        if taken.due:
            try:
                await self.queue.push([(task_id, None) for task_id in taken.due])
            except Exception:  # the sweeper finds them
                log.exception("enqueue_failed", task_ids=taken.due)
        log.debug("update_taken", update_id=update.update_id, kind=update.kind)
        return update.update_id + 1


async def poll_updates(settings: Settings, queue: TaskQueue) -> None:
    """Poll until cancelled (the poll lock's holder runs this: herald.updates.leader)."""
    pool = await create_pool(settings, max_size=2)
    try:
        await Poller(settings, pool, queue).run(asyncio.Event())
    finally:
        await pool.close()


async def poll(settings: Settings, stop: asyncio.Event) -> None:
    """`herald poll`: poll whenever it is this process's turn, until `stop`."""
    redis = Redis.from_url(settings.redis_url)
    queue = RedisQueue(redis, settings.queue_name)
    try:
        await while_leader(settings, stop, lambda: poll_updates(settings, queue))
    finally:
        await redis.aclose()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="herald poll",
        description="Take Telegram's updates by getUpdates long polling (no webhook needed).",
    )
    parser.parse_args(argv)
    settings = get_settings()
    configure_logging(settings, service="poll")

    async def run() -> None:
        # A signal cancels the poll wherever it is: mid-getUpdates (nothing to lose) or
        # mid-transaction (rolled back, offset unmoved: the update comes again).
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await poll(settings, asyncio.Event())

    asyncio.run(run())
    return 0
