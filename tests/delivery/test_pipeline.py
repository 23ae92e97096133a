"""Claim, send and record in one process against the emulator: every Telegram outcome."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from herald.delivery.claim import Claimed, claim, claim_many
from herald.delivery.record import Transition, record_many
from herald.emulator.testing import EmulatorHandle
from herald.states import TaskStatus
from tests.delivery.conftest import events, insert_task, make_due, task_row
from tests.support.processes import free_port


async def test_delivered_once_with_message_id_and_events(
    db: Any, tg: EmulatorHandle, make_deliverer: Any
) -> None:
    task_id = await insert_task(db, chat_id=42, text="hi there")
    deliverer = await make_deliverer()
    assert await deliverer.handle(task_id) is TaskStatus.DELIVERED
    sent = tg.messages(42)
    assert [m["text"] for m in sent] == ["hi there"]
    row = await task_row(db, task_id)
    assert (row["status"], row["attempt"]) == ("delivered", 1)
    assert row["telegram_message_id"] == sent[0]["message_id"]
    assert row["lease_owner"] is None
    assert await events(db, task_id) == [
        (None, "pending", "created"),
        ("pending", "sending", "claimed"),
        ("sending", "delivered", "delivered"),
    ]


async def test_nothing_due_means_nothing_sent(
    db: Any, tg: EmulatorHandle, make_deliverer: Any
) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    task_id = await insert_task(db, send_at=later)
    deliverer = await make_deliverer()
    assert await deliverer.handle(task_id) is None
    assert tg.received == []
    assert (await task_row(db, task_id))["status"] == "pending"


async def test_same_hint_twenty_times_and_two_workers_at_once_send_one_message(
    db: Any, tg: EmulatorHandle, make_deliverer: Any
) -> None:
    task_id = await insert_task(db, chat_id=7)
    first, second = await make_deliverer(), await make_deliverer()
    results = await asyncio.gather(*(d.handle(task_id) for _ in range(10) for d in (first, second)))
    assert results.count(TaskStatus.DELIVERED) == 1
    assert results.count(None) == 19
    assert len(tg.messages(7)) == 1
    assert (await task_row(db, task_id))["attempt"] == 1


async def test_higher_priority_first_under_backlog(
    db: Any, tg: EmulatorHandle, make_deliverer: Any
) -> None:
    low = await insert_task(db, chat_id=1, text="low", priority=0)
    high = await insert_task(db, chat_id=1, text="high", priority=5)
    deliverer = await make_deliverer()
    # The hint names the low-priority task; the high one is due too and goes first.
    await deliverer.handle(low)
    await deliverer.handle(low)
    assert [m["text"] for m in tg.messages(1)] == ["high", "low"]
    assert {(await task_row(db, t))["status"] for t in (low, high)} == {"delivered"}


async def test_429_waits_retry_after_then_delivers(
    db: Any, tg: EmulatorHandle, make_deliverer: Any
) -> None:
    tg.set_faults(rate_429=1.0, retry_after=1)
    task_id = await insert_task(db, chat_id=5)
    deliverer = await make_deliverer()
    assert await deliverer.handle(task_id) is TaskStatus.PENDING
    row = await task_row(db, task_id)
    assert (row["last_error_code"], row["status"]) == (429, "pending")
    wait = (row["next_attempt_at"] - datetime.now(UTC)).total_seconds()
    assert 0.5 < wait <= 1.0
    # Not due before retry_after.
    assert await deliverer.handle(task_id) is None
    tg.set_faults()
    await asyncio.sleep(wait)
    assert await deliverer.handle(task_id) is TaskStatus.DELIVERED
    assert len(tg.messages(5)) == 1
    assert [e[1] for e in await events(db, task_id)] == [
        "pending",
        "sending",
        "pending",
        "sending",
        "delivered",
    ]


async def test_400_fails_and_is_not_retried(
    db: Any, tg: EmulatorHandle, make_deliverer: Any
) -> None:
    tg.set_missing(404404)
    task_id = await insert_task(db, chat_id=404404)
    deliverer = await make_deliverer()
    assert await deliverer.handle(task_id) is TaskStatus.FAILED
    row = await task_row(db, task_id)
    assert (row["status"], row["last_error_code"]) == ("failed", 400)
    assert "chat not found" in row["last_error"]
    await make_due(db, task_id)
    assert await deliverer.handle(task_id) is None
    assert len([r for r in tg.received if r["method"].lower() == "sendmessage"]) == 1


async def test_403_blocked_fails(db: Any, tg: EmulatorHandle, make_deliverer: Any) -> None:
    tg.block_chat(403)
    task_id = await insert_task(db, chat_id=403)
    deliverer = await make_deliverer()
    assert await deliverer.handle(task_id) is TaskStatus.FAILED
    row = await task_row(db, task_id)
    assert (row["status"], row["last_error_code"]) == ("failed", 403)
    assert "blocked" in row["last_error"]


async def test_5xx_drop_and_timeout_are_uncertain_and_not_resent(
    db: Any, tg: EmulatorHandle, make_deliverer: Any
) -> None:
    deliverer = await make_deliverer(telegram_timeout=0.5)
    for i, fault in enumerate(
        [{"rate_500": 1.0}, {"rate_502": 1.0}, {"rate_drop": 1.0}, {"rate_timeout": 1.0}]
    ):
        tg.set_faults(**fault, timeout_seconds=1.0)
        task_id = await insert_task(db, chat_id=900 + i)
        assert await deliverer.handle(task_id) is TaskStatus.UNCERTAIN, fault
        assert (await task_row(db, task_id))["status"] == "uncertain"
    tg.set_faults()
    # Nothing is due: an uncertain task waits for an operator.
    assert await deliverer.handle(0) is None
    # The drop and the timeout reached Telegram once; 5xx did not; none was sent again.
    assert {m["chat_id"] for m in tg.messages()} == {902, 903}
    assert len(tg.messages()) == 2


async def test_at_least_once_retries_an_ambiguous_outcome(
    db: Any, tg: EmulatorHandle, make_deliverer: Any
) -> None:
    tg.set_faults(rate_drop=1.0)
    task_id = await insert_task(db, chat_id=77, delivery="at_least_once")
    deliverer = await make_deliverer()
    assert await deliverer.handle(task_id) is TaskStatus.PENDING
    tg.set_faults()
    await make_due(db, task_id)
    assert await deliverer.handle(task_id) is TaskStatus.DELIVERED
    # At least once: the recipient got it twice, as the task asked for.
    assert len(tg.messages(77)) == 2


async def test_connection_refused_is_retried_then_delivered(
    db: Any, tg: EmulatorHandle, make_deliverer: Any
) -> None:
    task_id = await insert_task(db, chat_id=31)
    down = await make_deliverer(telegram_api_url=f"http://127.0.0.1:{free_port()}")
    assert await down.handle(task_id) is TaskStatus.PENDING
    row = await task_row(db, task_id)
    assert (row["status"], row["attempt"]) == ("pending", 1)
    assert "ClientConnectorError" in row["last_error"]
    await make_due(db, task_id)
    up = await make_deliverer()
    assert await up.handle(task_id) is TaskStatus.DELIVERED
    assert len(tg.messages(31)) == 1
    assert (await task_row(db, task_id))["attempt"] == 2


async def test_attempts_exhausted_fail(db: Any, make_deliverer: Any) -> None:
    task_id = await insert_task(db, chat_id=32, max_attempts=2)
    down = await make_deliverer(telegram_api_url=f"http://127.0.0.1:{free_port()}")
    assert await down.handle(task_id) is TaskStatus.PENDING
    await make_due(db, task_id)
    assert await down.handle(task_id) is TaskStatus.FAILED
    assert (await task_row(db, task_id))["attempt"] == 2


async def test_expired_task_fails_without_a_send(
    db: Any, tg: EmulatorHandle, make_deliverer: Any
) -> None:
    past = datetime.now(UTC) - timedelta(seconds=1)
    task_id = await insert_task(db, expires_at=past)
    deliverer = await make_deliverer()
    assert await deliverer.handle(task_id) is TaskStatus.FAILED
    row = await task_row(db, task_id)
    assert (row["status"], row["last_error"]) == ("failed", "expired")
    assert tg.received == []
    assert await events(db, task_id) == [
        (None, "pending", "created"),
        ("pending", "failed", "expired"),
    ]


async def test_group_upgraded_to_supergroup_is_sent_to_the_new_id(
    db: Any, tg: EmulatorHandle, make_deliverer: Any
) -> None:
    tg.migrate_chat(-500, -1000500)
    task_id = await insert_task(db, chat_id=-500)
    deliverer = await make_deliverer()
    assert await deliverer.handle(task_id) is TaskStatus.PENDING
    assert await deliverer.handle(task_id) is TaskStatus.DELIVERED
    assert len(tg.messages(-1000500)) == 1
    assert tg.messages(-500) == []
    row = await task_row(db, task_id)
    assert (row["migrated_chat_id"], row["chat_id"]) == ("-1000500", "-500")


async def record(
    pool: Any, task_id: int, attempt: int, owner: str, transition: Transition
) -> str | None:
    """One outcome through the product's record_many: the status it replaced, or None."""
    return (await record_many(pool, owner, [(task_id, attempt, transition)]))[0]


async def test_record_is_fenced_by_attempt_and_owner_but_keeps_a_late_success(db: Any) -> None:
    task_id = await insert_task(db)
    claimed = await claim(db, None, "worker:a", 30)
    assert isinstance(claimed, Claimed)
    assert claimed.id == task_id
    failed = Transition(TaskStatus.FAILED, "rejected")
    # Another owner, or another attempt, changes nothing.
    assert await record(db, task_id, 1, "worker:b", failed) is None
    assert await record(db, task_id, 2, "worker:a", failed) is None
    # The sweeper gave up on the attempt; then Telegram's definite answer arrives.
    await db.execute("UPDATE tasks SET status = 'uncertain' WHERE id = $1", task_id)
    assert await record(db, task_id, 1, "worker:a", failed) is None
    done = Transition(TaskStatus.DELIVERED, "delivered", message_id=99)
    assert await record(db, task_id, 1, "worker:a", done) == "uncertain"
    row = await task_row(db, task_id)
    assert (row["status"], row["telegram_message_id"]) == ("delivered", 99)


async def test_one_statement_records_many_outcomes_each_under_its_own_fence(db: Any) -> None:
    ids = [await insert_task(db, chat_id=60 + i) for i in range(3)]
    claimed = await claim_many(db, "worker:a", 30, 3)
    assert sorted(c.id for c in claimed) == ids
    done = Transition(TaskStatus.DELIVERED, "delivered", message_id=7)
    retry = Transition(TaskStatus.PENDING, "retry", error_code=429, retry_in=5.0)
    results = await record_many(
        db,
        "worker:a",
        [(ids[0], 1, done), (ids[1], 2, done), (ids[2], 1, retry)],  # ids[1]: wrong attempt
    )
    assert results == ["sending", None, "sending"]
    rows = [await task_row(db, i) for i in ids]
    assert [r["status"] for r in rows] == ["delivered", "sending", "pending"]
    assert rows[2]["next_attempt_at"] == rows[2]["enqueued_at"]
    assert (await events(db, ids[2]))[-1] == ("sending", "pending", "retry")
