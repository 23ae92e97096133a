"""Telegram's flood limits: per chat, per group, per bot, enforced at the configured rates."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramRetryAfter

from herald.emulator.testing import EmulatorHandle


async def _try(bot: Bot, chat_id: int) -> int | None:
    """None when sent, else the retry_after Telegram asked for."""
    try:
        await bot.send_message(chat_id, "x")
    except TelegramRetryAfter as exc:
        return exc.retry_after
    return None


async def test_limits_off_let_everything_through(
    telegram_emulator: EmulatorHandle, bot: Bot
) -> None:
    results = await asyncio.gather(*(_try(bot, 1) for _ in range(100)))
    assert results == [None] * 100


async def test_one_message_per_second_per_chat(telegram_emulator: EmulatorHandle, bot: Bot) -> None:
    telegram_emulator.set_limits(enabled=True)
    assert [await _try(bot, 1) for _ in range(3)] == [None, 1, 1]
    assert await _try(bot, 2) is None  # another chat has its own budget
    assert [m["chat_id"] for m in telegram_emulator.messages()] == [1, 2]
    assert [r["outcome"] for r in telegram_emulator.received] == [
        "ok",
        "rate_limited",
        "rate_limited",
        "ok",
    ]


async def test_twenty_messages_per_minute_per_group(
    telegram_emulator: EmulatorHandle, bot: Bot
) -> None:
    telegram_emulator.set_limits(per_chat_per_second=0, per_group_per_minute=20)
    results = [await _try(bot, -5) for _ in range(25)]
    assert results == [None] * 20 + [3] * 5  # the next slot opens 60/20 s later
    assert await _try(bot, 5) is None  # private chats are not groups
    assert await _try(bot, -1000000000005) is None  # a supergroup has its own budget


async def test_thirty_messages_per_second_in_total(
    telegram_emulator: EmulatorHandle, bot: Bot
) -> None:
    telegram_emulator.set_limits(per_chat_per_second=0, global_per_second=30)
    started = time.monotonic()
    results = await asyncio.gather(*(_try(bot, chat) for chat in range(1, 41)))
    elapsed = time.monotonic() - started
    sent = results.count(None)
    assert 30 <= sent <= 30 + int(30 * elapsed) + 1
    assert set(results) == {None, 1}


@pytest.mark.parametrize(
    ("limits", "rate", "burst", "chat_id"),
    [
        ({"per_chat_per_second": 0, "global_per_second": 80}, 80.0, 80, None),
        ({"per_chat_per_second": 20, "global_per_second": 0}, 20.0, 1, 7),
    ],
)
async def test_sustained_rate_matches_the_configured_one(
    telegram_emulator: EmulatorHandle,
    bot: Bot,
    limits: dict[str, float],
    rate: float,
    burst: int,
    chat_id: int | None,
) -> None:
    """A client sending far faster than allowed gets exactly burst + rate x time through."""
    telegram_emulator.set_limits(**limits)
    deadline = time.monotonic() + 1.0
    attempts = 0

    async def sender() -> None:
        # Four senders in a loop keep requests arriving all the time.
        nonlocal attempts
        while time.monotonic() < deadline:
            attempts += 1
            await _try(bot, chat_id or attempts)

    await asyncio.gather(*(sender() for _ in range(4)))
    accepted = telegram_emulator.messages()
    span = accepted[-1]["time"] - accepted[0]["time"]
    assert attempts > 2 * len(accepted)
    assert abs(len(accepted) - (burst + rate * span)) <= 2


async def test_a_client_at_the_rate_never_sees_429(
    telegram_emulator: EmulatorHandle, bot: Bot
) -> None:
    telegram_emulator.set_limits(per_chat_per_second=20)
    # The pacing is the point of this test: one send every 1/20 s to one chat.
    results = []
    for _ in range(15):
        results.append(await _try(bot, 3))
        await asyncio.sleep(1 / 20)
    assert results == [None] * 15
