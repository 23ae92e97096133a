"""The bot token never reaches a producer, an audit event or a log line (issue 11, finding 2).

A Bot API URL carries the token in its path (`/bot<token>/sendMessage`), and aiohttp quotes
the URL in some of its errors. A server in front of Telegram that misbehaves (a redirect
loop, a redirect to a port nobody listens on, a redirect to another scheme) made the worker
store those errors, token included, where `GET /api/tasks/{id}` showed them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import structlog
from aiohttp import web

from alembic import command
from herald.config import Settings
from herald.db import migrate
from herald.logging import configure_logging
from herald.telegram.redact import redact
from tests.conftest import PG_SERVER
from tests.delivery.conftest import post, task_row
from tests.delivery.workers import wait_for
from tests.support.databases import drop_database
from tests.support.processes import free_port

TOKEN = "987654:SUPER-SECRET-BOT-TOKEN"
SECRET = "SUPER-SECRET-BOT-TOKEN"
# What a real token looks like: the bot's id, a colon, 35 characters.
REAL_SHAPED = "7012345678:AAHk3vQ0x9Zr1bT5yWcE2dF7gJ8hK4mN6pQ"


def _read(path: str) -> str:
    return Path(path).read_bytes().decode("utf-8", "replace")


@pytest.fixture
async def misdirecting_api() -> AsyncIterator[str]:
    """A "Bot API" that answers sendMessage with a redirect chosen by the chat id:
    1 loops forever, 2 points at a closed port, 3 points at an ftp:// URL. Each redirect
    keeps the request's path, token included, as a careless proxy would."""
    closed = free_port()

    async def send(request: web.Request) -> web.StreamResponse:
        # Telegram's parameters come as JSON (Herald's session) or a form (aiogram's own).
        is_json = request.content_type == "application/json"
        params = await request.json() if is_json else await request.post()
        path = request.path
        chat = str(params.get("chat_id"))
        if chat == "1":
            raise web.HTTPFound(f"/loop{path}")
        if chat == "2":
            raise web.HTTPFound(f"http://127.0.0.1:{closed}{path}")
        raise web.HTTPFound(f"ftp://127.0.0.1{path}")

    async def loop(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(request.path)

    app = web.Application()
    app.router.add_post("/bot{token}/{method}", send)
    app.router.add_route("*", "/loop/{tail:.*}", loop)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_misdirected_sends_keep_the_token_out_of_the_api_the_events_and_the_logs(
    db: Any, gateway: Any, start_worker: Any, misdirecting_api: str
) -> None:
    # DEBUG: the per-message lines (task_recorded, taskiq's) are where the token was seen.
    worker = await start_worker(
        telegram_api_url=misdirecting_api,
        bot_token=TOKEN,
        backoff_base_seconds=60,
        log_level="DEBUG",
    )
    loop = await post(gateway, "loop", chat_id=1, text="a")
    refused = await post(gateway, "refused", chat_id=2, text="b")
    ftp = await post(gateway, "ftp", chat_id=3, text="c")

    async def all_answered() -> bool:
        rows = [await task_row(db, t) for t in (loop, refused, ftp)]
        return all(r["last_error"] for r in rows)

    await wait_for(all_answered, 30, "an outcome for each task")
    expected = {
        loop: ("uncertain", "TooManyRedirects"),
        refused: ("pending", "ClientConnectorError"),
        ftp: ("uncertain", "NonHttpUrlRedirectClientError"),
    }
    writer = {"Authorization": gateway.headers["X-Writer"]}
    for task_id, (status, error_class) in expected.items():
        shown = await gateway.get(f"/api/tasks/{task_id}", headers=writer)
        assert shown.json()["status"] == status
        assert error_class in shown.json()["last_error"]
        assert SECRET not in shown.text
        trail = await gateway.get(f"/api/tasks/{task_id}/events", headers=writer)
        assert len(trail.json()["items"]) >= 3
        assert SECRET not in trail.text
    stored = await db.fetch("SELECT * FROM task_events")
    assert SECRET not in json.dumps([dict(r) for r in stored], default=str)
    stored_tasks = await db.fetch("SELECT * FROM tasks")
    assert SECRET not in json.dumps([dict(r) for r in stored_tasks], default=str)

    await worker.stop()
    text = _read(str(worker.log_path))
    assert text.count("task_recorded") >= 3  # the lines that carried the token before
    assert SECRET not in text


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        (
            "url='http://127.0.0.1:18125/bot987654:SUPER-SECRET-BOT-TOKEN/sendMessage'",
            "url='http://127.0.0.1:18125/bot987654:[REDACTED]/sendMessage'",
        ),
        ("GET /bot987654%3ASUPER-SECRET-BOT-TOKEN/getMe", "GET /bot987654%3A[REDACTED]/getMe"),
        (f"token {REAL_SHAPED} leaked", "token 7012345678:[REDACTED] leaked"),
        (f"as configured: {TOKEN}.", "as configured: 987654:[REDACTED]."),
        ("the secret alone: SUPER-SECRET-BOT-TOKEN", "the secret alone: [REDACTED]"),
        # Not tokens: times, ports, ids.
        ("at 12:30:45 on 127.0.0.1:8081, chat -1001234567890", None),
    ],
)
def test_redact_hides_configured_and_token_shaped_secrets(raw: str, shown: str | None) -> None:
    assert redact(raw, [TOKEN]) == (raw if shown is None else shown)


@pytest.fixture(params=[True, False], ids=["json", "console"])
def logs_with_token(
    request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str], settings: Settings
) -> Iterator[pytest.CaptureFixture[str]]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    configured = settings.model_copy(update={"bot_token": TOKEN, "log_json": request.param})
    configure_logging(configured, service="worker")
    yield capsys
    structlog.contextvars.clear_contextvars()
    structlog.reset_defaults()
    root.handlers[:], root.level = saved


def test_log_lines_never_carry_a_token(logs_with_token: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:1/bot{TOKEN}/sendMessage"
    structlog.get_logger("herald.test").warning("send_failed", error=f"TooManyRedirects {url}")
    logging.getLogger("aiohttp.client").warning("redirected to %s", url)
    try:
        raise RuntimeError(f"bad answer from {url} for {REAL_SHAPED}")
    except RuntimeError:
        structlog.get_logger("herald.test").exception("unexpected")
    err = logs_with_token.readouterr().err
    assert "send_failed" in err
    assert "redirected to" in err
    assert "RuntimeError" in err
    assert SECRET not in err
    assert REAL_SHAPED.split(":")[1] not in err


def test_the_migration_redacts_errors_stored_before_the_fix() -> None:
    url = f"{PG_SERVER}/herald_redact_{secrets.token_hex(6)}"
    leaked = (
        "TelegramNetworkError: HTTP Client says - TooManyRedirects: 0, message='', "
        "url='http://127.0.0.1:18125/bot987654:SUPER-SECRET-BOT-TOKEN/sendMessage'"
    )
    try:
        migrate.upgrade(url)
        command.downgrade(migrate.alembic_config(url), "0003")
        asyncio.run(_execute(url, _INSERT_LEAKED, leaked, f"x {REAL_SHAPED} at 12:30:45"))
        migrate.upgrade(url)
        rows = asyncio.run(_execute(url, "SELECT last_error FROM tasks ORDER BY id"))
    finally:
        asyncio.run(drop_database(url))
    assert [r["last_error"] for r in rows] == [
        leaked.replace(SECRET, "[REDACTED]"),
        "x 7012345678:[REDACTED] at 12:30:45",
    ]


_INSERT_LEAKED = """
INSERT INTO tasks (client, idempotency_key, request_hash, chat_id, content, max_attempts,
                   status, attempt, last_error)
VALUES ('a', 'k1', '\\x00', '1', '{}', 5, 'uncertain', 1, $1),
       ('a', 'k2', '\\x00', '1', '{}', 5, 'failed', 5, $2)
"""


async def _execute(url: str, sql: str, *args: Any) -> list[Any]:
    conn = await asyncpg.connect(url.replace("+asyncpg", ""))
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()
