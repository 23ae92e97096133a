"""The `telegram_emulator` fixture starts every test clean, with rate limits off."""

from __future__ import annotations

from aiogram import Bot

from herald.emulator.testing import EmulatorHandle


async def test_a_test_may_change_everything(telegram_emulator: EmulatorHandle, bot: Bot) -> None:
    await bot.send_message(2, "left behind")
    telegram_emulator.set_limits(enabled=True)
    telegram_emulator.set_faults(rate_429=0.5, seed=1)
    telegram_emulator.block_chat(1)
    assert telegram_emulator.messages()


async def test_the_next_test_starts_clean(telegram_emulator: EmulatorHandle, bot: Bot) -> None:
    assert telegram_emulator.messages() == []
    assert telegram_emulator.received == []
    assert not telegram_emulator.limits.enabled
    assert not telegram_emulator.faults.active
    sent = [await bot.send_message(1, str(i)) for i in range(3)]  # chat 1 no longer blocked
    assert [m.message_id for m in sent] == [1, 2, 3]
