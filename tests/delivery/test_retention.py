"""Retention: old final tasks go with their events; uncertain and live tasks stay."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from herald.config import Settings
from herald.delivery.retention import Retention
from tests.conftest import make_settings
from tests.delivery.conftest import insert_task
from tests.delivery.workers import WorkerProcess, wait_for


async def _task_in(pool: Any, status: str, age_days: float, chat_id: int = 42) -> int:
    task_id = await insert_task(pool, chat_id=chat_id)
    await pool.execute(
        "UPDATE tasks SET status = $2, updated_at = now() - make_interval(secs => $3)"
        " WHERE id = $1",
        task_id,
        status,
        age_days * 86_400,
    )
    await pool.execute(
        "INSERT INTO task_events (task_id, actor, from_status, to_status)"
        " VALUES ($1, 'tests', 'pending', $2)",
        task_id,
        status,
    )
    return task_id


async def _left(pool: Any) -> tuple[set[int], set[int]]:
    tasks = {r["id"] for r in await pool.fetch("SELECT id FROM tasks")}
    events = {r["task_id"] for r in await pool.fetch("SELECT task_id FROM task_events")}
    return tasks, events


def _retention(pool: Any, settings: Settings, **overrides: Any) -> Retention:
    return Retention(pool, make_settings(settings.database_url, **overrides))


async def test_purges_old_final_tasks_with_their_events_and_keeps_the_rest(
    db: Any, settings: Settings
) -> None:
    old_final = [await _task_in(db, s, 31) for s in ("delivered", "failed", "cancelled")]
    kept = [await _task_in(db, s, 31) for s in ("uncertain", "pending", "sending")]
    kept += [await _task_in(db, s, 29) for s in ("delivered", "failed", "cancelled")]

    purged = await _retention(db, settings, retention_days=30).purge(asyncio.Event())

    assert purged == 3
    tasks, events = await _left(db)
    assert tasks == set(kept)
    assert events == set(kept)
    assert not set(old_final) & (tasks | events)


async def test_purges_a_backlog_in_small_batches(db: Any, settings: Settings) -> None:
    old = [await _task_in(db, "delivered", 40, chat_id=i) for i in range(1, 8)]
    retention = _retention(db, settings, retention_days=30, retention_batch_size=3)

    assert await retention.purge_batch() == 3
    assert await retention.purge(asyncio.Event()) == 4
    assert (await _left(db))[0].isdisjoint(old)
    assert await retention.purge_batch() == 0


async def test_zero_days_keeps_everything(db: Any, settings: Settings) -> None:
    ancient = await _task_in(db, "delivered", 10_000)
    stop = asyncio.Event()
    run = asyncio.create_task(_retention(db, settings, retention_days=0).run(stop))
    await asyncio.sleep(0.2)
    assert run.done()  # no loop at all
    assert (await _left(db))[0] == {ancient}


async def test_a_running_worker_purges(
    db: Any, start_worker: Callable[..., Awaitable[WorkerProcess]]
) -> None:
    expired = await _task_in(db, "delivered", 2)
    recent = await _task_in(db, "delivered", 0.5)
    uncertain = await _task_in(db, "uncertain", 400)

    await start_worker(retention_days=1, retention_interval_seconds=0.2)

    async def purged() -> bool:
        return expired not in (await _left(db))[0]

    await wait_for(purged, 15, "the purge of the expired task")
    assert (await _left(db))[0] == {recent, uncertain}
