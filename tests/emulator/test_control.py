"""The control API through RemoteEmulator, the raw answer shapes, and the HTML page."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import psutil
import pytest
import pytest_asyncio
from aiogram import Bot
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramServerError,
    TelegramUnauthorizedError,
)

from herald.emulator.remote import RemoteEmulator, RemoteEmulatorError
from herald.emulator.testing import EmulatorHandle, make_emulator, run_emulator
from tests.emulator.conftest import TOKEN, make_bot
from tests.support.processes import emulator_process, herald_env, run_herald


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


# --- finding 11.3: what the control API keeps and shows -------------------------------


async def _post_raw(
    http: aiohttp.ClientSession, url: str, body: bytes, content_type: str
) -> tuple[int, bytes]:
    async with http.post(url, data=body, headers={"Content-Type": content_type}) as response:
        return response.status, await response.read()


async def test_no_token_is_kept_or_shown(
    telegram_emulator: EmulatorHandle, bot: Bot, http: aiohttp.ClientSession
) -> None:
    await bot.send_message(5, "hello")
    with pytest.raises(TelegramBadRequest):
        await bot.send_message(0, "to a chat that does not exist")
    base = telegram_emulator.base_url
    for path in ("/control/received", "/control/messages", "/control/stats", "/"):
        async with http.get(base + path) as response:
            assert response.status == 200
            shown = await response.text()
        assert TOKEN not in shown, path
        assert TOKEN.split(":")[1] not in shown, path
    kept = repr(telegram_emulator.received) + repr(telegram_emulator.messages())
    assert TOKEN.split(":")[1] not in kept
    # What a test needs instead: which bot, which method, what answer.
    assert [(r["bot_id"], r["method"], r["status"]) for r in telegram_emulator.received] == [
        (123456, "sendMessage", 200),
        (123456, "sendMessage", 400),
    ]


async def test_requests_with_a_wrong_token_are_not_recorded(
    telegram_emulator: EmulatorHandle, http: aiohttp.ClientSession
) -> None:
    base = telegram_emulator.base_url
    for token in ("not-a-token", "123:", "42:someone-elses-secret"):
        status, _ = await _post_raw(
            http,
            f"{base}/bot{token}/sendMessage",
            b"chat_id=1&text=x",
            "application/x-www-form-urlencoded",
        )
        assert status in (200, 401)
    async with run_emulator(tokens=[TOKEN], limits=False) as strict:
        status, _ = await _post_raw(
            http,
            f"{strict.base_url}/bot42:someone-elses-secret/sendMessage",
            b"chat_id=1&text=guess",
            "application/x-www-form-urlencoded",
        )
        assert status == 401
        assert strict.received == []
        assert strict.stats() == {"messages": 0, "received": 0, "chats": 0}
    status, _ = await _post_raw(
        http, f"{base}/botnot-a-token/x", b"a=" + b"x" * 1000, "application/x-www-form-urlencoded"
    )
    assert status == 401
    assert [r["bot_id"] for r in telegram_emulator.received] == [42]  # the one valid shape


async def test_bodies_of_unknown_methods_are_not_kept(
    telegram_emulator: EmulatorHandle, http: aiohttp.ClientSession
) -> None:
    status, _ = await _post_raw(
        http,
        f"{telegram_emulator.base_url}/bot{TOKEN}/sendTelepathy",
        b"chat_id=1&text=" + b"y" * 100_000,
        "application/x-www-form-urlencoded",
    )
    assert status == 404
    [record] = telegram_emulator.received
    assert (record["method"], record["status"], record["params"]) == ("sendTelepathy", 404, {})


async def test_the_logs_keep_only_the_latest_records() -> None:
    async with run_emulator(limits=False, keep=3) as tg:
        sender = make_bot(tg.base_url)
        try:
            for i in range(5):
                await sender.send_message(1 + i % 2, f"m{i}")
        finally:
            await sender.session.close()
        assert [m["text"] for m in tg.messages()] == ["m2", "m3", "m4"]
        assert [m["text"] for m in tg.messages(1)] == ["m2", "m4"]
        assert [r["params"]["text"] for r in tg.received] == ["m2", "m3", "m4"]
        # Counts are of everything since the reset; the logs hold the latest `keep`.
        assert tg.stats() == {"messages": 5, "received": 5, "chats": 2}
        async with RemoteEmulator(tg.base_url) as remote:
            assert len(await remote.messages()) == 3


async def test_a_huge_parameter_is_not_kept_whole(
    telegram_emulator: EmulatorHandle, http: aiohttp.ClientSession
) -> None:
    text = "z" * 1_000_000
    status, _ = await _post_raw(
        http,
        f"{telegram_emulator.base_url}/bot{TOKEN}/sendMessage",
        b"chat_id=1&text=" + text.encode(),
        "application/x-www-form-urlencoded",
    )
    assert status == 400  # message is too long
    kept = telegram_emulator.received[-1]["params"]
    assert kept["chat_id"] == "1"
    assert len(kept["text"]) < 100
    assert "1000000 characters" in kept["text"]


def test_keep_must_be_positive() -> None:
    with pytest.raises(ValueError, match="keep must be >= 1"):
        make_emulator(keep=0)


# --- a real `herald emulator` process ---------------------------------------------------


async def test_the_token_comes_from_the_environment_not_the_command_line(tmp_path: Path) -> None:
    secret = "777:from-the-environment"
    env = herald_env(emulator_token=secret)
    with emulator_process(tmp_path, env=env) as (proc, base_url):
        assert not any("from-the-environment" in arg for arg in psutil.Process(proc.pid).cmdline())
        allowed, other = make_bot(base_url, token=secret), make_bot(base_url)
        try:
            assert (await allowed.get_me()).id == 777
            with pytest.raises(TelegramUnauthorizedError):
                await other.get_me()
        finally:
            await allowed.session.close()
            await other.session.close()


def test_a_token_on_the_command_line_is_refused(tmp_path: Path) -> None:
    result = run_herald(["emulator", "--port", "0", "--token", "1:x"], herald_env(), tmp_path)
    assert result.returncode == 2
    [line] = result.stderr_lines
    assert "HERALD_EMULATOR_TOKEN" in line


async def _post_over_socket(base_url: str, path: str, body: bytes) -> int:
    """One POST on its own connection; the answer's status."""
    host, port = base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    writer.write(head.encode() + body)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 30)
    writer.close()
    await writer.wait_closed()
    return int(answer.split(b" ", 2)[1])


async def test_memory_stays_bounded_under_large_posts(tmp_path: Path) -> None:
    """Three 5 MB posts to /botnot-a-token/x once took the emulator from 35 to 75 MB."""
    body = b"text=" + b"x" * (5 * 1024 * 1024)
    with emulator_process(tmp_path, "--keep", "100") as (emulator, base_url):
        proc = psutil.Process(emulator.pid)
        assert await _post_over_socket(base_url, f"/bot{TOKEN}/getMe", b"") == 200  # warm up
        before = proc.memory_info().rss
        for i in range(20):
            for path in (
                "/botnot-a-token/x",
                f"/bot{TOKEN}/unknownMethod",
                f"/bot{i}:t/sendMessage",
            ):
                assert await _post_over_socket(base_url, path, body) in (400, 401, 404), path
        grown = proc.memory_info().rss - before
    # 60 posts of 5 MB: keeping them would take 300 MB. A bounded server holds one body in
    # flight at a time (and its parsed copy); allocator slack stays well under 60 MB.
    assert grown < 60 * 1024 * 1024, f"RSS grew by {grown / 2**20:.0f} MB"


@pytest.mark.parametrize("where", ["one header", "a header in pieces", "the path"])
async def test_a_head_over_64_kb_is_refused(telegram_emulator: EmulatorHandle, where: str) -> None:
    host, port = telegram_emulator.base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    big = "a" * 100_000
    if where == "the path":
        writer.write(f"GET /bot{TOKEN}/getMe?x={big} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    elif where == "one header":
        writer.write(f"GET /bot{TOKEN}/getMe HTTP/1.1\r\nX-Big: {big}\r\n\r\n".encode())
    else:
        writer.write(f"GET /bot{TOKEN}/getMe HTTP/1.1\r\nX-Big: ".encode())
        with contextlib.suppress(ConnectionError):
            for _ in range(20):  # never finished: refused once the bytes pass the cap
                await writer.drain()
                writer.write(b"a" * 8192)
                await asyncio.sleep(0.01)
    try:
        answer = await asyncio.wait_for(reader.read(), 5)
    except ConnectionError:
        answer = b""  # closed while we were still writing: the 431 may be lost
    finally:
        writer.close()
    if where != "a header in pieces" or answer:
        assert answer.startswith(b"HTTP/1.1 431 ")
    assert telegram_emulator.received == []
