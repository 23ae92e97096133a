"""Backpressure seen from both sides: while intake refuses new tasks with 503, the workers
go on delivering the backlog, and intake opens again once it has drained."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from herald.api.app import create_app
from herald.api.auth import mint_token
from herald.config import Settings
from herald.delivery.pipeline import Deliverer
from herald.emulator.testing import EmulatorHandle
from herald.states import TaskStatus
from tests.conftest import make_settings


@pytest.fixture
async def guarded(settings: Settings, db: Any) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    """The real app with a due-backlog bound of 3, and its backlog guard."""
    s = make_settings(
        settings.database_url,
        queue_name=settings.queue_name,
        intake_backlog_limit=3,
        intake_backlog_check_seconds=0.05,
    )
    app = create_app(s)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://herald") as client:
            for sub in ("shop", "billing"):
                client.headers[f"X-{sub}"] = f"Bearer {mint_token(s, sub, ['tasks:write'])}"
            yield client, app.state.gateway.guard


async def _post(client: httpx.AsyncClient, sub: str, key: str) -> httpx.Response:
    headers = {"Authorization": client.headers[f"X-{sub}"], "Idempotency-Key": key}
    return await client.post("/api/tasks", json={"chat_id": 7, "text": key}, headers=headers)


async def _next_backlog(guard: Any) -> int | None:
    guard.backlog_checked.clear()
    await asyncio.wait_for(guard.backlog_checked.wait(), 5)
    backlog: int | None = guard.backlog
    return backlog


async def test_workers_drain_while_intake_refuses_then_intake_opens(
    guarded: tuple[httpx.AsyncClient, Any],
    make_deliverer: Callable[..., Awaitable[Deliverer]],
    tg: EmulatorHandle,
    db: Any,
) -> None:
    client, guard = guarded
    for i in range(4):
        assert (await _post(client, "shop", f"t{i}")).status_code == 201
    assert await _next_backlog(guard) == 4

    # Over the bound: every producer is asked to come back later, nothing is stored.
    for sub in ("shop", "billing"):
        refused = await _post(client, sub, "late")
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "backlog_full"
        assert int(refused.headers["retry-after"]) >= 1
    assert await db.fetchval("SELECT count(*) FROM tasks") == 4

    # The workers are not refused anything: they deliver the whole backlog, once each.
    deliverer = await make_deliverer()
    outcomes = [await deliverer.handle(0) for _ in range(4)]
    assert outcomes == [TaskStatus.DELIVERED] * 4
    assert sorted(m["text"] for m in tg.messages()) == ["t0", "t1", "t2", "t3"]

    assert await _next_backlog(guard) == 0
    assert (await _post(client, "billing", "late")).status_code == 201
