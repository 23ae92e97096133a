"""PostgreSQL going away mid-request: 503 with Retry-After, and the retry succeeds."""

from __future__ import annotations

import asyncio

import asyncpg

from herald.db.pool import asyncpg_dsn
from tests.api.conftest import TEXT_TASK, Api


async def test_connection_killed_mid_insert_is_503_and_retry_succeeds(api: Api) -> None:
    admin = await asyncpg.connect(asyncpg_dsn(api.settings.database_url))
    try:
        locker = await asyncpg.connect(asyncpg_dsn(api.settings.database_url))
        tx = locker.transaction()
        await tx.start()
        await locker.execute("LOCK TABLE tasks IN EXCLUSIVE MODE")  # the insert will wait
        post = asyncio.create_task(api.post_task(TEXT_TASK, key="outage"))
        for _ in range(500):  # until the insert waits on the lock
            pid = await admin.fetchval(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock' AND query LIKE '%INSERT INTO tasks%'"
            )
            if pid is not None:
                break
            await asyncio.sleep(0.01)
        assert pid is not None
        await admin.execute("SELECT pg_terminate_backend($1)", pid)  # as a restart would
        resp = await post
        await tx.rollback()
        await locker.close()
    finally:
        await admin.close()
    assert resp.status_code == 503
    assert resp.json()["error"]["code"] == "database_unavailable"
    assert resp.headers["retry-after"] == "1"
    retry = await api.post_task(TEXT_TASK, key="outage")
    assert retry.status_code == 201
    assert await api.count() == 1
