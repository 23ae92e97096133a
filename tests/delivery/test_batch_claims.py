"""Claims with rate limits on, in batches: one transaction and one Redis script reserve the
slots of many tasks at once, and keep Telegram's limits, priorities and the send gate."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import defaultdict
from typing import Any

from redis.asyncio import Redis

from herald.config import Settings
from herald.delivery.claim import Claimed, Deferred, Later, claim_limited
from herald.emulator.testing import EmulatorHandle
from herald.states import TaskStatus
from tests.conftest import make_settings
from tests.delivery.conftest import events, insert_task, make_due, task_row
from tests.delivery.test_gate import expire_lease, sweeper
from tests.delivery.test_ratelimit import limiter
from tests.delivery.workers import wait_for

OWNER = "worker:batch"


# Ten sends a second in all, one per chat, 20 a minute per group.
RATES: dict[str, Any] = {
    "rate_global_per_second": 10,
    "rate_chat_per_second": 1,
    "rate_group_per_minute": 20,
}


async def test_one_batch_gives_each_chat_one_slot_and_spaces_the_bot_wide_ones(
    db: Any, redis: Redis, settings: Settings
) -> None:
    rl = limiter(redis, settings, **RATES, rate_chat_max_wait_seconds=0.1)
    # Three tasks for chat 1, two for chat 2, two for group -5, one each for chats 3, 4.
    chats = [1, 1, 1, 2, 2, -5, -5, 3, 4]
    ids = [await insert_task(db, chat_id=c, priority=-i) for i, c in enumerate(chats)]
    results = await claim_limited(db, rl, OWNER, 30, 20)
    by_id = dict(zip(ids, results, strict=True))
    claimed = {c: r for c, r in zip(chats, results, strict=True) if isinstance(r, Claimed)}
    # One send per chat (a group's own cell is the chat's, held too); the others wait
    # for their scope in PostgreSQL.
    assert sorted(claimed) == [-5, 1, 2, 3, 4]
    deferred = [r for r in results if isinstance(r, Deferred)]
    assert sorted((d.id, d.scope) for d in deferred) == sorted(
        [(ids[1], "chat"), (ids[2], "chat"), (ids[4], "chat"), (ids[6], "chat")]
    )
    for d in deferred:
        row = await task_row(db, d.id)
        assert (row["status"], row["attempt"]) == ("pending", 0)
        assert row["next_attempt_at"] == row["enqueued_at"]
    # The claimed sends are spaced 0.1 s apart (10/s), in priority order.
    waits = [by_id[i].wait for i in ids if isinstance(by_id[i], Claimed)]
    assert waits[0] < 0.02
    gaps = [b - a for a, b in itertools.pairwise(waits)]
    assert all(0.09 < gap < 0.11 for gap in gaps), gaps
    # A wait long enough to be lost in closes the send gate; sending at once leaves none.
    assert [by_id[i].gated for i in ids if isinstance(by_id[i], Claimed)] == [
        False,
        True,
        True,
        True,
        True,
    ]
    assert [e[1] for e in await events(db, ids[0])] == ["pending", "sending"]


async def test_tasks_beyond_the_horizon_are_left_pending_untouched(
    db: Any, redis: Redis, settings: Settings
) -> None:
    rl = limiter(redis, settings, **RATES, rate_max_wait_seconds=0.25)
    ids = [await insert_task(db, chat_id=100 + i) for i in range(8)]
    results = await claim_limited(db, rl, OWNER, 30, 8)
    claimed = [r for r in results if isinstance(r, Claimed)]
    later = [r for r in results if isinstance(r, Later)]
    # 10/s and a 0.25 s horizon: slots at 0, 0.1 and 0.2 s; the rest look again later,
    # one slot apart.
    assert len(claimed) == 3
    assert len(later) == 5
    assert [round(r.wait, 1) for r in later] == [0.0, 0.1, 0.2, 0.3, 0.4] or all(
        b.wait > a.wait for a, b in itertools.pairwise(later)
    )
    for task_id in ids[3:]:
        row = await task_row(db, task_id)
        assert (row["status"], row["attempt"], row["lease_owner"]) == ("pending", 0, None)
        assert await events(db, task_id) == [(None, "pending", "created")]


async def test_batch_claims_under_telegrams_limits_get_no_429_and_space_every_chat(
    db: Any, tg: EmulatorHandle, start_worker: Any, enqueue: Any
) -> None:
    tg.set_limits(enabled=True, per_chat_per_second=1, global_per_second=30)
    # Four busy chats (six tasks each) among 60 chats of one task: the batches hold
    # several tasks of one chat, and the whole bot runs at its limit.
    chats = [3000 + i % 4 for i in range(24)] + [4000 + i for i in range(60)]
    ids = [await insert_task(db, chat_id=c, text=f"m{i}") for i, c in enumerate(chats)]
    await start_worker(
        workers=2, rate_global_per_second=30, rate_chat_per_second=1, rate_group_per_minute=20
    )
    await enqueue(ids)
    await tg.wait_messages(len(ids), timeout=60)
    assert [r for r in tg.received if r["status"] == 429] == []
    assert sorted(m["text"] for m in tg.messages()) == sorted(f"m{i}" for i in range(len(ids)))
    times: dict[int, list[float]] = defaultdict(list)
    for m in tg.messages():
        times[m["chat_id"]].append(m["time"])
    for chat, sent in times.items():
        gaps = [b - a for a, b in itertools.pairwise(sorted(sent))]
        assert all(gap >= 1.0 for gap in gaps), (chat, gaps)
    every = sorted(m["time"] for m in tg.messages())
    # Never more than 30 in any second (the emulator's bucket would have said 429).
    assert (
        max(sum(1 for t in every[i : i + 31] if t - every[i] < 1.0) for i in range(len(every)))
        <= 31
    )


async def test_a_higher_priority_overtakes_a_backlog_within_the_horizon(
    db: Any, tg: EmulatorHandle, start_worker: Any, enqueue: Any
) -> None:
    tg.set_limits(enabled=True, per_chat_per_second=1, global_per_second=30)
    # 10/s and 300 tasks: 30 s of backlog. Two processes of 100 messages each reserved
    # up to 10 s ahead before the horizon (now 1 s) bounded their claims.
    backlog = [await insert_task(db, chat_id=5000 + i, text=f"b{i}") for i in range(300)]
    await start_worker(workers=2, rate_global_per_second=10, rate_chat_per_second=1)
    await enqueue(backlog)
    await tg.wait_messages(20, timeout=30)
    urgent = await insert_task(db, chat_id=6000, text="urgent", priority=10)
    posted = time.time()
    await enqueue([urgent])
    [message] = await tg.wait_messages(1, timeout=10, chat_id=6000)
    # The horizon (1 s) and a pick; without it, behind 10 s of reserved slots.
    assert message["time"] - posted < 3.0
    still = await db.fetchval("SELECT count(*) FROM tasks WHERE status = 'pending'")
    assert still > 200  # it overtook the backlog, which goes on
    assert [r for r in tg.received if r["status"] == 429] == []


async def test_the_gate_holds_for_waiting_claims_of_one_batch_the_sweeper_took_back(
    db: Any, redis: Redis, settings: Settings, tg: EmulatorHandle, make_deliverer: Any
) -> None:
    slow = {
        "rate_global_per_second": 1,
        "rate_chat_per_second": 1,
        "rate_group_per_minute": 20,
        "rate_max_wait_seconds": 10,
    }
    deliverer = await make_deliverer(**slow)
    ids = [await insert_task(db, chat_id=70 + i, text=f"g{i}", priority=-i) for i in range(3)]
    # Three messages at once: one batch claims all three, the first sends at once, the
    # other two wait 1 and 2 s for their slots with their gates closed.
    handled = [asyncio.create_task(deliverer.handle(task_id)) for task_id in ids]
    await wait_for(lambda: _sending(db, 2), 5, "two claims waiting for their slots")
    assert await handled[0] is TaskStatus.DELIVERED
    # Their worker looks dead: the leases run out during the waits and the sweeper takes
    # both tasks back, as never sent.
    for task_id in ids[1:]:
        await expire_lease(db, task_id)
    s = make_settings(settings.database_url, queue_name=settings.queue_name, **slow)
    assert (await sweeper(db, redis, s).sweep_once()).leases_expired == 2
    assert [await t for t in handled[1:]] == [TaskStatus.PENDING, TaskStatus.PENDING]
    assert [m["text"] for m in tg.messages()] == ["g0"]
    for task_id in ids[1:]:
        row = await task_row(db, task_id)
        assert (row["status"], row["attempt"]) == ("pending", 1)
        assert "nothing was sent" in row["last_error"]

    # Claimed again once their chats are free (one interval after the closed gates let
    # them go), each is sent once.
    await asyncio.sleep(1.1)
    for task_id in ids[1:]:
        await make_due(db, task_id)
    again = await asyncio.gather(*(deliverer.handle(task_id) for task_id in ids[1:]))
    assert again == [TaskStatus.DELIVERED, TaskStatus.DELIVERED]
    assert sorted(m["text"] for m in tg.messages()) == ["g0", "g1", "g2"]


async def _sending(db: Any, n: int) -> bool:
    got = await db.fetchval(
        "SELECT count(*) FROM tasks WHERE status = 'sending' AND send_started = false"
    )
    return bool(got == n)
