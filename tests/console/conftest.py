"""The console under a real browser: the gateway served by uvicorn over HTTP, Chromium
driven by Playwright.

- `console`: the gateway (`create_app`, with its real Redis broker) on a free port in a
  thread, over the session's test database. Test data is made the way the service makes
  it: tasks through `POST /api/tasks`, then taken through the workers' own claim and
  record statements to delivered, failed or uncertain.
- `browser`: Debian's Chromium (`/usr/bin/chromium`; Playwright's own build cannot be
  downloaded here), headless; every test gets a fresh context (no cookies).
- With `HERALD_SCREENSHOTS=1`, `shot(page, name)` saves `docs/console/NAME.png`.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    expect,
    sync_playwright,
)

from herald.api.app import create_app
from herald.api.auth import mint_token
from herald.config import Settings
from herald.delivery.claim import claim_many
from herald.delivery.record import Transition, record_many
from herald.devprocess import free_port
from herald.states import TaskStatus
from tests.conftest import make_settings
from tests.support.databases import EMPTY_TABLES

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "docs" / "console"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WORKER = "worker:test-1"
# A shared 2-core machine can be slow to answer: wait as long for assertions as for actions.
expect.set_options(timeout=10_000)


@dataclass
class Console:
    url: str
    settings: Settings
    app: Any
    loop: asyncio.AbstractEventLoop
    http: httpx.Client

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the server's loop (where its pool and Redis client live)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    @property
    def pool(self) -> Any:
        return self.app.state.gateway.pool

    @property
    def redis(self) -> Any:
        return self.app.state.gateway.redis

    def token(self, sub: str = "alice", scopes: str = "tasks:read tasks:manage") -> str:
        return mint_token(self.settings, sub, scopes.split(), ttl=3600)

    def api(self, sub: str = "auditor", scopes: str = "tasks:read") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(sub, scopes)}"}

    def get_task(self, task_id: int) -> dict[str, Any]:
        response = self.http.get(f"/api/tasks/{task_id}", headers=self.api())
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def events(self, task_id: int) -> list[dict[str, Any]]:
        response = self.http.get(f"/api/tasks/{task_id}/events", headers=self.api())
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    def list_ids(self, **query: str) -> list[int]:
        response = self.http.get("/api/tasks", params={**query, "limit": "500"}, headers=self.api())
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    def create(
        self,
        *,
        client: str = "billing",
        key: str,
        chat_id: int | str = 42,
        status: TaskStatus = TaskStatus.PENDING,
        body: dict[str, Any] | None = None,
        error: str = "TelegramBadRequest: Bad Request: chat not found",
    ) -> int:
        """A task made through the API and, unless pending, moved by the workers' SQL.

        Pending tasks are due tomorrow, so that each claim here takes the task just made.
        """
        payload: dict[str, Any] = {"chat_id": chat_id, "text": f"Notice {key}"}
        payload.update(body or {})
        if status is TaskStatus.PENDING:
            tomorrow = datetime.now(UTC) + timedelta(days=1)
            payload.setdefault("send_at", tomorrow.isoformat())
        response = self.http.post(
            "/api/tasks",
            json=payload,
            headers={**self.api(client, "tasks:write"), "Idempotency-Key": key},
        )
        assert response.status_code == 201, response.text
        task_id: int = response.json()["id"]
        if status is not TaskStatus.PENDING:
            self.run(self._finish(task_id, status, error))
        return task_id

    async def _finish(self, task_id: int, status: TaskStatus, error: str) -> None:
        (claimed,) = await claim_many(self.pool, WORKER, 30.0, 1)
        assert claimed.id == task_id
        outcome = {
            TaskStatus.DELIVERED: Transition(TaskStatus.DELIVERED, "delivered", message_id=7000),
            TaskStatus.FAILED: Transition(
                TaskStatus.FAILED, "rejected", error_code=400, error=error, failed=True
            ),
            TaskStatus.UNCERTAIN: Transition(TaskStatus.UNCERTAIN, "ambiguous", error=error),
        }[status]
        replaced = await record_many(self.pool, WORKER, [(task_id, claimed.attempt, outcome)])
        assert replaced == ["sending"]

    def reset(self) -> None:
        async def truncate() -> None:
            await self.pool.execute(EMPTY_TABLES)
            await self.redis.delete(self.settings.queue_name)

        self.run(truncate())

    def queue_length(self) -> int:
        n: int = self.run(self.redis.llen(self.settings.queue_name))
        return n


@pytest.fixture(scope="package")
def console(database_url: str) -> Iterator[Console]:
    settings = make_settings(database_url, metrics_refresh_seconds=0.3)
    app = create_app(settings)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
    )
    started: dict[str, asyncio.AbstractEventLoop] = {}

    def serve() -> None:
        loop = asyncio.new_event_loop()
        started["loop"] = loop
        loop.run_until_complete(server.serve())
        loop.close()

    thread = threading.Thread(target=serve, name="console-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the gateway did not start"
        assert thread.is_alive(), "the gateway thread died"
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=url, timeout=10) as http:
        yield Console(url, settings, app, started["loop"], http)
    server.should_exit = True
    thread.join(timeout=30)


# Package scope: Playwright's sync API keeps an event loop running in this thread while
# it is open, which the asyncio tests of other packages must not find.
@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield chromium
    chromium.close()


@pytest.fixture
def context(console: Console, browser: Browser) -> Iterator[BrowserContext]:
    console.reset()
    ctx = browser.new_context(base_url=console.url, viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(10_000)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


def sign_in(page: Page, console: Console, scopes: str = "tasks:read tasks:manage") -> None:
    """The way an operator does: the sign-in page, the token pasted, the button."""
    page.goto("/console/sign-in")
    page.get_by_label("Token").fill(console.token("alice", scopes))
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{console.url}/console")


def shot(page: Page, name: str, *, full_page: bool = True) -> None:
    if os.environ.get("HERALD_SCREENSHOTS") == "1":
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full_page)
