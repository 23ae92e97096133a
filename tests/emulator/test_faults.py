"""Injected faults: each one as aiogram sees it, and their rates for a seed; answers with
extra and mistyped fields, and answers that say nothing."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import aiohttp
import pytest
from aiogram import Bot
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)

from herald.emulator.options import FaultConfig, OptionError
from herald.emulator.testing import EmulatorHandle
from tests.emulator.conftest import make_bot


async def test_fault_429_carries_retry_after(telegram_emulator: EmulatorHandle, bot: Bot) -> None:
    telegram_emulator.set_faults(rate_429=1.0, retry_after=7)
    with pytest.raises(TelegramRetryAfter) as caught:
        await bot.send_message(1, "hi")
    assert caught.value.retry_after == 7
    assert telegram_emulator.messages() == []
    assert telegram_emulator.received[-1]["outcome"] == "fault_429"


@pytest.mark.parametrize(("rate", "status"), [("rate_500", 500), ("rate_502", 502)])
async def test_fault_5xx_is_a_server_error(
    telegram_emulator: EmulatorHandle, bot: Bot, rate: str, status: int
) -> None:
    telegram_emulator.set_faults(**{rate: 1.0})
    with pytest.raises(TelegramServerError):
        await bot.send_message(1, "hi")
    assert telegram_emulator.messages() == []
    assert telegram_emulator.received[-1]["status"] == status


async def test_proxy_502_is_not_json(telegram_emulator: EmulatorHandle, bot: Bot) -> None:
    telegram_emulator.set_faults(rate_proxy_502=1.0)
    with pytest.raises(ClientDecodeError) as caught:
        await bot.send_message(1, "x")
    assert "502 Bad Gateway" in str(caught.value.data)
    assert telegram_emulator.messages() == []
    assert telegram_emulator.received[-1]["outcome"] == "fault_proxy_502"


async def test_faults_spare_methods_that_send_nothing(
    telegram_emulator: EmulatorHandle, bot: Bot
) -> None:
    telegram_emulator.set_faults(rate_500=1.0)
    assert (await bot.get_me()).is_bot


async def test_timeout_delivers_but_the_client_times_out(
    telegram_emulator: EmulatorHandle,
) -> None:
    telegram_emulator.set_faults(rate_timeout=1.0, timeout_seconds=5.0)
    impatient = make_bot(telegram_emulator.base_url, timeout=0.3)
    try:
        with pytest.raises(TelegramNetworkError, match="Request timeout error") as caught:
            await impatient.send_message(1, "slow")
    finally:
        await impatient.session.close()
    assert isinstance(caught.value.__cause__, asyncio.TimeoutError)
    # The ambiguous case: Telegram got it and the message is there.
    assert [m["text"] for m in telegram_emulator.messages(1)] == ["slow"]


async def test_drop_after_receive_delivers_and_closes_the_connection(
    telegram_emulator: EmulatorHandle, bot: Bot
) -> None:
    telegram_emulator.set_faults(rate_drop=1.0)
    with pytest.raises(TelegramNetworkError) as caught:
        await bot.send_message(1, "lost answer")
    assert isinstance(caught.value.__cause__, aiohttp.ServerDisconnectedError)
    assert [m["text"] for m in telegram_emulator.messages(1)] == ["lost answer"]
    assert telegram_emulator.received[-1]["outcome"] == "fault_drop"
    telegram_emulator.set_faults()
    assert await bot.send_message(1, "next one")  # the client reconnects


async def _burst(bot: Bot, n: int) -> Counter[str]:
    """n sends to n chats, 50 at a time; counts what aiogram raised."""
    seen: Counter[str] = Counter()

    async def one(chat_id: int) -> None:
        try:
            await bot.send_message(chat_id, "x")
            seen["ok"] += 1
        except TelegramRetryAfter:
            seen["retry_after"] += 1
        except TelegramServerError:
            seen["server_error"] += 1
        except TelegramNetworkError:
            seen["network_error"] += 1
        except ClientDecodeError:
            seen["not_json"] += 1

    for start in range(1, n + 1, 50):
        await asyncio.gather(*(one(c) for c in range(start, min(start + 50, n + 1))))
    return seen


async def test_fault_rates_for_a_seed_are_within_tolerance_and_repeatable(
    telegram_emulator: EmulatorHandle, bot: Bot
) -> None:
    faults = {
        "rate_429": 0.1,
        "rate_500": 0.1,
        "rate_502": 0.05,
        "rate_proxy_502": 0.05,
        "rate_timeout": 0.05,
        "rate_drop": 0.05,
        "timeout_seconds": 0.0,
        "seed": 1234,
    }
    n = 1000
    telegram_emulator.set_faults(**faults)
    seen = await _burst(bot, n)
    outcomes = [r["outcome"] for r in telegram_emulator.received]
    counts = Counter(outcomes)
    # Binomial spread: within 4 standard deviations of n * rate.
    for outcome, rate in [
        ("fault_429", 0.1),
        ("fault_500", 0.1),
        ("fault_502", 0.05),
        ("fault_proxy_502", 0.05),
        ("fault_timeout", 0.05),
        ("fault_drop", 0.05),
        ("ok", 0.6),
    ]:
        assert abs(counts[outcome] - n * rate) <= 4 * (n * rate * (1 - rate)) ** 0.5, outcome
    # What aiogram raised matches what the emulator says it did.
    assert seen["retry_after"] == counts["fault_429"]
    assert seen["server_error"] == counts["fault_500"] + counts["fault_502"]
    assert seen["network_error"] == counts["fault_drop"]
    assert seen["not_json"] == counts["fault_proxy_502"]
    assert seen["ok"] == counts["ok"] + counts["fault_timeout"]  # a 0 s delay still answers
    # Only the faults after acceptance left a message.
    assert (
        len(telegram_emulator.messages())
        == counts["ok"] + counts["fault_timeout"] + counts["fault_drop"]
    )

    telegram_emulator.reset()
    telegram_emulator.set_faults(**faults)
    await _burst(bot, n)
    assert [r["outcome"] for r in telegram_emulator.received] == outcomes


async def test_mistyped_success_chokes_aiogram_but_says_ok_and_the_message_id(
    telegram_emulator: EmulatorHandle, bot: Bot
) -> None:
    telegram_emulator.set_faults(rate_mistyped=1.0)
    with pytest.raises(ClientDecodeError) as caught:
        await bot.send_message(1, "hi")
    [sent] = telegram_emulator.messages(1)
    answer = caught.value.data
    assert answer["ok"] is True
    assert answer["result"]["message_id"] == sent["message_id"]
    assert answer["result"]["link_preview_options"] == '{"is_disabled": true}'
    assert "herald_extra" in answer
    assert telegram_emulator.received[-1]["outcome"] == "ok_mistyped"


@pytest.mark.parametrize(
    ("setup", "error_code", "parameters"),
    [
        ({"rate_429": 1.0, "retry_after": 7}, 429, {"retry_after": 7}),
        ({"blocked": 1}, 403, {}),
        ({"migrated": (-5, -1005)}, 400, {"migrate_to_chat_id": -1005}),
        ({"rate_500": 1.0}, 500, {}),
    ],
)
async def test_mistyped_errors_keep_code_description_and_parameters(
    telegram_emulator: EmulatorHandle,
    bot: Bot,
    setup: dict[str, Any],
    error_code: int,
    parameters: dict[str, int],
) -> None:
    chat = 1
    if "blocked" in setup:
        telegram_emulator.block_chat(chat)
    elif "migrated" in setup:
        chat, new_chat = setup["migrated"]
        telegram_emulator.migrate_chat(chat, new_chat)
    faults = {k: v for k, v in setup.items() if k.startswith(("rate_", "retry_"))}
    telegram_emulator.set_faults(**faults, rate_mistyped=1.0)
    with pytest.raises(ClientDecodeError) as caught:
        await bot.send_message(chat, "hi")
    answer = caught.value.data
    assert (answer["ok"], answer["error_code"]) == (False, error_code)
    assert isinstance(answer["description"], str)
    assert answer.get("parameters", {}) == parameters
    assert answer["result"] == "none"
    assert telegram_emulator.messages() == []


async def test_garbage_is_accepted_then_answered_with_neither(
    telegram_emulator: EmulatorHandle, bot: Bot
) -> None:
    telegram_emulator.set_faults(rate_garbage=1.0)
    with pytest.raises(ClientDecodeError) as caught:
        await bot.send_message(1, "lost in noise")
    assert caught.value.data == {"ok": "maybe", "result": {"status": "accepted"}}
    assert [m["text"] for m in telegram_emulator.messages(1)] == ["lost in noise"]
    assert telegram_emulator.received[-1]["outcome"] == "fault_garbage"


async def test_mistyped_share_is_drawn_apart_and_spares_other_methods(
    telegram_emulator: EmulatorHandle, bot: Bot
) -> None:
    telegram_emulator.set_faults(rate_mistyped=0.5, seed=3)
    assert (await bot.get_me()).is_bot  # not a send: never mistyped
    n = 400
    seen = await _burst(bot, n)
    # Binomial spread: within 4 standard deviations of n / 2.
    assert abs(seen["not_json"] - n / 2) <= 4 * (n * 0.25) ** 0.5
    assert seen["ok"] + seen["not_json"] == n
    assert len(telegram_emulator.messages()) == n
    with pytest.raises(OptionError):
        FaultConfig(rate_mistyped=1.5)
    # Not part of the other faults' sum: all of them and a mistyped share at once.
    FaultConfig(rate_429=0.5, rate_drop=0.5, rate_mistyped=1.0)
