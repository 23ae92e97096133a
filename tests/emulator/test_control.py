"""The control API through RemoteEmulator, the raw answer shapes, and the HTML page."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio
from aiogram import Bot
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramServerError,
)

from herald.emulator.remote import RemoteEmulator, RemoteEmulatorError
from herald.emulator.testing import EmulatorHandle
from tests.emulator.conftest import TOKEN


@pytest_asyncio.fixture
async def remote(telegram_emulator: EmulatorHandle) -> AsyncIterator[RemoteEmulator]:
    async with RemoteEmulator(telegram_emulator.base_url) as remote:
        yield remote


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_remote_reads_messages_and_requests(remote: RemoteEmulator, bot: Bot) -> None:
    waiting = asyncio.create_task(remote.wait_messages(2, timeout=5))
    await bot.send_message(1, "one")
    await bot.send_message(2, "two")
    assert [m["text"] for m in await waiting] == ["one", "two"]
    assert [m["text"] for m in await remote.messages(2)] == ["two"]
    assert [r["method"] for r in await remote.received()] == ["sendMessage", "sendMessage"]
    assert await remote.stats() == {"messages": 2, "received": 2, "chats": 2}
    with pytest.raises(TimeoutError):
        await remote.wait_messages(3, timeout=0.2)
    await remote.reset()
    assert await remote.messages() == []
    assert await remote.received() == []


async def test_remote_marks_chats(remote: RemoteEmulator, bot: Bot) -> None:
    await remote.block_chat(1)
    await remote.set_missing(2)
    await remote.migrate_chat(-3, -1000000000003)
    with pytest.raises(TelegramForbiddenError):
        await bot.send_message(1, "x")
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.send_message(2, "x")
    with pytest.raises(TelegramMigrateToChat):
        await bot.send_message(-3, "x")


async def test_remote_sets_faults_and_limits(remote: RemoteEmulator, bot: Bot) -> None:
    faults = await remote.set_faults(rate_500=1.0, seed=3)
    assert (faults["rate_500"], faults["rate_429"], faults["seed"]) == (1.0, 0.0, 3)
    with pytest.raises(TelegramServerError):
        await bot.send_message(1, "x")
    await remote.set_faults()
    limits = await remote.set_limits(enabled=True, per_chat_per_second=1)
    assert limits["enabled"] is True
    await bot.send_message(1, "x")
    with pytest.raises(Exception, match="Too Many Requests: retry after 1"):
        await bot.send_message(1, "x")


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/control/faults", {"rate_429": 2}, "fault rates must be between 0 and 1"),
        ("/control/faults", {"rate_500": 0.6, "rate_502": 0.6}, "add up to at most 1"),
        ("/control/faults", {"rate_5xx": 0.1}, "unknown option(s): rate_5xx"),
        ("/control/limits", {"enabled": "yes"}, "enabled must be true or false"),
        ("/control/chats/-3/migrate", {"new_chat_id": "x"}, "new_chat_id must be an integer"),
    ],
)
async def test_control_refuses_bad_input_in_the_envelope(
    telegram_emulator: EmulatorHandle,
    http: aiohttp.ClientSession,
    path: str,
    body: dict[str, object],
    message: str,
) -> None:
    async with http.post(telegram_emulator.base_url + path, json=body) as response:
        assert response.status == 400
        error = (await response.json())["error"]
    assert message in error["message"]
    assert set(error) == {"code", "message", "details"}
    assert not telegram_emulator.faults.active


async def test_remote_reports_a_refusal(remote: RemoteEmulator) -> None:
    with pytest.raises(RemoteEmulatorError, match="400"):
        await remote.set_faults(rate_429=-1)


async def test_answers_have_telegrams_exact_shapes(
    telegram_emulator: EmulatorHandle, http: aiohttp.ClientSession
) -> None:
    base = telegram_emulator.base_url

    async def call(token: str, method: str, **params: object) -> tuple[int, object]:
        async with http.post(f"{base}/bot{token}/{method}", data=params) as response:
            return response.status, await response.json()

    assert await call("no-colon", "getMe") == (
        401,
        {"ok": False, "error_code": 401, "description": "Unauthorized"},
    )
    assert await call(TOKEN, "sendTelepathy") == (
        404,
        {"ok": False, "error_code": 404, "description": "Not Found"},
    )
    status, body = await call(TOKEN, "SENDMESSAGE", chat_id=1, text="case-insensitive")
    assert status == 200
    assert body == {
        "ok": True,
        "result": {
            "message_id": 1,
            "from": await_me(telegram_emulator),
            "chat": {"id": 1, "first_name": "User 1", "type": "private"},
            "date": body["result"]["date"],  # type: ignore[index]
            "text": "case-insensitive",
        },
    }
    telegram_emulator.set_faults(rate_429=1.0, retry_after=5)
    assert await call(TOKEN, "sendMessage", chat_id=1, text="x") == (
        429,
        {
            "ok": False,
            "error_code": 429,
            "description": "Too Many Requests: retry after 5",
            "parameters": {"retry_after": 5},
        },
    )
    telegram_emulator.set_faults()
    telegram_emulator.migrate_chat(-9, -1000000000009)
    assert await call(TOKEN, "sendMessage", chat_id=-9, text="x") == (
        400,
        {
            "ok": False,
            "error_code": 400,
            "description": "Bad Request: group chat was upgraded to a supergroup chat",
            "parameters": {"migrate_to_chat_id": -1000000000009},
        },
    )
    async with http.get(f"{base}/bot{TOKEN}/sendMessage?chat_id=2&text=by+query") as response:
        assert response.status == 200
    async with http.post(
        f"{base}/bot{TOKEN}/sendMessage", json={"chat_id": 3, "text": "by json"}
    ) as response:
        assert response.status == 200
    assert [m["text"] for m in telegram_emulator.messages()] == [
        "case-insensitive",
        "by query",
        "by json",
    ]


def await_me(handle: EmulatorHandle) -> dict[str, object]:
    me = handle.emulator.bot(TOKEN)
    assert me is not None
    return me


async def test_page_shows_messages_per_chat(
    telegram_emulator: EmulatorHandle, bot: Bot, http: aiohttp.ClientSession
) -> None:
    await bot.send_message(77, "<script>alert(1)</script>")
    await bot.send_message(-88, "group news")
    async with http.get(telegram_emulator.base_url + "/") as response:
        assert response.status == 200
        assert response.content_type == "text/html"
        page = await response.text()
    assert "Chat 77" in page
    assert "Chat -88" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "group news" in page
