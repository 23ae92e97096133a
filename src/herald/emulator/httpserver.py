"""A small HTTP/1.1 server on httptools (the parser uvicorn uses), for the emulator only.

Why not aiohttp's server: the emulator must never be the bottleneck of Herald's benchmarks,
and aiohttp's request machinery cost about 125 us of CPU per sendMessage here, this server
about 45 us, the emulator's own work included (docs/benchmarks.md). It does what the
emulator needs and no more: keep-alive and pipelined requests answered in order,
`Expect: 100-continue`, caps on the head, the body and what a pipeline may queue, and a
handler that may answer now (the hot path makes no task), later (an awaitable), or never
(None: the connection is closed unanswered). A request whose body its handler will not
read (`reads_body` says so once the head is in) has that body counted and dropped as it
arrives, never held: a post to an unknown path costs no memory whatever its size.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import cast
from urllib.parse import unquote, unquote_plus

import httptools
import structlog

logger = structlog.get_logger(__name__)

MAX_BODY = 60 * 1024 * 1024  # uploads to the Bot API are capped at 50 MB
# The request line and headers; Telegram's clients send well under 1 KB.
MAX_HEAD = 64 * 1024
# Pipelined requests queued behind a slow one before the connection stops being read:
# so many, or so many bytes of their bodies.
MAX_PENDING = 64
MAX_PENDING_BYTES = 64 * 1024 * 1024


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]  # names in lower case
    body: bytes
    keep_alive: bool

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").partition(";")[0].strip().lower()

    def query_params(self) -> dict[str, str]:
        return parse_form(self.query.encode(), {}) if self.query else {}


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    content_type: bytes = b"application/json"


# None closes the connection without an answer.
Answer = Response | None
Handler = Callable[[Request], Answer | Awaitable[Answer]]
# (method, path) -> whether the handler will read the body.
ReadsBody = Callable[[str, str], bool]


def parse_form(body: bytes, into: dict[str, str]) -> dict[str, str]:
    """A urlencoded form; three times faster than `parse_qsl` on the usual short forms."""
    for part in body.decode("utf-8", "replace").split("&"):
        if part:
            key, _, value = part.partition("=")
            if "%" in value or "+" in value:
                value = unquote_plus(value)
            if "%" in key or "+" in key:
                key = unquote_plus(key)
            into[key] = value
    return into


_INTERNAL_ERROR = Response(
    500, b'{"ok":false,"error_code":500,"description":"Internal Server Error"}'
)
_REASONS = {status.value: status.phrase.encode() for status in HTTPStatus}


def _encode(response: Response, keep_alive: bool) -> bytes:
    head = b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s\r\n" % (
        response.status,
        _REASONS.get(response.status, b"Unknown"),
        response.content_type,
        len(response.body),
        b"" if keep_alive else b"Connection: close\r\n",
    )
    return head + response.body


class _Connection(asyncio.Protocol):
    def __init__(self, server: HttpServer) -> None:
        self._server = server
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._pending: deque[Request] = deque()
        self._task: asyncio.Task[None] | None = None
        self._url = b""
        self._path = ""
        self._query = ""
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._size = 0
        self._keep_body = True
        self._in_head = True
        self._head_size = 0
        self._pending_bytes = 0
        self._completed = 0  # requests parsed on this connection
        self._write_paused = False

    # --- asyncio ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self._transport = cast(asyncio.Transport, transport)
        self._server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._server.connections.discard(self)
        self._transport = None
        if self._task is not None:
            self._task.cancel()

    def pause_writing(self) -> None:
        # The client does not read its answers: stop reading its requests until it does.
        self._write_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._update_reading()

    def _update_reading(self) -> None:
        if self._transport is None or self._transport.is_closing():
            return
        if (
            self._write_paused
            or len(self._pending) >= MAX_PENDING
            or self._pending_bytes >= MAX_PENDING_BYTES
        ):
            self._transport.pause_reading()
        else:
            self._transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        head_before, completed_before = self._in_head, self._completed
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade):
            self._fail(400, b'{"ok":false,"error_code":400,"description":"Bad Request"}')
            return
        if head_before and self._in_head and self._completed == completed_before:
            # The whole chunk is part of one unfinished head. httptools holds a partial
            # header until it ends, so count raw bytes too, not only finished fields.
            self._grow_head(len(data))

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    # --- httptools callbacks ---------------------------------------------------------

    def _grow_head(self, size: int) -> None:
        self._head_size += size
        if self._head_size > MAX_HEAD:
            self._fail(
                431,
                b'{"ok":false,"error_code":431,"description":"Request Header Fields Too Large"}',
            )

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = {}
        self._body = []
        self._size = 0
        self._keep_body = True
        self._in_head = True
        self._head_size = 0

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._grow_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")
        self._grow_head(len(name) + len(value))

    def on_headers_complete(self) -> None:
        self._in_head = False
        path, _, self._query = self._url.decode("utf-8", "replace").partition("?")
        self._path = unquote(path) if "%" in path else path
        method = self._parser.get_method().decode()
        self._keep_body = self._server.reads_body(method, self._path)
        if self._headers.get("expect", "").lower() == "100-continue" and self._transport:
            self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > MAX_BODY:
            self._fail(
                413, b'{"ok":false,"error_code":413,"description":"Request Entity Too Large"}'
            )
            return
        if self._keep_body:
            self._body.append(body)

    def on_message_complete(self) -> None:
        self._in_head = True  # the next bytes are the next request's head
        self._head_size = 0
        self._completed += 1
        if self._transport is None or self._transport.is_closing():
            return
        request = Request(
            self._parser.get_method().decode(),
            self._path,
            self._query,
            self._headers,
            b"".join(self._body),
            self._parser.should_keep_alive(),
        )
        self._body = []
        if self._task is not None or self._pending:
            self._pending.append(request)  # pipelined: answered in order
            self._pending_bytes += len(request.body)
            self._update_reading()
        else:
            self._handle(request)

    # --- answering -------------------------------------------------------------------

    def _handle(self, request: Request) -> None:
        try:
            answer = self._server.handler(request)
        except Exception:
            logger.exception("emulator.handler_failed", path=request.path)
            answer = _INTERNAL_ERROR
        if isinstance(answer, Response) or answer is None:
            self._respond(request, answer)
        else:
            self._task = asyncio.get_running_loop().create_task(self._later(request, answer))

    async def _later(self, request: Request, answer: Awaitable[Answer]) -> None:
        try:
            result = await answer
        except Exception:
            logger.exception("emulator.handler_failed", path=request.path)
            result = _INTERNAL_ERROR
        self._task = None
        self._respond(request, result)
        while self._pending and self._task is None and self._transport is not None:
            request = self._pending.popleft()
            self._pending_bytes -= len(request.body)
            self._handle(request)
        self._update_reading()

    def _respond(self, request: Request, response: Answer) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if response is None:
            self._pending.clear()
            self._pending_bytes = 0
            transport.close()
            return
        transport.write(_encode(response, request.keep_alive))
        if not request.keep_alive:
            transport.close()

    def _fail(self, status: int, body: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(_encode(Response(status, body), keep_alive=False))
            self._transport.close()


def _reads_every_body(method: str, path: str) -> bool:
    return True


class HttpServer:
    def __init__(self, handler: Handler, reads_body: ReadsBody = _reads_every_body) -> None:
        self.handler = handler
        self.reads_body = reads_body
        self.connections: set[_Connection] = set()
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), host, port)
        bound = self._server.sockets[0].getsockname()
        return str(bound[0]), int(bound[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            connection.close()
        if self._server is not None:
            await self._server.wait_closed()
        # Let the protocols see connection_lost and cancel what they were waiting for.
        await asyncio.sleep(0)
