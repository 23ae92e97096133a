"""Updates as Telegram hands them out, through aiogram's real Bot: getUpdates with offsets
and long polling, the webhook with its secret header, allowed_updates; and the control
API that plays the people."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramConflictError
from aiohttp import web

from herald.emulator.remote import RemoteEmulator, RemoteEmulatorError
from herald.emulator.testing import EmulatorHandle, run_emulator
from tests.emulator.conftest import make_bot

BOT = 123456
USER = 77


async def test_get_updates_confirms_by_offset_and_repeats_what_was_not_confirmed(
    telegram_emulator: EmulatorHandle, bot: Bot
) -> None:
    tg = telegram_emulator
    first = tg.user_start(USER, "code-1", bot_id=BOT)["update_id"]
    tg.user_send(USER, "hello", bot_id=BOT)
    got = await bot.get_updates()
    assert [u.update_id for u in got] == [first, first + 1]
    assert got[0].message is not None
    assert got[0].message.text == "/start code-1"
    assert got[0].message.entities is not None  # a bot_command, as Telegram marks it
    # Not confirmed: the same updates again.
    assert [u.update_id for u in await bot.get_updates()] == [first, first + 1]
    # The offset confirms everything below it, for good.
    assert [u.update_id for u in await bot.get_updates(offset=first + 1)] == [first + 1]
    assert await bot.get_updates(offset=first + 2) == []
    assert [u.update_id for u in await bot.get_updates()] == []


async def test_a_long_poll_returns_when_an_update_comes(
    telegram_emulator: EmulatorHandle, bot: Bot
) -> None:
    tg = telegram_emulator

    async def later() -> None:
        await asyncio.sleep(0.3)
        tg.user_send(USER, "now", bot_id=BOT)

    sender = asyncio.create_task(later())
    started = time.monotonic()
    got = await bot.get_updates(timeout=3, request_timeout=10)
    await sender
    assert 0.2 < time.monotonic() - started < 2.5
    assert [u.message.text for u in got if u.message] == ["now"]
    started = time.monotonic()
    assert await bot.get_updates(offset=got[0].update_id + 1, timeout=1, request_timeout=10) == []
    assert time.monotonic() - started >= 0.9  # waited the whole timeout


async def test_allowed_updates_keeps_only_the_kinds_named(
    telegram_emulator: EmulatorHandle, bot: Bot
) -> None:
    tg = telegram_emulator
    assert await bot.get_updates(allowed_updates=["my_chat_member"]) == []
    tg.user_send(USER, "ignored", bot_id=BOT)
    tg.user_block(USER, bot_id=BOT)
    got = await bot.get_updates()
    assert len(got) == 1
    assert got[0].my_chat_member is not None
    assert got[0].my_chat_member.new_chat_member.status == "kicked"


async def test_the_webhook_posts_updates_with_the_secret_and_retries(
    telegram_emulator: EmulatorHandle, bot: Bot
) -> None:
    tg = telegram_emulator
    received: list[tuple[str | None, dict[str, object]]] = []
    answers = [500, 200, 200]

    async def hook(request: web.Request) -> web.Response:
        received.append(
            (request.headers.get("X-Telegram-Bot-Api-Secret-Token"), await request.json())
        )
        return web.Response(status=answers.pop(0) if answers else 200)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        secret = "a" * 40
        assert await bot.set_webhook(f"http://127.0.0.1:{port}/hook", secret_token=secret)
        with pytest.raises(TelegramConflictError):
            await bot.get_updates()
        tg.user_send(USER, "one", bot_id=BOT)
        tg.user_send(USER, "two", bot_id=BOT)
        await _until(lambda: len(received) == 3)
        # The first call failed (500) and was retried; then the next, in order.
        assert [body["message"]["text"] for _, body in received] == ["one", "one", "two"]  # type: ignore[index]
        assert {header for header, _ in received} == {secret}
        await _until(lambda: tg.updates(BOT)["pending"] == [])
        info = await bot.get_webhook_info()
        assert info.url.endswith("/hook")
        assert info.pending_update_count == 0
        assert info.last_error_message is not None
        assert "500" in info.last_error_message
        # The secret is nowhere to be read: not in the request log, the info or the page.
        assert secret not in str(tg.received)
        assert secret not in str(tg.updates(BOT))
        assert await bot.delete_webhook()
        tg.user_send(USER, "three", bot_id=BOT)
        assert [u.message.text for u in await bot.get_updates() if u.message] == ["three"]
    finally:
        await bot.delete_webhook()
        await runner.cleanup()


async def _until(check: object, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "not in time"
        await asyncio.sleep(0.02)


async def test_people_over_the_control_api() -> None:
    async with run_emulator(limits=False) as tg, RemoteEmulator(tg.base_url) as remote:
        with pytest.raises(RemoteEmulatorError, match="bot_unknown"):
            await remote.user_send(USER, "hi")  # no bot known yet
        bot = make_bot(tg.base_url)
        try:
            await bot.get_me()  # now the emulator knows its one bot
            update = await remote.user_start(USER, "abc")
            assert update["message"]["text"] == "/start abc"
            await remote.user_block(USER)
            await remote.migrate_chat(-5, -1000000000005)
            kinds = [
                next(k for k in u if k != "update_id") for u in (await remote.updates())["pending"]
            ]
            assert kinds == ["message", "my_chat_member", "message", "message"]
            with pytest.raises(Exception, match="blocked"):
                await bot.send_message(USER, "x")
            await remote.user_start(USER)  # Start again unblocks, as Telegram's Restart
            assert (await bot.send_message(USER, "back")).message_id >= 1
            async with aiohttp.ClientSession() as session, session.get(tg.base_url) as response:
                page = await response.text()
            assert f"Updates to bot {BOT}" in page
            assert "/start abc" in page
        finally:
            await bot.session.close()


async def test_a_second_poller_ends_the_first_ones_long_poll_with_409(
    telegram_emulator: EmulatorHandle, bot: Bot
) -> None:
    tg = telegram_emulator
    waiting = asyncio.create_task(bot.get_updates(timeout=5, request_timeout=10))
    box = tg.emulator.bot_updates(BOT)
    await _until(lambda: box.polls == 1)  # the first long poll is waiting now
    second = asyncio.create_task(bot.get_updates(timeout=1, request_timeout=10))
    with pytest.raises(TelegramConflictError, match="terminated by other getUpdates"):
        await waiting
    assert await second == []
    assert tg.updates(BOT)["conflicts"] == 1
    # One poller at a time: no conflict, however many calls.
    for _ in range(3):
        await bot.get_updates(timeout=0)
    assert tg.updates(BOT)["conflicts"] == 1


async def test_a_reply_carries_the_message_it_answers(
    telegram_emulator: EmulatorHandle, bot: Bot
) -> None:
    tg = telegram_emulator
    sent = await bot.send_message(USER, "Your order has shipped")
    reply = tg.user_send(USER, "thanks", bot_id=BOT, reply_to=sent.message_id)["message"]
    replied = reply["reply_to_message"]
    assert (replied["message_id"], replied["text"]) == (sent.message_id, "Your order has shipped")
    assert replied["from"]["id"] == BOT
    own = tg.user_send(USER, "and this", bot_id=BOT, reply_to=reply["message_id"])["message"]
    assert own["reply_to_message"]["message_id"] == reply["message_id"]
    assert own["reply_to_message"]["from"]["id"] == USER
    [update] = [u for u in await bot.get_updates() if u.message and u.message.text == "thanks"]
    assert update.message is not None
    assert update.message.reply_to_message is not None
    assert update.message.reply_to_message.message_id == sent.message_id
