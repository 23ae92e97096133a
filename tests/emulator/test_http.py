"""The emulator's own HTTP server, spoken to over a raw socket."""

from __future__ import annotations

import asyncio

from herald.emulator.testing import EmulatorHandle
from tests.emulator.conftest import TOKEN


async def _exchange(handle: EmulatorHandle, raw: bytes) -> bytes:
    """Write raw bytes, read until the server closes the connection."""
    host, port = handle.base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(raw)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    await writer.wait_closed()
    return data


def _post(text: str, *, close: bool = False) -> bytes:
    body = f"chat_id=1&text={text}".encode()
    return (
        f"POST /bot{TOKEN}/sendMessage HTTP/1.1\r\nHost: x\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\n{'Connection: close' + chr(13) + chr(10) if close else ''}"
        "\r\n"
    ).encode() + body


async def test_pipelined_requests_are_answered_in_order_even_when_one_is_late(
    telegram_emulator: EmulatorHandle,
) -> None:
    # The first request waits 0.2 s for a message that only the queued requests would send.
    late = b"GET /control/messages/wait?count=1&timeout=0.2 HTTP/1.1\r\nHost: x\r\n\r\n"
    data = await _exchange(telegram_emulator, late + _post("second") + _post("last", close=True))
    answers = data.split(b"HTTP/1.1 ")[1:]
    assert [a[:3] for a in answers] == [b"408", b"200", b"200"]
    assert b'"text":"second"' in answers[1]
    assert b'"text":"last"' in answers[2]
    assert b"Connection: close" in answers[2]
    assert [m["text"] for m in telegram_emulator.messages()] == ["second", "last"]


async def test_a_long_pipeline_behind_a_slow_request_is_read_in_turn(
    telegram_emulator: EmulatorHandle,
) -> None:
    # More requests than the server queues: it stops reading, then catches up.
    late = b"GET /control/messages/wait?count=1&timeout=0.2 HTTP/1.1\r\nHost: x\r\n\r\n"
    burst = b"".join(_post(f"m{i}") for i in range(200))
    data = await _exchange(telegram_emulator, late + burst + _post("end", close=True))
    assert data.count(b"HTTP/1.1 200 OK") == 201
    texts = [m["text"] for m in telegram_emulator.messages()]
    assert texts == [f"m{i}" for i in range(200)] + ["end"]


async def test_expect_100_continue(telegram_emulator: EmulatorHandle) -> None:
    request = _post("hi", close=True).replace(
        b"Host: x\r\n", b"Host: x\r\nExpect: 100-continue\r\n"
    )
    data = await _exchange(telegram_emulator, request)
    assert data.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n")


async def test_garbage_gets_400_and_a_closed_connection(telegram_emulator: EmulatorHandle) -> None:
    data = await _exchange(telegram_emulator, b"NOT HTTP AT ALL\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert telegram_emulator.received == []


async def test_a_percent_encoded_path_is_decoded(telegram_emulator: EmulatorHandle) -> None:
    token = TOKEN.replace(":", "%3A")
    data = await _exchange(telegram_emulator, f"GET /bot{token}/getMe HTTP/1.0\r\n\r\n".encode())
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")


async def test_http_1_0_closes_after_the_answer(telegram_emulator: EmulatorHandle) -> None:
    data = await _exchange(telegram_emulator, f"GET /bot{TOKEN}/getMe HTTP/1.0\r\n\r\n".encode())
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b'"is_bot":true' in data
