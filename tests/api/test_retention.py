"""Retention as a producer sees it: a purged task's idempotency key is free again."""

from __future__ import annotations

import asyncio

from herald.delivery.retention import Retention
from tests.api.conftest import TEXT_TASK, Api


async def test_a_purged_task_frees_its_idempotency_key(api: Api) -> None:
    """Documented in docs/delivery.md: past retention, the same key makes a new task."""
    first = await api.post_task(TEXT_TASK, key="order-1")
    assert first.status_code == 201
    await api.pool.execute(
        "UPDATE tasks SET status = 'delivered', updated_at = now() - interval '31 days'"
    )
    assert await Retention(api.pool, api.settings).purge(asyncio.Event()) == 1

    again = await api.post_task(TEXT_TASK, key="order-1")
    assert again.status_code == 201
    assert again.json()["id"] != first.json()["id"]
