"""Every statement that moves a task moves it along the transition table, and nothing else.

Each statement is driven as the product runs it: intake (POST), the claim (alone and under
rate limits), the record of every kind of outcome (through `policy.decide`), the
sweeper's lease expiry and requeue, the operator's PATCH and DELETE and the producer's
DELETE from every status, and the statements that change no status (deferral, send
gate, clearing a failed enqueue). The audit events they write are then compared with
`herald.states.TRANSITIONS`: (from, to, actor, reason) of each event is a row, and each
row was made. The record's fence is also probed with every (from, to) pair.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from redis.asyncio import Redis

from herald.config import Settings
from herald.db.intake import clear_enqueued
from herald.db.pool import Pool
from herald.delivery.claim import Claimed, Deferred, Expired, claim, claim_many, open_gates
from herald.delivery.classify import delivered, refused
from herald.delivery.hints import Hints
from herald.delivery.policy import decide
from herald.delivery.ratelimit import RateLimiter
from herald.delivery.record import Transition, record_many
from herald.delivery.sweeper import Sweeper
from herald.queue import RedisQueue
from herald.states import OPERATOR_TARGETS, TRANSITIONS, Actor, TaskStatus, pairs
from tests.conftest import make_settings
from tests.delivery.conftest import insert_task, post

OWNER = "worker:states"
PROBE = "probe"  # the reason of the fence probe's records, compared apart


async def _in(db: Pool, status: TaskStatus, **task: Any) -> int:
    """A task put in `status` under OWNER's lease for attempt 1 (set up, not a transition)."""
    task_id = await insert_task(db, **task)
    await db.execute(
        "UPDATE tasks SET status = $2, attempt = 1, lease_owner = $3,"
        " lease_expires_at = now() + interval '1 hour' WHERE id = $1",
        task_id,
        status.value,
        OWNER,
    )
    return task_id


async def _claim_all(db: Pool) -> dict[int, Claimed | Expired]:
    """Claim every due task (earlier steps leave some due: a migration, a deferral)."""
    return {c.id: c for c in await claim_many(db, OWNER, 3600, 1000)}


async def _statuses(db: Pool) -> dict[int, str]:
    return {r["id"]: r["status"] for r in await db.fetch("SELECT id, status FROM tasks")}


async def _intake(gateway: httpx.AsyncClient, db: Pool, settings: Settings) -> None:
    """Created; and stored already failed: a chat that blocked the bot, a recipient that
    sent /stop (alone and in a batch)."""
    await post(gateway, "states-one", chat_id=7, text="one")
    bot = settings.bot_id
    await db.execute("INSERT INTO chats (bot_id, chat_id, blocked) VALUES ($1, '8', true)", bot)
    await db.execute(
        "INSERT INTO recipients (bot_id, client, external_id, chat_id, subscribed)"
        " VALUES ($1, 'shop', 'stopped', '9', false)",
        bot,
    )
    await post(gateway, "states-blocked", chat_id=8, text="one")
    await post(gateway, "states-stopped", recipient="stopped", text="one")
    response = await gateway.post(
        "/api/tasks/batch",
        json={
            "items": [
                {"idempotency_key": "states-batch", "chat_id": 7, "text": "two"},
                {"idempotency_key": "states-batch-blocked", "chat_id": 8, "text": "two"},
                {"idempotency_key": "states-batch-stopped", "recipient": "stopped", "text": "2"},
            ]
        },
        headers={"Authorization": gateway.headers["X-Writer"]},
    )
    assert response.json()["created"] == 3
    statuses = await db.fetch("SELECT status, last_error FROM tasks ORDER BY id")
    assert [tuple(r) for r in statuses] == [
        ("pending", None),
        ("failed", "recipient_blocked"),
        ("failed", "recipient_unsubscribed"),
        ("pending", None),
        ("failed", "recipient_blocked"),
        ("failed", "recipient_unsubscribed"),
    ]


async def _claims(db: Pool, redis: Redis, settings: Settings) -> None:
    """Claims alone and under rate limits: claimed, or failed as expired; a deferral and
    a send gate that change no status."""
    past = datetime.now(UTC) - timedelta(seconds=1)
    due, expired = await insert_task(db, chat_id=11), await insert_task(db, expires_at=past)
    claimed = await _claim_all(db)
    assert isinstance(claimed[due], Claimed)
    assert isinstance(claimed[expired], Expired)

    # One send a second in all, one per chat: the first claim sends at once, the next
    # (another chat) waits for its slot with its gate closed, a second one for a busy
    # chat is deferred. Priorities fix the order of the picks.
    limits = make_settings(
        settings.database_url,
        queue_name=settings.queue_name,
        rate_global_per_second=1,
        rate_chat_per_second=1,
        rate_chat_max_wait_seconds=0.1,
    )
    limiter = RateLimiter(redis, limits)
    at_once = await insert_task(db, chat_id=12, priority=4)
    expired = await insert_task(db, chat_id=13, priority=3, expires_at=past)
    gated = await insert_task(db, chat_id=14, priority=2)
    deferred = await insert_task(db, chat_id=12, priority=1)
    got = {}
    for _ in range(4):
        result = await claim(db, limiter, OWNER, 3600)
        assert result is not None
        got[result.id] = result
    assert isinstance(got[at_once], Claimed)
    assert not got[at_once].gated
    assert isinstance(got[expired], Expired)
    waiting = got[gated]
    assert isinstance(waiting, Claimed)
    assert waiting.gated
    assert isinstance(got[deferred], Deferred)
    before = await _statuses(db)
    assert before[deferred] == TaskStatus.PENDING
    assert await open_gates(db, OWNER, [(waiting.id, waiting.attempt)]) == [True]
    assert await _statuses(db) == before


async def _records(db: Pool, settings: Settings) -> None:
    """Every kind of outcome, decided by the policy and written by the record."""
    soon = datetime.now(UTC) + timedelta(seconds=30)
    plan = [
        ({}, delivered(1001)),
        ({}, refused(400, "Bad Request: chat not found")),
        ({}, refused(400, "Bad Request: group upgraded", migrate_to="-1009")),
        ({}, refused(429, "Too Many Requests", retry_after=5)),
        ({"max_attempts": 1}, refused(404, "Not Found")),
        ({"expires_at": soon}, refused(429, "Too Many Requests", retry_after=60)),
        ({}, refused(502, "Bad Gateway")),
        ({"delivery": "at_least_once"}, refused(502, "Bad Gateway")),
    ]
    ids = [await insert_task(db, chat_id=100 + i, **task) for i, (task, _) in enumerate(plan)]
    claimed = await _claim_all(db)
    outcomes = []
    for task_id, (_, outcome) in zip(ids, plan, strict=True):
        task = claimed[task_id]
        assert isinstance(task, Claimed)
        outcomes.append((task.id, task.attempt, decide(task, outcome, settings)))
    assert None not in await record_many(db, OWNER, outcomes)
    assert {t.status for _, _, t in outcomes} == {
        TaskStatus.DELIVERED,
        TaskStatus.FAILED,
        TaskStatus.PENDING,
        TaskStatus.UNCERTAIN,
    }


async def _sweeps(db: Pool, redis: Redis, settings: Settings) -> None:
    """Every kind of lease expiry; then a late success of a lost lease's attempt."""
    lost = await insert_task(db, chat_id=201)
    unsent = await insert_task(db, chat_id=202)
    retry = await insert_task(db, chat_id=203, delivery="at_least_once")
    exhausted = await insert_task(db, chat_id=204, delivery="at_least_once", max_attempts=1)
    claimed = await _claim_all(db)
    await db.execute("UPDATE tasks SET send_started = false WHERE id = $1", unsent)
    # Tasks in the other statuses with a stale lease time are not the sweeper's.
    others = [await _in(db, s) for s in TaskStatus if s is not TaskStatus.SENDING]
    stale = [lost, unsent, retry, exhausted, *others]
    await db.execute(
        "UPDATE tasks SET lease_expires_at = now() - interval '1 second' WHERE id = ANY($1)",
        stale,
    )
    sweeper = Sweeper(db, Hints(RedisQueue(redis, settings.queue_name)), settings)
    before = await _statuses(db)
    assert (await sweeper.sweep_once()).leases_expired == 4
    after = await _statuses(db)
    assert [after[t] for t in (lost, unsent, retry, exhausted)] == [
        TaskStatus.UNCERTAIN,
        TaskStatus.PENDING,
        TaskStatus.PENDING,
        TaskStatus.FAILED,
    ]
    assert [after[t] for t in others] == [before[t] for t in others]
    # Again: no lease left to expire, and the requeue pass changes no status.
    assert (await sweeper.sweep_once()).leases_expired == 0
    assert await _statuses(db) == after

    task = claimed[lost]
    assert isinstance(task, Claimed)
    late = decide(task, delivered(2002), settings)
    assert await record_many(db, OWNER, [(lost, task.attempt, late)]) == [TaskStatus.UNCERTAIN]


async def _operators(db: Pool, gateway: httpx.AsyncClient) -> None:
    """PATCH to every target from every status; DELETE by an operator and by the producer."""
    operator = {"Authorization": gateway.headers["X-Operator"]}
    writer = {"Authorization": gateway.headers["X-Writer"]}
    for frm, to in itertools.product(TaskStatus, OPERATOR_TARGETS):
        task_id = await _in(db, frm)
        response = await gateway.patch(
            f"/api/tasks/{task_id}", json={"status": to}, headers=operator
        )
        assert response.status_code in (200, 409), response.text
    for frm, headers in itertools.product(TaskStatus, (operator, writer)):
        task_id = await _in(db, frm, client="shop")
        response = await gateway.delete(f"/api/tasks/{task_id}", headers=headers)
        assert response.status_code in (200, 409), response.text


async def _record_fence(db: Pool) -> set[tuple[str, str]]:
    """Every (from, to) offered to the record at once: the pairs its fence let through."""
    probes = {
        await _in(db, frm): (frm, to) for frm, to in itertools.product(TaskStatus, TaskStatus)
    }
    outcomes = [(i, 1, Transition(to, PROBE)) for i, (_, to) in probes.items()]
    replaced = await record_many(db, OWNER, outcomes)
    return {probes[i] for (i, _, _), r in zip(outcomes, replaced, strict=True) if r is not None}


async def test_every_statement_moves_tasks_only_along_the_table(
    db: Pool, gateway: httpx.AsyncClient, redis: Redis, settings: Settings
) -> None:
    await _intake(gateway, db, settings)
    await _claims(db, redis, settings)
    await _records(db, settings)
    await _sweeps(db, redis, settings)
    await _operators(db, gateway)
    before = await _statuses(db)
    await clear_enqueued(db, list(before))
    assert await _statuses(db) == before
    fenced = await _record_fence(db)

    rows = await db.fetch("SELECT actor, from_status, to_status, reason FROM task_events")
    made = {
        (r["from_status"], r["to_status"], Actor.of(r["actor"]), r["reason"])
        for r in rows
        if r["reason"] != PROBE
    }
    table = {(e.frm, e.to, e.actor, e.reason) for e in TRANSITIONS}
    assert made - table == set(), "transitions made that the table lacks"
    assert table - made == set(), "rows of the table that no statement made"
    assert fenced == pairs("record")
