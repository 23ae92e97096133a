"""The control API under `/control/...` and the HTML page at `/`.

For tests and dev mode: read the messages Telegram would have delivered, reset, mark chats
blocked, migrated or missing, and set faults and limits. Bad input gets a 400 in Herald's
error envelope `{"error": {"code", "message", "details"}}`; any other path gets Telegram's
own 404.

There is no authentication: whoever reaches the port may read every message and make
every send fail. So the emulator listens on 127.0.0.1 unless told otherwise (compose
publishes it on the host's loopback only), and it shows no token (records.py).
"""

from __future__ import annotations

import dataclasses
import html
import re
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from herald.emulator import people
from herald.emulator.core import Emulator
from herald.emulator.httpserver import Answer, Request, Response
from herald.emulator.methods import Upload
from herald.emulator.options import FaultConfig, LimitConfig, OptionError, build
from herald.emulator.replies import NOT_FOUND

_CHAT_ROUTE = re.compile(r"/control/chats/([^/]+)/(block|missing|migrate)")
_USER_ROUTE = re.compile(r"/control/users/([^/]+)/(start|send|block|unblock)")


class ControlError(Exception):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status

    def response(self) -> Response:
        error = {"code": self.code, "message": self.message, "details": {}}
        return Response(self.status, orjson.dumps({"error": error}))


def _default(value: object) -> Any:
    if isinstance(value, Upload):
        return {"upload": value.filename, "size": value.size}
    raise TypeError


def _json(data: Any) -> Response:
    return Response(200, orjson.dumps(data, default=_default))


def _int(raw: str | None, name: str) -> int | None:
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise ControlError("invalid_parameter", f"{name} must be an integer") from None


def _body(request: Request) -> dict[str, Any]:
    if not request.body:
        return {}
    try:
        data = orjson.loads(request.body)
    except orjson.JSONDecodeError:
        raise ControlError("invalid_json", "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ControlError("invalid_json", "the body must be a JSON object")
    return data


_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><meta http-equiv="refresh" content="2">
<title>Telegram emulator</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:2px 8px;text-align:left;
vertical-align:top}}h2{{margin-top:1.5em}}pre{{margin:0;white-space:pre-wrap}}</style>
</head><body><h1>Telegram emulator</h1><p>{summary}</p>{chats}</body></html>"""


def _summary(body: Any) -> str:
    """One line of what an update says: who, where, and the text or the change."""
    if not isinstance(body, dict):
        return ""
    chat = body.get("chat", {}).get("id")
    if "new_chat_member" in body:
        return f"chat {chat}: bot is {body['new_chat_member'].get('status')}"
    if "migrate_to_chat_id" in body:
        return f"chat {chat} migrated to {body['migrate_to_chat_id']}"
    if "migrate_from_chat_id" in body:
        return f"chat {chat} migrated from {body['migrate_from_chat_id']}"
    return f"chat {chat}: {body.get('text', '')}"


class ControlApi:
    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self._routes: dict[tuple[str, str], Callable[[Request], Any]] = {
            ("GET", "/"): self.page,
            ("GET", "/control/messages"): self.messages,
            ("GET", "/control/messages/wait"): self.wait_messages,
            ("GET", "/control/received"): self.received,
            ("GET", "/control/stats"): self.stats,
            ("POST", "/control/reset"): self.reset,
            ("GET", "/control/faults"): self.faults,
            ("POST", "/control/faults"): self.faults,
            ("GET", "/control/limits"): self.limits,
            ("POST", "/control/limits"): self.limits,
            ("GET", "/control/updates"): self.updates,
        }

    def __call__(self, request: Request) -> Answer | Awaitable[Answer]:
        try:
            route = self._routes.get((request.method, request.path))
            if route is not None:
                result: Answer | Awaitable[Answer] = route(request)
                return result
            chat = _CHAT_ROUTE.fullmatch(request.path)
            if chat is not None and request.method == "POST":
                return self.mark_chat(request, chat.group(1), chat.group(2))
            user = _USER_ROUTE.fullmatch(request.path)
            if user is not None and request.method == "POST":
                return self.user_acts(request, user.group(1), user.group(2))
        except ControlError as exc:
            return exc.response()
        return Response(NOT_FOUND.status, NOT_FOUND.body)

    def messages(self, request: Request) -> Response:
        chat_id = _int(request.query_params().get("chat_id"), "chat_id")
        return _json({"messages": self.emulator.chat_messages(chat_id)})

    def wait_messages(self, request: Request) -> Awaitable[Answer]:
        query = request.query_params()
        count = _int(query.get("count"), "count") or 1
        chat_id = _int(query.get("chat_id"), "chat_id")
        try:
            timeout = float(query.get("timeout", "5"))
        except ValueError:
            raise ControlError("invalid_parameter", "timeout must be a number") from None
        return self._wait(count, timeout, chat_id)

    async def _wait(self, count: int, seconds: float, chat_id: int | None) -> Answer:
        try:
            messages = await self.emulator.wait_messages(count, seconds, chat_id)
        except TimeoutError as exc:
            return ControlError("timeout", str(exc), status=408).response()
        return _json({"messages": messages})

    def received(self, request: Request) -> Response:
        return _json({"received": self.emulator.received})

    def stats(self, request: Request) -> Response:
        return _json(self.emulator.stats())

    def reset(self, request: Request) -> Response:
        self.emulator.reset()
        return _json({"ok": True})

    def mark_chat(self, request: Request, raw_chat_id: str, mark: str) -> Response:
        chat_id = _int(raw_chat_id, "chat_id")
        assert chat_id is not None  # the route matched a non-empty segment
        chats = self.emulator.chats
        if mark == "block":
            chats.blocked.add(chat_id)
        elif mark == "missing":
            chats.missing.add(chat_id)
        else:
            body = _body(request)
            new_chat_id = body.get("new_chat_id")
            if isinstance(new_chat_id, bool) or not isinstance(new_chat_id, int):
                raise ControlError("invalid_parameter", "new_chat_id must be an integer")
            people.migrate(self.emulator, self._bot(body, required=False), chat_id, new_chat_id)
        return _json({"ok": True})

    def _bot(self, body: dict[str, Any], *, required: bool = True) -> int | None:
        """The bot an action is for: `bot_id`, or the one bot the emulator knows."""
        raw = body.get("bot_id")
        if raw is not None:
            if isinstance(raw, bool) or not isinstance(raw, int) or raw <= 0:
                raise ControlError("invalid_parameter", "bot_id must be a positive integer")
            return raw
        known = self.emulator.known_bot()
        if known is None and required:
            raise ControlError(
                "bot_unknown", "name the bot with bot_id: the emulator knows none, or several"
            )
        return known

    def user_acts(self, request: Request, raw_user_id: str, action: str) -> Response:
        user_id = _int(raw_user_id, "user_id")
        if user_id is None or user_id <= 0:
            raise ControlError("invalid_parameter", "a user id is a positive integer")
        body = _body(request)
        bot = self._bot(body)
        assert bot is not None
        update = None
        if action == "start":
            code = body.get("code")
            if code is not None and not isinstance(code, str):
                raise ControlError("invalid_parameter", "code must be a string")
            update = people.start(self.emulator, bot, user_id, code)
        elif action == "send":
            text = body.get("text")
            if not isinstance(text, str) or not text:
                raise ControlError("invalid_parameter", "text must be a non-empty string")
            reply_to = body.get("reply_to_message_id")
            if reply_to is not None and (
                not isinstance(reply_to, int) or isinstance(reply_to, bool) or reply_to <= 0
            ):
                raise ControlError("invalid_parameter", "reply_to_message_id is a message id")
            update = people.send_text(self.emulator, bot, user_id, text, reply_to)
        else:
            people.set_blocked(self.emulator, bot, user_id, action == "block")
        return _json({"ok": True, "update": update})

    def updates(self, request: Request) -> Response:
        bot = _int(request.query_params().get("bot_id"), "bot_id")
        if bot is None:
            bot = self._bot({})
        assert bot is not None
        box = self.emulator.bot_updates(bot)
        return _json(
            {
                "bot_id": bot,
                "webhook": box.info(),
                "pending": list(box.pending),
                "delivered": list(box.delivered),
                "next_update_id": box.next_update_id,
                "conflicts": box.conflicts,
            }
        )

    def faults(self, request: Request) -> Response:
        if request.method == "POST":
            try:
                self.emulator.set_faults(build(FaultConfig, _body(request)))
            except OptionError as exc:
                raise ControlError("invalid_option", str(exc)) from None
        return _json(dataclasses.asdict(self.emulator.faults.config))

    def limits(self, request: Request) -> Response:
        if request.method == "POST":
            try:
                self.emulator.set_limits(build(LimitConfig, _body(request)))
            except OptionError as exc:
                raise ControlError("invalid_option", str(exc)) from None
        return _json(dataclasses.asdict(self.emulator.flood_limits.config))

    def _update_sections(self) -> list[str]:
        """Each bot's updates: where they go (never the secret), pending, the latest out."""
        sections = []
        for bot, box in sorted(self.emulator.updates.items()):
            way = f"webhook {html.escape(box.webhook_url)}" if box.webhook_url else "getUpdates"
            rows = "".join(
                f"<tr><td>{u['update_id']}</td><td>{html.escape(kind)}</td>"
                f"<td><pre>{html.escape(_summary(u[kind]))}</pre></td><td>{state}</td></tr>"
                for state, updates in (("pending", box.pending), ("delivered", box.delivered))
                for u in list(updates)[-200:]
                for kind in [next(k for k in u if k != "update_id")]
            )
            sections.append(
                f"<h2>Updates to bot {bot}</h2><p>by {way}; {len(box.pending)} pending</p>"
                "<table><tr><th>update_id</th><th>kind</th><th>what</th><th>state</th></tr>"
                f"{rows}</table>"
            )
        return sections

    def page(self, request: Request) -> Response:
        records = self.emulator.records
        sections = []
        for chat_id, messages in sorted(records.by_chat.items()):
            rows = "".join(
                f"<tr><td>{m['message_id']}</td><td>{html.escape(m['method'])}</td><td><pre>"
                f"{html.escape(str(m.get('text') or m.get('caption') or ''))}</pre></td></tr>"
                for m in list(messages)[-200:]
            )
            sections.append(
                f"<h2>Chat {chat_id}</h2><table><tr><th>id</th><th>method</th><th>text</th></tr>"
                f"{rows}</table>"
            )
        summary = (
            f"{records.message_count} messages, {records.request_count} requests received"
            f" (the latest {records.keep} of each are kept)."
        )
        sections.extend(self._update_sections())
        body = _PAGE.format(summary=summary, chats="".join(sections) or "<p>No messages yet.</p>")
        return Response(200, body.encode(), b"text/html; charset=utf-8")
