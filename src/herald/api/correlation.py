"""Correlation ids: `X-Request-ID` taken from the request (or made), logged, returned, stored.

A pure ASGI middleware: Starlette's BaseHTTPMiddleware would cost a task and a stream
per request on the hot path.
"""

from __future__ import annotations

import itertools
import re
import secrets

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = b"x-request-id"
_VALID = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")
# Made ids: a random per-process prefix and a counter, unique across processes and
# restarts without a system call per request (uuid4 reads os.urandom each time).
_PREFIX = secrets.token_hex(8)
_counter = itertools.count(1)


def new_id() -> bytes:
    return f"{_PREFIX}{next(_counter):016x}".encode()


class CorrelationIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope["headers"] if k == HEADER), None)
        # A malformed id is replaced rather than refused: it is only for tracing.
        raw = given if given is not None and _VALID.fullmatch(given) else new_id()
        cid = raw.decode()
        scope["herald.correlation_id"] = cid

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (HEADER, raw)]
            await send(message)

        with structlog.contextvars.bound_contextvars(correlation_id=cid):
            await self.app(scope, receive, send_with_id)
