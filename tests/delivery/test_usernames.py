"""`@username` chat ids, which Herald accepts, reach the emulator's channels and public
supergroups (issue 12, item 7): through the gateway, a `herald worker` and aiogram."""

from __future__ import annotations

from typing import Any

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer

from herald.emulator.chats import username_chat_id
from herald.emulator.testing import EmulatorHandle
from tests.delivery.conftest import post, task_row
from tests.delivery.workers import wait_for

NEWS = -1001234567890
TEAM = -1009876543210


async def test_usernames_are_delivered_through_gateway_worker_and_emulator(
    db: Any, tg: EmulatorHandle, gateway: Any, start_worker: Any
) -> None:
    tg.name_chat("@herald_news", NEWS)
    tg.name_chat("@herald_team", TEAM, kind="supergroup")
    gone = username_chat_id("gone_channel")
    tg.set_missing(gone)
    await start_worker()
    news = await post(gateway, "news", chat_id="@herald_news", text="Release 2.0 is out")
    team = await post(gateway, "team", chat_id="@Herald_Team", text="Standup moved")
    other = await post(gateway, "other", chat_id="@any_channel", text="Hello")
    missing = await post(gateway, "gone", chat_id="@gone_channel", text="Anyone?")

    async def finished() -> bool:
        rows = [await task_row(db, t) for t in (news, team, other, missing)]
        return all(r["status"] in ("delivered", "failed") for r in rows)

    await wait_for(finished, 30, "every task delivered or failed")
    for task_id, chat_id, text in [
        (news, NEWS, "Release 2.0 is out"),
        (team, TEAM, "Standup moved"),
        (other, username_chat_id("any_channel"), "Hello"),
    ]:
        [sent] = tg.messages(chat_id)
        assert sent["text"] == text
        row = await task_row(db, task_id)
        assert (row["status"], row["telegram_message_id"]) == ("delivered", sent["message_id"])
    row = await task_row(db, missing)
    assert (row["status"], row["last_error_code"]) == ("failed", 400)
    assert "chat not found" in row["last_error"]

    writer = {"Authorization": gateway.headers["X-Writer"]}
    shown = (await gateway.get(f"/api/tasks/{news}", headers=writer)).json()
    assert (shown["chat_id"], shown["status"]) == ("@herald_news", "delivered")


async def test_the_emulator_answers_a_username_as_telegram_does(tg: EmulatorHandle) -> None:
    tg.name_chat("@herald_team", TEAM, kind="supergroup")
    api = TelegramAPIServer.from_base(tg.base_url)
    bot = Bot("123456:TEST-token", session=AiohttpSession(api=api))
    try:
        post_ = await bot.send_message("@herald_news_2", "to a channel")
        assert post_.chat.type == "channel"
        assert post_.chat.username == "herald_news_2"
        assert post_.sender_chat is not None
        assert post_.sender_chat.id == post_.chat.id
        assert post_.from_user is None
        message = await bot.send_message("@herald_team", "to a group")
        assert (message.chat.id, message.chat.type) == (TEAM, "supergroup")
        assert message.from_user is not None
        assert message.from_user.is_bot
        chat = await bot.get_chat("@HERALD_TEAM")
        assert chat.id == TEAM
    finally:
        await bot.session.close()
    assert [m["chat_id"] for m in tg.messages()] == [post_.chat.id, TEAM]
