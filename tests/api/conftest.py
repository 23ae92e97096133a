"""Gateway fixtures: the app over the session's database, a recording queue, tokens."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from herald.api.app import create_app
from herald.api.auth import mint_token
from herald.config import Settings
from herald.queue import Hint
from tests.conftest import make_settings
from tests.support.databases import EMPTY_TABLES


@dataclass
class RecordingQueue:
    """A TaskQueue that records each push; `hook` runs first with its task ids (it may raise)."""

    calls: list[list[Hint]] = field(default_factory=list)
    hook: Callable[[Sequence[int]], Any] | None = None

    async def push(self, hints: Sequence[Hint]) -> None:
        if self.hook is not None:
            await self.hook([task_id for task_id, _ in hints])
        self.calls.append(list(hints))

    @property
    def ids(self) -> list[int]:
        return [task_id for hints in self.calls for task_id, _ in hints]


@dataclass
class Api:
    app: FastAPI
    client: httpx.AsyncClient
    settings: Settings
    queue: RecordingQueue

    @property
    def pool(self) -> Any:
        return self.app.state.gateway.pool

    def token(self, sub: str = "billing", scopes: str = "tasks:write", ttl: int = 600) -> str:
        return mint_token(self.settings, sub, scopes.split(), ttl=ttl)

    def auth(self, sub: str = "billing", scopes: str = "tasks:write") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(sub, scopes)}"}

    async def post_task(
        self, body: dict[str, Any], key: str = "k1", sub: str = "billing", **headers: str
    ) -> httpx.Response:
        return await self.client.post(
            "/api/tasks", json=body, headers={**self.auth(sub), "Idempotency-Key": key, **headers}
        )

    async def count(self, table: str = "tasks") -> int:
        n: int = await self.pool.fetchval(f"SELECT count(*) FROM {table}")
        return n


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan run, behind an in-process HTTP client."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://herald") as client:
            yield client


@pytest.fixture
async def api(database_url: str) -> AsyncIterator[Api]:
    settings = make_settings(database_url)
    queue = RecordingQueue()
    app = create_app(settings, queue=queue)
    async with running(app) as client:
        await app.state.gateway.pool.execute(EMPTY_TABLES)
        yield Api(app, client, settings, queue)


TEXT_TASK: dict[str, Any] = {"chat_id": 42, "text": "hello"}
