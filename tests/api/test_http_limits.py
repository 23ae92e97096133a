"""A real `herald api` process refuses oversized heads and closes slow ones (finding 11.4).

uvicorn alone accepted a 16 MiB header and held a connection with an unfinished head for
as long as the client trickled bytes into it.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import pytest_asyncio

from tests.conftest import REDIS_URL, TEST_JWT_SECRET
from tests.support.processes import herald_env, start_api

HEADER_TIMEOUT = 1.0
CONCURRENCY = 20


@pytest.fixture(scope="module")
def api_port(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    env = herald_env(
        database_url=database_url,
        redis_url=REDIS_URL,
        queue_name=f"herald:test:{secrets.token_hex(4)}",
        jwt_secret=TEST_JWT_SECRET,
        log_level="WARNING",
        # The default is 10 s; a short one keeps the test short, the mechanism is the same.
        api_header_timeout_seconds=HEADER_TIMEOUT,
        api_limit_concurrency=CONCURRENCY,
    )
    api, base_url = start_api(env, tmp_path_factory.mktemp("api"))
    try:
        yield int(base_url.rpartition(":")[2])
    finally:
        api.stop(timeout=10)


@pytest_asyncio.fixture
async def connect(api_port: int) -> AsyncIterator[object]:
    opened: list[asyncio.StreamWriter] = []

    async def open_one() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection("127.0.0.1", api_port)
        opened.append(writer)
        return reader, writer

    yield open_one
    for writer in opened:
        writer.close()


async def _answer(reader: asyncio.StreamReader) -> bytes:
    """What the server sends until it closes the connection (b"" if it just closes)."""
    try:
        return await asyncio.wait_for(reader.read(), 5)
    except ConnectionError:
        return b""


def _refused(answer: bytes) -> bool:
    return answer == b"" or answer.startswith(b"HTTP/1.1 431 ")


async def test_a_64_kb_header_is_refused(connect: object) -> None:
    reader, writer = await connect()  # type: ignore[operator]
    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 65536 + b"\r\n\r\n")
    # The 431 or a reset: the server closes while the rest of the 64 KB is still arriving,
    # and the kernel may answer that unread data with a reset before the 431 is read.
    answer = await _answer(reader)
    assert _refused(answer), answer[:200]


async def test_a_head_just_over_the_limit_gets_431_in_the_envelope(connect: object) -> None:
    reader, writer = await connect()  # type: ignore[operator]
    # Arrives whole before the server decides, so the answer is read before any reset.
    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 17_000 + b"\r\n\r\n")
    answer = await _answer(reader)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b'"code": "headers_too_large"' in answer


async def test_a_header_that_never_ends_is_refused_once_past_the_limit(connect: object) -> None:
    reader, writer = await connect()  # type: ignore[operator]
    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ")
    with contextlib.suppress(ConnectionError):
        for _ in range(16):  # 128 KB, never finished
            writer.write(b"a" * 8192)
            await writer.drain()
            await asyncio.sleep(0.01)
    assert _refused(await _answer(reader))


async def test_a_slow_loris_is_closed_within_the_timeout(connect: object) -> None:
    reader, writer = await connect()  # type: ignore[operator]
    started = time.monotonic()
    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n")
    closed_after = None
    with contextlib.suppress(ConnectionError):
        for i in range(40):  # a header line every 0.2 s, for up to 8 s
            writer.write(b"X-%d: y\r\n" % i)
            await writer.drain()
            with contextlib.suppress(TimeoutError):
                if await asyncio.wait_for(reader.read(1), 0.2) == b"":
                    break
    closed_after = time.monotonic() - started
    assert reader.at_eof() or writer.transport.is_closing()
    assert closed_after < HEADER_TIMEOUT + 1.5, closed_after


async def test_the_next_request_on_a_connection_gets_the_same_timeout(connect: object) -> None:
    reader, writer = await connect()  # type: ignore[operator]
    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 200 ")
    length = int(
        next(h for h in head.split(b"\r\n") if h.startswith(b"content-length")).split(b":")[1]
    )
    await reader.readexactly(length)
    started = time.monotonic()
    writer.write(b"GET /health HTTP/1.1\r\n")  # and nothing more
    assert await _answer(reader) == b""
    assert time.monotonic() - started < HEADER_TIMEOUT + 1.5


async def test_ordinary_requests_pass(api_port: int) -> None:
    """A big body is not a big head, and a keep-alive client is served request after request."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}") as client:
        for _ in range(3):
            assert (await client.get("/health")).status_code == 200
        big = {"chat_id": 1, "text": "x" * 900_000}  # under HERALD_MAX_BODY_BYTES, one chunk
        response = await client.post("/api/tasks", json=big, headers={"X-Pad": "p" * 8000})
        assert response.status_code == 401  # no token: read and judged, not refused at the door


async def test_beyond_the_concurrency_limit_requests_get_503(
    connect: object, api_port: int
) -> None:
    for _ in range(CONCURRENCY):
        _, writer = await connect()  # type: ignore[operator]
        writer.write(b"GET /health HTTP/1.1\r\n")  # holds a connection until the timeout
        await writer.drain()
    await asyncio.sleep(0.1)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}") as client:
        assert (await client.get("/health")).status_code == 503
        await asyncio.sleep(HEADER_TIMEOUT + 0.5)  # the held connections are closed
        assert (await client.get("/health")).status_code == 200
