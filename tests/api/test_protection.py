"""Per-client intake quotas (429) and backlog backpressure (503), with Retry-After."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from herald.api.app import create_app
from herald.api.auth import mint_token
from herald.metrics import INTAKE_REFUSED
from tests.api.conftest import TEXT_TASK, Api, RecordingQueue, running
from tests.conftest import make_settings


@asynccontextmanager
async def _guarded(database_url: str, **overrides: Any) -> AsyncIterator[Api]:
    settings = make_settings(database_url, **overrides)
    queue = RecordingQueue()
    app = create_app(settings, queue=queue)
    async with running(app) as client:
        await app.state.gateway.pool.execute("TRUNCATE task_events, tasks")
        yield Api(app, client, settings, queue)


@pytest.fixture
async def quotas(database_url: str) -> AsyncIterator[Api]:
    async with _guarded(
        database_url,
        intake_quotas={"greedy": 0.1, "batcher": 1.0},
        intake_quota_burst_seconds=30.0,
    ) as api:
        yield api


@pytest.fixture
async def backlog(database_url: str) -> AsyncIterator[Api]:
    async with _guarded(
        database_url, intake_backlog_limit=3, intake_backlog_check_seconds=0.05
    ) as api:
        yield api


async def test_client_over_quota_gets_429_others_go_on(quotas: Api) -> None:
    before = INTAKE_REFUSED.labels(reason="quota_exceeded")._value.get()
    codes = [
        (await quotas.post_task(TEXT_TASK, key=f"g{i}", sub="greedy")).status_code for i in range(4)
    ]
    assert codes == [201] * 4  # the burst: 30 s of a 0.1 task/s quota, and the one in hand
    resp = await quotas.post_task(TEXT_TASK, key="g4", sub="greedy")
    assert resp.status_code == 429
    assert resp.json()["error"]["code"] == "quota_exceeded"
    assert resp.headers["retry-after"] in {"9", "10"}  # the next task's 10 s slot
    assert await quotas.count() == 4  # nothing stored for the refused request
    # A client without a quota, and reads by the greedy one, are not affected.
    calm = await quotas.post_task(TEXT_TASK, key="c0", sub="calm")
    assert calm.status_code == 201
    assert (await quotas.client.get("/api/tasks", headers=quotas.auth("greedy"))).status_code == 200
    assert INTAKE_REFUSED.labels(reason="quota_exceeded")._value.get() == before + 1


async def test_batch_costs_its_items(quotas: Api) -> None:
    items = [{"idempotency_key": f"b{i}", **TEXT_TASK} for i in range(50)]
    first = await quotas.client.post(
        "/api/tasks/batch", json={"items": items}, headers=quotas.auth("batcher")
    )
    assert first.status_code == 200
    assert first.json()["created"] == 50
    second = await quotas.client.post(
        "/api/tasks/batch", json={"items": items[:1]}, headers=quotas.auth("batcher")
    )
    assert second.status_code == 429
    # 50 tasks at 1/s is 50 s of quota, of which 30 s were burst: about 20 s to wait.
    assert second.headers["retry-after"] in {"19", "20"}


async def test_quota_fails_open_without_redis(database_url: str) -> None:
    settings = make_settings(
        database_url, redis_url="redis://127.0.0.1:1/0", intake_quotas={"*": 0.001}
    )
    async with running(create_app(settings, queue=RecordingQueue())) as client:
        token = mint_token(settings, "anyone", ["tasks:write"])
        headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": secrets.token_hex(8)}
        resp = await client.post("/api/tasks", json=TEXT_TASK, headers=headers)
    assert resp.status_code == 201


async def _next_check(guard: Any) -> int | None:
    guard.backlog_checked.clear()
    await asyncio.wait_for(guard.backlog_checked.wait(), 5)
    backlog: int | None = guard.backlog
    return backlog


async def test_backlog_over_bound_pauses_intake_with_503(backlog: Api) -> None:
    guard = backlog.app.state.gateway.guard
    for i in range(4):
        assert (await backlog.post_task(TEXT_TASK, key=f"d{i}")).status_code == 201

    assert await _next_check(guard) == 4  # the background check saw the backlog
    before = INTAKE_REFUSED.labels(reason="backlog")._value.get()
    resp = await backlog.post_task(TEXT_TASK, key="d4")
    assert resp.status_code == 503
    assert resp.json()["error"]["code"] == "backlog_full"
    assert resp.headers["retry-after"] == "5"
    batch = await backlog.client.post(
        "/api/tasks/batch",
        json={"items": [{"idempotency_key": "x", **TEXT_TASK}]},
        headers=backlog.auth(),
    )
    assert batch.status_code == 503
    assert await backlog.count() == 4
    assert INTAKE_REFUSED.labels(reason="backlog")._value.get() == before + 2
    # Reads and operator work go on; the workers drain the backlog...
    assert (await backlog.client.get("/api/tasks", headers=backlog.auth())).status_code == 200
    await backlog.pool.execute(
        "UPDATE tasks SET status = 'delivered' WHERE id IN (SELECT id FROM tasks LIMIT 2)"
    )

    assert await _next_check(guard) == 2
    assert (await backlog.post_task(TEXT_TASK, key="d5")).status_code == 201
