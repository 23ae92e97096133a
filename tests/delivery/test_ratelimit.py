"""The shared rate limiter: even spacing, horizons, pauses, deferral without a slot."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from redis.asyncio import Redis

from herald.config import Settings
from herald.delivery.claim import Claimed, Deferred, claim
from herald.delivery.ratelimit import RateLimiter
from herald.states import TaskStatus
from tests.conftest import make_settings
from tests.delivery.conftest import events, insert_task, task_row


def limiter(redis: Redis, settings: Settings, **rates: Any) -> RateLimiter:
    values: dict[str, Any] = {
        "rate_global_per_second": 0,
        "rate_chat_per_second": 0,
        "rate_group_per_minute": 0,
        "queue_name": settings.queue_name,
    }
    values.update(rates)
    return RateLimiter(redis, make_settings(settings.database_url, **values))


async def test_global_slots_are_spaced_evenly(redis: Redis, settings: Settings) -> None:
    rl = limiter(redis, settings, rate_global_per_second=10)
    grants = [await rl.reserve(str(chat)) for chat in range(5)]
    assert all(g.ok for g in grants)
    waits = [g.wait for g in grants]
    assert waits[0] < 0.02
    gaps = [b - a for a, b in itertools.pairwise(waits)]
    assert all(0.09 < gap < 0.11 for gap in gaps), gaps


async def test_a_busy_chat_is_refused_past_its_horizon_and_reserves_nothing(
    redis: Redis, settings: Settings
) -> None:
    rl = limiter(
        redis,
        settings,
        rate_chat_per_second=1,
        rate_global_per_second=10,
        rate_chat_max_wait_seconds=0.5,
    )
    assert (await rl.reserve("5")).ok
    refused = await rl.reserve("5")
    assert not refused.ok
    assert refused.scope == "chat"
    assert refused.wait == 0.5
    # Another chat is not held back, and the refusal took no bot-wide slot (0.1 s each).
    other = await rl.reserve("6")
    assert other.ok
    assert 0.05 < other.wait <= 0.1


async def test_groups_have_their_own_per_minute_scope(redis: Redis, settings: Settings) -> None:
    rl = limiter(redis, settings, rate_group_per_minute=20, rate_chat_max_wait_seconds=1)
    assert [s.name for s in rl.scopes("-100")] == ["group"]
    assert [s.name for s in rl.scopes("100")] == []
    assert (await rl.reserve("-100")).ok
    refused = await rl.reserve("-100")
    assert (refused.ok, refused.scope) == (False, "group")
    assert refused.wait == 1  # the group's horizon: it looks again then


async def test_a_429_pauses_the_chat(redis: Redis, settings: Settings) -> None:
    rl = limiter(redis, settings, rate_chat_per_second=10)
    await rl.pause("9", 0.5)
    assert not (await rl.reserve("9")).ok
    assert (await rl.reserve("10")).ok
    await asyncio.sleep(0.5)
    assert (await rl.reserve("9")).ok


async def test_a_chat_holds_one_send_in_flight_until_its_answer(
    redis: Redis, settings: Settings
) -> None:
    rl = limiter(redis, settings, rate_chat_per_second=10)  # 0.1 s apart
    assert (await rl.reserve("4")).ok
    await asyncio.sleep(0.3)  # a slow send: still no answer
    refused = await rl.reserve("4")
    assert (refused.ok, refused.scope) == (False, "chat")
    assert refused.wait <= 0.05  # looks again within the horizon, not after the hold
    await rl.sent("4")
    assert not (await rl.reserve("4")).ok  # one interval after the answer
    await asyncio.sleep(0.16)
    assert (await rl.reserve("4")).ok


async def test_limits_are_shared_by_every_limiter_on_the_queue(
    redis: Redis, settings: Settings
) -> None:
    a = limiter(redis, settings, rate_global_per_second=2)
    b = limiter(redis, settings, rate_global_per_second=2)
    first, second = await asyncio.gather(a.reserve("1"), b.reserve("2"))
    assert sorted([round(first.wait, 1), round(second.wait, 1)]) == [0.0, 0.5]


async def test_a_task_that_cannot_get_a_token_is_deferred_not_claimed(
    db: Any, redis: Redis, settings: Settings
) -> None:
    rl = limiter(redis, settings, rate_chat_per_second=1, rate_chat_max_wait_seconds=0.1)
    first = await insert_task(db, chat_id=8)
    second = await insert_task(db, chat_id=8)
    got = await claim(db, rl, "worker:t", 30)
    assert isinstance(got, Claimed)
    assert got.id == first
    deferred = await claim(db, rl, "worker:t", 30)
    assert isinstance(deferred, Deferred)
    assert deferred.id == second
    row = await task_row(db, second)
    # Still pending, attempt untouched, due again when the chat frees; no audit row
    # besides its creation.
    assert (row["status"], row["attempt"], row["lease_owner"]) == (TaskStatus.PENDING, 0, None)
    assert row["next_attempt_at"] == row["enqueued_at"]
    assert await events(db, second) == [(None, "pending", "created")]
    assert await claim(db, rl, "worker:t", 30) is None
    assert deferred.wait >= 0.1  # looks again after the chat's horizon
    assert deferred.scope == "chat"
