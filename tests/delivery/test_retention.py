"""Retention: old final tasks go with their events; uncertain and live tasks stay."""

from __future__ import annotations

import asyncio
from typing import Any

from herald.config import Settings
from herald.delivery.retention import Retention
from tests.conftest import make_settings
from tests.delivery.conftest import StartWorker, insert_task
from tests.delivery.workers import wait_for


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


async def test_a_running_worker_purges(db: Any, start_worker: StartWorker) -> None:
    expired = await _task_in(db, "delivered", 2)
    recent = await _task_in(db, "delivered", 0.5)
    uncertain = await _task_in(db, "uncertain", 400)

    await start_worker(retention_days=1, retention_interval_seconds=0.2)

    async def purged() -> bool:
        return expired not in (await _left(db))[0]

    await wait_for(purged, 15, "the purge of the expired task")
    assert (await _left(db))[0] == {recent, uncertain}


async def test_purges_what_people_sent_once_past_the_retention(db: Any, settings: Settings) -> None:
    # Stored updates, a recipient's events once finished (with their attempts) and deep
    # links past their expiry go after the retention days; newer ones and events still
    # on their way stay.
    for update_id, age_days in ((1, 31), (2, 29)):
        await db.execute(
            "INSERT INTO telegram_updates (bot_id, update_id, kind, chat_id, payload,"
            " received_at) VALUES (1, $1, 'message', '7', '{}',"
            " now() - make_interval(secs => $2))",
            update_id,
            age_days * 86_400,
        )
    events = {}
    for name, status, age_days in (
        ("old_sent", "delivered", 31),
        ("old_failed", "failed", 31),
        ("new_sent", "delivered", 29),
        ("old_waiting", "pending", 31),
    ):
        events[name] = await db.fetchval(
            "INSERT INTO callback_events (client, recipient, seq, type, payload, status,"
            " created_at, finished_at) VALUES ('shop', 'u-1', $1, 'message.received', '{}',"
            " $2, now() - make_interval(secs => $3), CASE WHEN $2 <> 'pending' THEN"
            " now() - make_interval(secs => $3) END) RETURNING id",
            len(events) + 1,
            status,
            age_days * 86_400,
        )
        await db.execute(
            "INSERT INTO callback_attempts (event_id, attempt, worker, latency_ms)"
            " VALUES ($1, 1, 'tests', 1.0)",
            events[name],
        )
    for code, age_days in (("old-link", 31), ("new-link", 29)):
        await db.execute(
            "INSERT INTO recipient_links (code, bot_id, client, external_id, welcome,"
            " expires_at) VALUES ($1, 1, 'shop', 'u-1', 'hi', now() - make_interval(secs => $2))",
            code,
            age_days * 86_400,
        )

    await _retention(db, settings, retention_days=30).purge(asyncio.Event())

    assert [r["update_id"] for r in await db.fetch("SELECT update_id FROM telegram_updates")] == [2]
    kept = {events["new_sent"], events["old_waiting"]}
    assert {r["id"] for r in await db.fetch("SELECT id FROM callback_events")} == kept
    assert {r["event_id"] for r in await db.fetch("SELECT event_id FROM callback_attempts")} == kept
    assert [r["code"] for r in await db.fetch("SELECT code FROM recipient_links")] == ["new-link"]
