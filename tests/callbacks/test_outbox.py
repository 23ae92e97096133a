"""The outbox trigger against the transition table: every transition a task can make
writes exactly the event `herald.callbacks.events` names (or none), in the statement
that writes its audit event, and only for a client with an endpoint."""

from __future__ import annotations

import asyncio

import pytest

from herald.callbacks.events import EVENT_TYPES, event_type
from herald.config import Settings
from herald.db.pool import Pool
from herald.delivery.retention import Retention
from herald.states import TRANSITIONS, Edge
from tests.callbacks.conftest import add_endpoint, move
from tests.conftest import make_settings
from tests.delivery.conftest import insert_task

MOVES = [e for e in TRANSITIONS if e.frm is not None]


@pytest.mark.parametrize("edge", MOVES, ids=lambda e: f"{e.frm}-{e.to}-{e.actor}-{e.reason}")
async def test_each_transition_writes_its_event(db: Pool, edge: Edge) -> None:
    await add_endpoint(db, "shop")
    task_id = await insert_task(db, client="shop")
    await db.execute("UPDATE tasks SET status = $2 WHERE id = $1", task_id, edge.frm)
    await move(db, task_id, edge)
    rows = await db.fetch(
        "SELECT type, seq, payload FROM callback_events WHERE task_id = $1", task_id
    )
    expected = event_type(edge)
    assert [r["type"] for r in rows] == ([expected] if expected else [])
    if expected:
        data = rows[0]["payload"]["data"]
        assert rows[0]["payload"]["type"] == expected
        assert data["seq"] == rows[0]["seq"] == 1
        assert data["task_id"] == task_id
        assert data["status"] == edge.to.value
        assert data["idempotency_key"]
        assert data["attempt"] == 1
        assert (data["telegram_message_id"] == 777) == (edge.to.value == "delivered")
        assert (data["error_code"] == 403) == (edge.to.value == "failed")


def test_every_event_type_comes_from_some_transition() -> None:
    assert {event_type(e) for e in MOVES} - {None} == set(EVENT_TYPES)


async def test_no_endpoint_no_event(db: Pool) -> None:
    await add_endpoint(db, "other")
    task_id = await insert_task(db, client="shop")
    edge = next(e for e in MOVES if event_type(e) == "task.delivered")
    await db.execute("UPDATE tasks SET status = 'sending' WHERE id = $1", task_id)
    await move(db, task_id, edge)
    assert await db.fetchval("SELECT count(*) FROM callback_events") == 0


async def test_events_of_a_task_are_numbered_in_order(db: Pool) -> None:
    await add_endpoint(db, "shop")
    task_id = await insert_task(db, client="shop")
    by_type = {event_type(e): e for e in MOVES if e.actor.value == "worker" or e.reason == "resend"}
    path = ["task.uncertain", "task.resent", "task.delivered"]
    for kind in path:
        edge = by_type[kind]
        await db.execute("UPDATE tasks SET status = $2 WHERE id = $1", task_id, edge.frm)
        await move(db, task_id, edge)
    rows = await db.fetch(
        "SELECT seq, type, payload->'data'->>'seq' AS body_seq FROM callback_events"
        " WHERE task_id = $1 ORDER BY id",
        task_id,
    )
    assert [(r["seq"], r["type"], r["body_seq"]) for r in rows] == [
        (1, "task.uncertain", "1"),
        (2, "task.resent", "2"),
        (3, "task.delivered", "3"),
    ]


async def test_retention_takes_delivered_callbacks_and_keeps_waiting_ones(
    db: Pool, settings: Settings
) -> None:
    await add_endpoint(db, "shop")
    delivered_edge = next(e for e in MOVES if event_type(e) == "task.delivered")
    tasks = []
    for _ in range(2):
        task_id = await insert_task(db, client="shop")
        await db.execute("UPDATE tasks SET status = 'sending' WHERE id = $1", task_id)
        await move(db, task_id, delivered_edge)
        tasks.append(task_id)
    sent, waiting = tasks
    await db.execute(
        "INSERT INTO callback_attempts (event_id, attempt, worker, status_code, latency_ms)"
        " SELECT id, 1, 'tests', 200, 1 FROM callback_events"
    )
    await db.execute("UPDATE callback_events SET status = 'delivered' WHERE task_id = $1", sent)
    await db.execute("UPDATE tasks SET updated_at = now() - interval '40 days'")

    retention = Retention(db, make_settings(settings.database_url, retention_days=30))
    assert await retention.purge(asyncio.Event()) == 1
    left = await db.fetch("SELECT task_id FROM callback_events")
    assert [r["task_id"] for r in left] == [waiting]
    assert await db.fetchval("SELECT count(*) FROM callback_attempts") == 1
    assert await db.fetchval("SELECT array_agg(id) FROM tasks") == [waiting]
