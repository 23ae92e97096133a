"""The emulator's HTTP face: the Bot API at `/bot<token>/<method>`, the control API, the page.

The Bot API handler is the hot path: no logging, no task, the body parsed by hand, fixed
answers pre-encoded. It answers at once, except for the two ambiguous faults: a timeout
answers late and a drop never answers. A body is parsed only for a method the emulator
knows called with a token it accepts: anything else is answered without reading it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from email import policy
from email.parser import BytesParser
from typing import Any

import orjson

from herald.emulator.control import ControlApi
from herald.emulator.core import Emulator
from herald.emulator.faults import Fault
from herald.emulator.httpserver import Answer, HttpServer, Request, Response, parse_form
from herald.emulator.methods import METHODS, Upload
from herald.emulator.records import bot_id
from herald.emulator.replies import UNAUTHORIZED, error

_TERMINATED = error(
    409,
    "Conflict: terminated by other getUpdates request;"
    " make sure that only one bot instance is running",
)


def _multipart(request: Request, params: dict[str, Any]) -> dict[str, Any]:
    """A multipart form (an upload); rare, so the standard library's MIME parser will do."""
    head = f"Content-Type: {request.headers.get('content-type', '')}\r\n\r\n".encode("latin-1")
    message = BytesParser(policy=policy.HTTP).parsebytes(head + request.body)
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str) or not name:
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        filename = part.get_filename()
        if filename is not None:
            params[name] = Upload(filename, len(data), part.get_content_type())
        else:
            params[name] = data.decode(part.get_content_charset() or "utf-8", "replace")
    return params


def _params(request: Request) -> dict[str, Any]:
    """Telegram takes parameters from the query string, a form, JSON or multipart."""
    params: dict[str, Any] = request.query_params()
    if not request.body:
        return params
    content_type = request.content_type
    if content_type == "application/json":
        try:
            data = orjson.loads(request.body)
        except orjson.JSONDecodeError:
            data = None
        if isinstance(data, dict):
            params.update(data)
        return params
    if content_type.startswith("multipart/"):
        return _multipart(request, params)
    return parse_form(request.body, params)


_UNAUTHORIZED = Response(UNAUTHORIZED.status, UNAUTHORIZED.body, UNAUTHORIZED.content_type)


async def _late(response: Response, seconds: float) -> Answer:
    await asyncio.sleep(seconds)
    return response


class EmulatorApp:
    """Routes a request to the Bot API or the control API."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self.control = ControlApi(emulator)

    def reads_body(self, method: str, path: str) -> bool:
        """Only a known method called with an accepted token has its body read."""
        if path.startswith("/bot"):
            token, slash, name = path[4:].partition("/")
            if slash and "/" not in name:
                return self.emulator.bot(token) is not None and name.lower() in METHODS
        return method == "POST" and path.startswith("/control/")

    def __call__(self, request: Request) -> Answer | Awaitable[Answer]:
        path = request.path
        if path.startswith("/bot"):
            token, slash, method = path[4:].partition("/")
            if slash and "/" not in method:
                return self.bot_api(request, token, method)
        return self.control(request)

    def bot_api(self, request: Request, token: str, method: str) -> Answer | Awaitable[Answer]:
        emulator = self.emulator
        if emulator.bot(token) is None:
            return _UNAUTHORIZED
        params: dict[str, Any] = {}
        size = None
        if method.lower() in METHODS:
            params = _params(request)
            if request.content_type != "application/json":  # strings only: records.py
                size = len(request.body) + len(request.query)
        if method.lower() == "getupdates":
            poll = emulator.bot_updates(bot_id(token)).poll_began()
            waiting = self._long_poll_wait(token, params)
            if waiting is not None:
                return self._long_poll(token, method, params, size, waiting, poll)
        reply, fault = emulator.call(token, method, params, size)
        response = Response(reply.status, reply.body, reply.content_type)
        if fault is Fault.DROP:
            return None  # received, recorded, and the connection closes unanswered
        if fault is Fault.TIMEOUT:
            return _late(response, emulator.faults.config.timeout_seconds)
        return response

    def _long_poll_wait(self, token: str, params: dict[str, Any]) -> float | None:
        """Seconds a getUpdates should wait for an update (None: answer at once)."""
        box = self.emulator.bot_updates(bot_id(token))
        try:
            seconds = float(params.get("timeout") or 0)
            offset = int(params.get("offset") or 0)
        except (TypeError, ValueError):
            return None  # the method answers Telegram's 400
        if box.webhook_url or seconds <= 0:
            return None
        box.confirm(offset)  # what the client has, it has, whether or not it waits
        return None if box.pending else min(seconds, 50.0)

    async def _long_poll(
        self,
        token: str,
        method: str,
        params: dict[str, Any],
        size: int | None,
        seconds: float,
        poll: int,
    ) -> Answer:
        if not await self.emulator.bot_updates(bot_id(token)).long_poll(seconds, poll):
            return Response(409, _TERMINATED.body, _TERMINATED.content_type)
        reply, _ = self.emulator.call(token, method, params, size)
        return Response(reply.status, reply.body, reply.content_type)


class RunningServer:
    def __init__(self, server: HttpServer, base_url: str) -> None:
        self.server = server
        self.base_url = base_url

    async def cleanup(self) -> None:
        await self.server.close()


async def start(emulator: Emulator, host: str, port: int) -> tuple[RunningServer, str]:
    """Serve `emulator` on host:port (0 picks a free port); returns the server and base URL."""
    app = EmulatorApp(emulator)
    server = HttpServer(app, app.reads_body)
    bound_host, bound_port = await server.start(host, port)
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    base_url = f"http://{shown}:{bound_port}"
    return RunningServer(server, base_url), base_url
