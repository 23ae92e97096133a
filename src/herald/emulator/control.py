"""The control API under `/control/...` and the HTML page at `/`.

For tests and dev mode: read the messages Telegram would have delivered, reset, mark chats
blocked, migrated or missing, and set faults and limits. Bad input gets a 400 in Herald's
error envelope `{"error": {"code", "message", "details"}}`.
"""

from __future__ import annotations

import dataclasses
import html
from typing import Any

import orjson
from aiohttp import web

from herald.emulator.core import Emulator
from herald.emulator.methods import Upload
from herald.emulator.options import FaultConfig, LimitConfig, OptionError, build

EMULATOR_KEY = web.AppKey("emulator", Emulator)


def _default(value: object) -> Any:
    if isinstance(value, Upload):
        return {"upload": value.filename, "size": value.size}
    raise TypeError


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=orjson.dumps(data, default=_default), status=status, content_type="application/json"
    )


def _bad(code: str, message: str, status: int = 400) -> web.HTTPException:
    body = orjson.dumps({"error": {"code": code, "message": message, "details": {}}})
    exc = web.HTTPBadRequest if status == 400 else web.HTTPRequestTimeout
    return exc(text=body.decode(), content_type="application/json")


def _int(raw: str | None, name: str) -> int | None:
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise _bad("invalid_parameter", f"{name} must be an integer") from None


def _chat_id(request: web.Request) -> int:
    chat_id = _int(request.match_info["chat_id"], "chat_id")
    assert chat_id is not None  # the route has a non-empty segment
    return chat_id


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.body_exists:
        return {}
    try:
        data = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        raise _bad("invalid_json", "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise _bad("invalid_json", "the body must be a JSON object")
    return data


def _emulator(request: web.Request) -> Emulator:
    return request.app[EMULATOR_KEY]


async def get_messages(request: web.Request) -> web.Response:
    chat_id = _int(request.query.get("chat_id"), "chat_id")
    return _json({"messages": _emulator(request).chat_messages(chat_id)})


async def wait_messages(request: web.Request) -> web.Response:
    count = _int(request.query.get("count"), "count") or 1
    chat_id = _int(request.query.get("chat_id"), "chat_id")
    try:
        timeout = float(request.query.get("timeout", "5"))
    except ValueError:
        raise _bad("invalid_parameter", "timeout must be a number") from None
    try:
        messages = await _emulator(request).wait_messages(count, timeout, chat_id)
    except TimeoutError as exc:
        raise _bad("timeout", str(exc), status=408) from None
    return _json({"messages": messages})


async def get_received(request: web.Request) -> web.Response:
    return _json({"received": _emulator(request).received})


async def stats(request: web.Request) -> web.Response:
    return _json(_emulator(request).stats())


async def reset(request: web.Request) -> web.Response:
    _emulator(request).reset()
    return _json({"ok": True})


async def block(request: web.Request) -> web.Response:
    _emulator(request).chats.blocked.add(_chat_id(request))
    return _json({"ok": True})


async def missing(request: web.Request) -> web.Response:
    _emulator(request).chats.missing.add(_chat_id(request))
    return _json({"ok": True})


async def migrate(request: web.Request) -> web.Response:
    new_chat_id = (await _body(request)).get("new_chat_id")
    if isinstance(new_chat_id, bool) or not isinstance(new_chat_id, int):
        raise _bad("invalid_parameter", "new_chat_id must be an integer")
    _emulator(request).chats.migrated[_chat_id(request)] = new_chat_id
    return _json({"ok": True})


async def faults(request: web.Request) -> web.Response:
    emulator = _emulator(request)
    if request.method == "POST":
        try:
            emulator.set_faults(build(FaultConfig, await _body(request)))
        except OptionError as exc:
            raise _bad("invalid_option", str(exc)) from None
    return _json(dataclasses.asdict(emulator.faults.config))


async def limits(request: web.Request) -> web.Response:
    emulator = _emulator(request)
    if request.method == "POST":
        try:
            emulator.set_limits(build(LimitConfig, await _body(request)))
        except OptionError as exc:
            raise _bad("invalid_option", str(exc)) from None
    return _json(dataclasses.asdict(emulator.limiter.config))


_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><meta http-equiv="refresh" content="2">
<title>Telegram emulator</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:2px 8px;text-align:left;
vertical-align:top}}h2{{margin-top:1.5em}}pre{{margin:0;white-space:pre-wrap}}</style>
</head><body><h1>Telegram emulator</h1><p>{summary}</p>{chats}</body></html>"""


async def page(request: web.Request) -> web.Response:
    emulator = _emulator(request)
    sections = []
    for chat_id, messages in sorted(emulator.by_chat.items()):
        rows = "".join(
            f"<tr><td>{m['message_id']}</td><td>{html.escape(m['method'])}</td>"
            f"<td><pre>{html.escape(str(m.get('text') or m.get('caption') or ''))}</pre></td></tr>"
            for m in messages[-200:]
        )
        sections.append(
            f"<h2>Chat {chat_id}</h2><table><tr><th>id</th><th>method</th><th>text</th></tr>"
            f"{rows}</table>"
        )
    summary = f"{len(emulator.messages)} messages, {len(emulator.received)} requests received."
    body = _PAGE.format(summary=summary, chats="".join(sections) or "<p>No messages yet.</p>")
    return web.Response(text=body, content_type="text/html")


def add_control_routes(app: web.Application) -> None:
    router = app.router
    router.add_get("/", page)
    router.add_get("/control/messages", get_messages)
    router.add_get("/control/messages/wait", wait_messages)
    router.add_get("/control/received", get_received)
    router.add_get("/control/stats", stats)
    router.add_post("/control/reset", reset)
    router.add_post("/control/chats/{chat_id}/block", block)
    router.add_post("/control/chats/{chat_id}/missing", missing)
    router.add_post("/control/chats/{chat_id}/migrate", migrate)
    router.add_route("GET", "/control/faults", faults)
    router.add_route("POST", "/control/faults", faults)
    router.add_route("GET", "/control/limits", limits)
    router.add_route("POST", "/control/limits", limits)
