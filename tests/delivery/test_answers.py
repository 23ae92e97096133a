"""A definite answer is classified by what it says, not by whether aiogram parses all of it
(issue 12, item 1).

The emulator's `mistyped` fault answers as a Bot API newer than aiogram might: an extra
field and a field of a type aiogram's models refuse, so aiogram raises `ClientDecodeError`
for every answer, successes and errors alike. The worker's pipeline (real aiogram, real
PostgreSQL) still reads `ok`, `message_id`, `error_code` and `parameters` from it.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from herald.emulator.testing import EmulatorHandle
from herald.states import TaskStatus
from tests.delivery.conftest import events, insert_task, make_due, task_row


async def test_mistyped_successes_are_delivered_with_their_message_id(
    db: Any, tg: EmulatorHandle, make_deliverer: Any
) -> None:
    tg.set_faults(rate_mistyped=1.0)
    deliverer = await make_deliverer()
    ids = [await insert_task(db, chat_id=70 + i % 3, text=f"n{i}") for i in range(12)]
    results = await asyncio.gather(*(deliverer.handle(t) for t in ids))
    assert results == [TaskStatus.DELIVERED] * 12
    assert all(r["outcome"] == "ok_mistyped" for r in tg.received)
    sent = {m["text"]: m["message_id"] for m in tg.messages()}
    for i, task_id in enumerate(ids):
        row = await task_row(db, task_id)
        assert (row["status"], row["telegram_message_id"]) == ("delivered", sent[f"n{i}"])
        assert row["last_error"] is None


async def test_mistyped_429_is_flow_control_and_retried_after_retry_after(
    db: Any, tg: EmulatorHandle, make_deliverer: Any
) -> None:
    tg.set_faults(rate_429=1.0, retry_after=1, rate_mistyped=1.0)
    task_id = await insert_task(db, chat_id=5)
    deliverer = await make_deliverer()
    assert await deliverer.handle(task_id) is TaskStatus.PENDING
    row = await task_row(db, task_id)
    assert (row["last_error_code"], row["failures"]) == (429, 0)
    assert "Too Many Requests" in row["last_error"]
    wait = (row["next_attempt_at"] - datetime.now(UTC)).total_seconds()
    assert 0.5 < wait <= 1.0
    assert await deliverer.handle(task_id) is None  # not due before retry_after
    tg.set_faults(rate_mistyped=1.0)
    await asyncio.sleep(wait)
    assert await deliverer.handle(task_id) is TaskStatus.DELIVERED
    assert len(tg.messages(5)) == 1


async def test_mistyped_refusals_fail_or_migrate_by_their_error_code(
    db: Any, tg: EmulatorHandle, make_deliverer: Any
) -> None:
    tg.block_chat(403)
    tg.set_missing(400)
    tg.migrate_chat(-500, -1000500)
    tg.set_faults(rate_mistyped=1.0)
    deliverer = await make_deliverer()

    blocked = await insert_task(db, chat_id=403)
    assert await deliverer.handle(blocked) is TaskStatus.FAILED
    row = await task_row(db, blocked)
    assert (row["last_error_code"], row["failures"]) == (403, 1)
    assert "blocked" in row["last_error"]

    missing = await insert_task(db, chat_id=400)
    assert await deliverer.handle(missing) is TaskStatus.FAILED
    assert "chat not found" in (await task_row(db, missing))["last_error"]

    migrated = await insert_task(db, chat_id=-500)
    assert await deliverer.handle(migrated) is TaskStatus.PENDING
    assert await deliverer.handle(migrated) is TaskStatus.DELIVERED
    assert (await task_row(db, migrated))["migrated_chat_id"] == "-1000500"
    assert len(tg.messages(-1000500)) == 1


async def test_mistyped_5xx_and_garbage_are_uncertain_and_not_resent(
    db: Any, tg: EmulatorHandle, make_deliverer: Any
) -> None:
    deliverer = await make_deliverer()
    tg.set_faults(rate_500=1.0, rate_mistyped=1.0)
    server_error = await insert_task(db, chat_id=81)
    assert await deliverer.handle(server_error) is TaskStatus.UNCERTAIN
    tg.set_faults(rate_garbage=1.0)
    garbage = await insert_task(db, chat_id=82)
    assert await deliverer.handle(garbage) is TaskStatus.UNCERTAIN
    row = await task_row(db, garbage)
    assert "says neither" in row["last_error"]
    tg.set_faults()
    await make_due(db, garbage)
    assert await deliverer.handle(garbage) is None
    # The garbage answer came after the message was accepted: it may have been, and was, sent.
    assert [m["chat_id"] for m in tg.messages()] == [82]
    assert [e[1] for e in await events(db, garbage)] == ["pending", "sending", "uncertain"]
