"""The outbox trigger against the transition table: every transition a task can make
writes exactly the event `herald.callbacks.events` names (or none), in the statement
that writes its audit event, and only for a client with an endpoint."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from herald.callbacks import outbox
from herald.callbacks.endpoints import sync_configured
from herald.callbacks.events import EVENT_TYPES, CallbackStatus, event_type
from herald.config import Settings
from herald.db.pool import Pool
from herald.delivery.retention import Retention
from herald.states import TRANSITIONS, Edge
from tests.callbacks.conftest import add_endpoint, callbacks_env, delivered_task, make_secret, move
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
    await delivered_task(db, "shop")
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
    sent, waiting = [await delivered_task(db, "shop") for _ in range(2)]
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


async def _recipient_event(db: Pool, client: str, recipient: str, seq: int) -> int:
    event_id: int = await db.fetchval(
        "INSERT INTO callback_events (recipient, client, seq, type, payload)"
        " VALUES ($1, $2, $3, 'message.received', '{}') RETURNING id",
        recipient,
        client,
        seq,
    )
    return event_id


async def test_a_recipients_events_are_claimed_in_update_order(db: Pool) -> None:
    await add_endpoint(db, "shop", updates=True)
    # Written out of order (a webhook's concurrent calls may commit so): sent in seq order.
    late, first, middle = [await _recipient_event(db, "shop", "ann", s) for s in (50, 20, 35)]
    other = await _recipient_event(db, "shop", "bob", 10)
    same_name = await _recipient_event(db, "other", "ann", 5)  # another client's ann
    await add_endpoint(db, "other", updates=True)
    task_id = await delivered_task(db, "shop")

    claimed = await outbox.claim(db, "w1", 60, 10)
    assert {c.id for c in claimed if c.task_id is None} == {first, other, same_name}
    assert [c.task_id for c in claimed if c.task_id is not None] == [task_id]
    ann = next(c for c in claimed if c.id == first)
    assert (ann.recipient, ann.seq, ann.webhook_id) == ("ann", 20, f"msg_u20_{first}")
    assert next(c for c in claimed if c.task_id).webhook_id == f"msg_{task_id}_1"

    async def finish(event: outbox.ClaimedEvent, status: CallbackStatus) -> None:
        attempt = outbox.Attempt(event.id, event.client, event.attempt, status, None, 200, 1, None)
        assert (await outbox.record(db, "w1", 3600, [attempt])).applied == {event.id}

    assert await outbox.claim(db, "w1", 60, 10) == []  # each stream waits for its first
    await finish(ann, CallbackStatus.DELIVERED)
    [nxt] = await outbox.claim(db, "w1", 60, 10)
    assert nxt.id == middle
    await finish(nxt, CallbackStatus.FAILED)  # given up: the stream goes on
    [last] = await outbox.claim(db, "w1", 60, 10)
    assert last.id == late


def _scans(plan: dict[str, Any]) -> list[str]:
    """The node types that read callback_events, anywhere in the plan."""
    reads = plan.get("Relation Name") == "callback_events" and plan["Node Type"] != "ModifyTable"
    found = [plan["Node Type"]] if reads else []
    for child in plan.get("Plans", []):
        found += _scans(child)
    return found


async def test_the_claim_reads_the_outbox_by_index(db: Pool) -> None:
    """A few thousand events of both kinds of stream, most delivered, a recipient's long
    history before its open events: the claim reads callback_events through its indexes
    only (docs/callbacks.md, "How it works")."""
    await add_endpoint(db, "shop", updates=True)
    await db.execute(
        "INSERT INTO callback_events (task_id, client, seq, type, payload, status)"
        " SELECT t, 'shop', s, 'task.delivered', '{}',"
        "        CASE WHEN s = 1 + t % 3 AND t % 10 = 0 THEN 'pending' ELSE 'delivered' END"
        " FROM generate_series(1, 1000) t, generate_series(1, 3) s WHERE s <= 1 + t % 3"
    )
    await db.execute(
        "INSERT INTO callback_events (recipient, client, seq, type, payload, status)"
        " SELECT 'r' || r, 'shop', n * 100 + r, 'message.received', '{}',"
        "        CASE WHEN n > 90 THEN 'pending' ELSE 'delivered' END"
        " FROM generate_series(1, 30) r, generate_series(1, 100) n"
    )
    await db.execute("ANALYZE callback_events")
    async with db.acquire() as conn, conn.transaction():
        plan = await conn.fetchval("EXPLAIN (FORMAT JSON) " + outbox._CLAIM_SQL, "w1", 60.0, 32)
    scans = _scans(plan[0]["Plan"])  # the pool decodes json
    assert scans, "the plan reads callback_events"
    assert set(scans) <= {"Index Scan", "Index Only Scan", "Bitmap Heap Scan"}, scans


async def test_a_client_removed_from_the_configuration_fails_its_waiting_events(
    db: Pool, settings: Settings
) -> None:
    # Its events could never go out without the endpoint, and an open event would keep
    # its task from retention forever: they fail when the endpoint goes, audited.
    both = json.loads(callbacks_env("http://127.0.0.1:9/a", make_secret(), "shop"))
    both.update(json.loads(callbacks_env("http://127.0.0.1:9/b", make_secret(), "bank")))
    await sync_configured(db, make_settings(settings.database_url, callbacks=both))
    for client in ("shop", "bank"):
        await delivered_task(db, client)

    only_bank = {"bank": both["bank"]}
    await sync_configured(db, make_settings(settings.database_url, callbacks=only_bank))

    rows = await db.fetch("SELECT client, status, finished_at FROM callback_events ORDER BY client")
    assert [(r["client"], r["status"]) for r in rows] == [("bank", "pending"), ("shop", "failed")]
    assert rows[1]["finished_at"] is not None
    audit = await db.fetch("SELECT client, action, details FROM callback_audit")
    assert [(a["client"], a["action"]) for a in audit] == [("shop", "removed")]
    assert audit[0]["details"]["events_failed"] == 1
    # Configured again later, it starts afresh: the failed event stays failed.
    await sync_configured(db, make_settings(settings.database_url, callbacks=both))
    assert await db.fetchval("SELECT status FROM callback_events WHERE client = 'shop'") == "failed"
