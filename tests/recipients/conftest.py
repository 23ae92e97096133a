"""Recipients end to end: the real gateway served over HTTP (so the emulator can call its
webhook), the emulator playing the people, and the worker's pipeline in process.

`herald` is the gateway at a free port with a webhook secret; `herald.deliver()` runs the
worker's pipeline (claim, send through aiogram to the emulator, record) until nothing is
due; `herald.bind(user)` takes a person through the deep link to a bound recipient.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from redis.asyncio import Redis

from herald.api.app import create_app
from herald.api.auth import mint_token
from herald.config import Settings
from herald.db.pool import Pool
from herald.delivery.hints import Hints
from herald.delivery.pipeline import Deliverer, worker_identity
from herald.devprocess import free_port
from herald.emulator.testing import EmulatorHandle
from herald.keys import all_keys_pattern
from herald.queue import RedisQueue
from herald.telegram.sender import TelegramSender, make_bot
from herald.updates.webhook import WEBHOOK_PATH, set_webhook
from tests.callbacks.conftest import receiver  # noqa: F401 - a producer's endpoint
from tests.conftest import REDIS_URL, make_settings
from tests.delivery.conftest import (  # noqa: F401 - the same fixtures
    StartWorker,
    db,
    pool,
    tg,
    worker_starter,
)

BOT_ID = 123456  # make_settings' bot token is 123456:TEST-token
SECRET = "s" * 40


async def eventually(check: Callable[[], Awaitable[Any]], within: float = 10.0) -> Any:
    """`check()`'s first truthy value, asked every 50 ms; AssertionError after `within` s."""
    deadline = time.monotonic() + within
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still {value!r} after {within} s")
        await asyncio.sleep(0.05)


@dataclass
class Herald:
    base_url: str
    client: httpx.AsyncClient
    settings: Settings
    pool: Pool
    deliverer: Deliverer
    tg: EmulatorHandle
    tokens: dict[str, str]  # "other": another producer's, "reader": an operator's

    @property
    def webhook_url(self) -> str:
        return self.base_url + WEBHOOK_PATH

    async def set_webhook(self, secret: str = SECRET) -> None:
        """`herald webhook set --url ...`, as the command does it (aiogram's setWebhook)."""
        await set_webhook(
            self.settings.model_copy(update={"webhook_secret": secret}), self.webhook_url
        )

    async def post_task(self, key: str, **body: Any) -> httpx.Response:
        return await self.client.post("/api/tasks", json=body, headers={"Idempotency-Key": key})

    async def task(self, task_id: int) -> dict[str, Any]:
        response = await self.client.get(f"/api/tasks/{task_id}")
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()
        return data

    async def recipient(self, external_id: str) -> dict[str, Any] | None:
        response = await self.client.get(f"/api/recipients/{external_id}")
        if response.status_code == 404:
            return None
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()
        return data

    async def deliver(self) -> int:
        """Run the worker's pipeline until nothing is due; how many tasks it claimed."""
        claimed = 0
        while await self.deliverer.handle(0) is not None:
            claimed += 1
        return claimed

    async def count(self, table: str, where: str = "true") -> int:
        value: int = await self.pool.fetchval(f"SELECT count(*) FROM {table} WHERE {where}")
        return value

    async def link(self, external_id: str, **body: Any) -> str:
        response = await self.client.post(f"/api/recipients/{external_id}/link", json=body or None)
        assert response.status_code == 201, response.text
        code: str = response.json()["code"]
        return code

    async def bind(self, external_id: str, user_id: int) -> dict[str, Any]:
        """Link, /start with the code (the emulator calls the webhook), welcome delivered."""
        code = await self.link(external_id)
        self.tg.user_start(user_id, code, bot_id=BOT_ID)
        bound = await eventually(lambda: self.recipient(external_id))
        await self.deliver()
        return dict(bound)

    async def state(self, external_id: str) -> str | None:
        found = await self.recipient(external_id)
        return None if found is None else str(found["state"])

    def sends_to(self, chat_id: int) -> int:
        """Send requests the emulator received for `chat_id` (accepted or refused)."""
        return sum(
            1
            for r in self.tg.received
            if r["method"].lower() == "sendmessage"
            and str(r["params"].get("chat_id")) == str(chat_id)
        )


@pytest.fixture
async def start_worker(herald: Herald, tmp_path: Path) -> AsyncIterator[StartWorker]:
    """Start `herald worker` processes with the gateway's settings (its database, queue
    and emulator), `env` on top, the intervals short (tests.delivery.conftest.FAST)."""
    redis = Redis.from_url(REDIS_URL)
    try:
        async with worker_starter(herald.settings, redis, tmp_path) as start:
            yield start
    finally:
        await redis.aclose()


@pytest.fixture
async def herald(
    database_url: str,
    db: Pool,  # noqa: F811 - the fixture imported above
    tg: EmulatorHandle,  # noqa: F811
) -> AsyncIterator[Herald]:
    settings = make_settings(
        database_url,
        telegram_api_url=tg.base_url,
        webhook_secret=SECRET,
        rate_global_per_second=0,
        rate_chat_per_second=0,
        rate_group_per_minute=0,
        telegram_timeout=5.0,
        recipient_welcome={"shop": "Order news from {client} will come here.", "*": "Hello"},
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=port, log_level="warning", ws="none",
            lifespan="on",
        )
    )  # fmt: skip
    serving = asyncio.create_task(server.serve())
    await eventually(lambda: asyncio.sleep(0, server.started))
    redis = Redis.from_url(REDIS_URL)
    deliverer = Deliverer(
        settings=settings,
        pool=db,
        sender=TelegramSender(make_bot(settings)),
        hints=Hints(RedisQueue(redis, settings.queue_name)),
        limiter=None,
        owner=worker_identity(),
    )
    token = mint_token(settings, "shop", ["tasks:write"])
    # Another producer's token, and an operator's.
    tokens = {
        "other": mint_token(settings, "other", ["tasks:write"]),
        "reader": mint_token(settings, "ops", ["tasks:read"]),
    }
    base_url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(
        base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=10
    ) as client:
        yield Herald(base_url, client, settings, db, deliverer, tg, tokens)
    # The emulator's webhook pusher must stop calling this gateway before it goes.
    tg.reset()
    await deliverer.hints.close()
    await deliverer.sender.close()
    server.should_exit = True
    await serving
    keys = [k async for k in redis.scan_iter(match=all_keys_pattern(settings.queue_name))]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()
