"""Status callbacks' fixtures: a real HTTP receiver, and the delivery fixtures (workers,
the gateway, the emulator, the tables emptied before each test).

The receiver is an aiohttp server in the test's own event loop. It records every request
as it arrived; `answer` decides each answer (a status, a delay, or a dropped connection).
Signatures are verified by the tests with the `standardwebhooks` package, never with
Herald's code.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from standardwebhooks import Webhook

from herald.callbacks.events import DELIVERED as DELIVERED_EVENT
from herald.callbacks.events import event_type
from herald.db.pool import Pool
from herald.states import TRANSITIONS, Edge, TaskStatus
from tests.delivery.conftest import (  # noqa: F401  (fixtures)
    db,
    enqueue,
    gateway,
    insert_task,
    make_deliverer,
    pool,
    redis,
    start_worker,
    tg,
)

# Scaled down: attempts 0.4 s and then 0.8 s after the previous one failed.
FAST_CALLBACKS: dict[str, Any] = {
    "callback_retry_schedule": "[0, 0.4, 0.8]",
    "callback_poll_seconds": 0.05,
    "callback_timeout_seconds": 2,
    "callback_lease_seconds": 4,
}


def make_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic()

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def event(self) -> dict[str, Any]:
        event: dict[str, Any] = json.loads(self.body)
        return event

    def verify(self, secret: str) -> dict[str, Any]:
        """The payload, verified with `secret` by the standardwebhooks package (raises)."""
        payload: dict[str, Any] = Webhook(secret).verify(self.body, self.headers)
        return payload


Answer = Callable[[Received], Awaitable[int | None]]  # a status; None drops the connection


async def ok(_: Received) -> int:
    return 200


@dataclass
class Receiver:
    port: int
    requests: list[Received] = field(default_factory=list)
    answer: Answer = ok
    # The requests answered 2xx, in the order answered.
    accepted: list[Received] = field(default_factory=list)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def by_task(self, task_id: int) -> list[Received]:
        return [r for r in self.accepted if r.event["data"]["task_id"] == task_id]

    async def wait(self, check: Callable[[], bool], seconds: float = 20) -> None:
        deadline = time.monotonic() + seconds
        while not check():
            if time.monotonic() > deadline:
                raise TimeoutError(f"receiver: condition not met; got {len(self.requests)}")
            await asyncio.sleep(0.02)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver(port=0)

    async def handle(request: web.Request) -> web.StreamResponse:
        got = Received(request.path, dict(request.headers), await request.read(), time.monotonic())
        rec.requests.append(got)
        status = await rec.answer(got)
        if status is None:
            assert request.transport is not None
            request.transport.close()  # after reading the body: no answer at all
            raise ConnectionResetError("dropped by the test receiver")
        if 200 <= status < 300:
            rec.accepted.append(got)
        return web.Response(status=status, text="ok" if status < 300 else "no")

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None
    rec.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield rec
    await runner.cleanup()


def callbacks_env(url: str, secret: str, client: str = "shop", **extra: Any) -> str:
    return json.dumps({client: {"url": url, "secret": secret, **extra}})


async def add_endpoint(
    conn: Pool,
    client: str,
    url: str = "http://127.0.0.1:9/hook",
    secret: str = "",
    *,
    updates: bool = False,
) -> None:
    await conn.execute(
        "INSERT INTO callback_endpoints (client, url, hosts, secret, source, updates)"
        " VALUES ($1, $2, '{127.0.0.1}', $3, 'api', $4)",
        client,
        url,
        secret or make_secret(),
        updates,
    )


async def move(conn: Pool, task_id: int, edge: Edge) -> None:
    """The edge as its statements make it: the row updated and its audit event written
    in one statement."""
    assert edge.frm is not None
    await conn.execute(
        """
        WITH moved AS (
            UPDATE tasks SET status = $2, attempt = 1, telegram_message_id = 777,
                   last_error_code = 403, last_error = 'Forbidden: bot was blocked'
            WHERE id = $1 RETURNING id
        )
        INSERT INTO task_events (task_id, actor, from_status, to_status, attempt, reason)
        SELECT id, $3, $4, $2, 1, $5 FROM moved
        """,
        task_id,
        edge.to.value,
        f"{edge.actor.value}:someone",
        edge.frm.value,
        edge.reason,
    )


# The record's sending -> delivered: the edge that writes a task.delivered event.
DELIVERED = next(
    e for e in TRANSITIONS if e.frm is TaskStatus.SENDING and event_type(e) == DELIVERED_EVENT
)


async def delivered_task(conn: Pool, client: str) -> int:
    """A task of `client` delivered as the record delivers it: its task.delivered event
    written by the outbox trigger when the client has an endpoint."""
    task_id = await insert_task(conn, client=client)
    await conn.execute("UPDATE tasks SET status = 'sending' WHERE id = $1", task_id)
    await move(conn, task_id, DELIVERED)
    return task_id
