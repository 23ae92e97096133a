"""uvicorn's httptools protocol with the limits it lacks: head size and head read time.

uvicorn's httptools protocol takes a request line and headers of any size (a 16 MiB header
was accepted) and waits for an unfinished head as long as the client keeps the connection
open. `LimitedHttpToolsProtocol` refuses a head over `HERALD_API_MAX_HEADER_BYTES` with
431 and closes a connection whose head has not arrived within
`HERALD_API_HEADER_TIMEOUT_SECONDS` of its first byte (of the connection, for the first
request): a slow-loris client holds a connection that long, not forever. uvicorn's own
`timeout_keep_alive` still closes idle connections between requests, and
`limit_concurrency` (set by `herald api`) answers 503 beyond so many connections or
requests at once.

Only uvicorn's parser callbacks are extended, and each calls uvicorn's own first; the
uvicorn version is pinned in requirements.lock.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httptools
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from herald.config import get_settings

_TOO_LARGE_BODY = (
    b'{"error": {"code": "headers_too_large", "message": "the request line and headers'
    b' are too large", "details": {}}}'
)
_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
    b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(_TOO_LARGE_BODY), _TOO_LARGE_BODY)
)


class HeadTooLarge(httptools.HttpParserError):
    """Raised from a parser callback: uvicorn then answers through `send_400_response`."""


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        settings = get_settings()
        self.max_head = settings.api_max_header_bytes
        self.head_timeout = settings.api_header_timeout_seconds
        self.head_size = 0
        self.in_head = True
        self.head_too_large = False
        self.completed = 0
        self.head_timer: asyncio.TimerHandle | None = None

    # --- the head's read time ---------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def _start_head_timer(self) -> None:
        if self.head_timer is None:
            self.head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _stop_head_timer(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def _head_timed_out(self) -> None:
        self.head_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    # --- the head's size ---------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        in_head, completed = self.in_head, self.completed
        super().data_received(data)
        if in_head and self.in_head and self.completed == completed and not self.head_too_large:
            # The whole chunk belongs to one unfinished head. httptools keeps a partial
            # header to itself until it ends, so count raw bytes too, not only fields.
            self.head_size += len(data)
            if self.head_size > self.max_head:
                self.head_too_large = True
                self.send_400_response("")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._start_head_timer()  # the next request's head has begun

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        self._grow_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        self._grow_head(len(name) + len(value) + 4)

    def _grow_head(self, size: int) -> None:
        self.head_size += size
        if self.head_size > self.max_head:
            self.head_too_large = True
            raise HeadTooLarge("request head too large")

    def on_headers_complete(self) -> None:
        self._stop_head_timer()
        self.in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self.in_head = True  # the next bytes are the next request's head
        self.head_size = 0
        self.completed += 1
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        if not self.head_too_large:
            super().send_400_response(msg)
        elif not self.transport.is_closing():
            self.transport.write(_TOO_LARGE)
            self.transport.close()
