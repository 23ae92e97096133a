"""One poller per bot at a time: a PostgreSQL advisory lock held on a connection of its own.

Telegram answers 409 to two getUpdates at once (the newer one ends the other's long
poll), so of all the processes that may poll (`herald poll`, and every worker process
with HERALD_POLL_UPDATES), only the one holding the bot's lock polls. The others wait
for it inside `pg_advisory_lock`: one blocked statement each, nothing polled. The lock
is the session's, so it goes when its holder exits or loses its connection (PostgreSQL
ends the session when the socket closes; for a machine gone silent, when TCP keepalives
give up, the connection asks for them after 30 s), and the next in line has it at once.
The lock needs a direct connection to PostgreSQL: a pooler in transaction mode
(PgBouncer's) would hand the session to someone else.

The holder pings its lock connection every `CHECK_SECONDS`; a failed ping is a lost
lock: the work is cancelled (the poller's getUpdates or its transaction: nothing lost,
herald.updates.poller) and the process queues for the lock again. Until that ping two
processes may poll at once, which is harmless (an update is stored once by its key, the
offset only moves forward): one of them gets a 409 and tries again.

The holder shows in `pg_stat_activity` as `herald poll <pid>@<host>` (its
`application_name`), beside its granted lock in `pg_locks`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Callable, Coroutine
from typing import Any

import asyncpg
import structlog

from herald.config import Settings
from herald.db.pool import asyncpg_dsn

log = structlog.get_logger(__name__)

Work = Callable[[], Coroutine[Any, Any, None]]

CHECK_SECONDS = 2.0
_RETRY_SECONDS = 2.0
# The lock's key: one bigint per bot, in a namespace of Herald's own.
_KEY = "hashtextextended('herald:poll:' || $1::text, 0)"
_LOCK = f"SELECT pg_advisory_lock({_KEY})"


def application_name() -> str:
    """How the lock's connection shows in pg_stat_activity (at most 63 characters)."""
    return f"herald poll {os.getpid()}@{socket.gethostname()}"[:63]


async def _connect(settings: Settings) -> Any:
    return await asyncpg.connect(
        asyncpg_dsn(settings.database_url),
        server_settings={
            "application_name": application_name(),
            # Waiting for the lock is this connection's purpose: no timeout may end it.
            "statement_timeout": "0",
            "lock_timeout": "0",
            "idle_in_transaction_session_timeout": "0",
            "tcp_keepalives_idle": "30",
            "tcp_keepalives_interval": "10",
            "tcp_keepalives_count": "3",
        },
    )


async def _until(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def _cancel(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


async def while_leader(settings: Settings, stop: asyncio.Event, work: Work) -> None:
    """Run `work()` whenever this process holds the bot's poll lock, until `stop`: it is
    cancelled when the lock is lost or `stop` is set, and started again on the next turn.
    Errors (PostgreSQL away, `work` failing) are logged, and the process queues again."""
    bot_id = settings.bot_id
    while not stop.is_set():
        try:
            conn = await _connect(settings)
        except Exception as exc:  # PostgreSQL away: try again
            log.warning("poll_lock_unavailable", error=type(exc).__name__)
            await _until(stop, _RETRY_SECONDS)
            continue
        try:
            if await _take(conn, bot_id, stop):
                log.info("poll_lock_taken", bot_id=bot_id, holder=application_name())
                await _hold(conn, stop, work)
        except Exception as exc:
            log.warning("poll_lock_lost", bot_id=bot_id, error=type(exc).__name__)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), CHECK_SECONDS)
            conn.terminate()  # no-op once closed; a connection that would not close goes
        if not stop.is_set():
            await _until(stop, _RETRY_SECONDS)


async def _take(conn: Any, bot_id: int, stop: asyncio.Event) -> bool:
    """Wait for the lock; False when `stop` came first (the wait is cancelled)."""
    taking = asyncio.create_task(conn.execute(_LOCK, str(bot_id)))
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({taking, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if taking.done():
            taking.result()  # the lock, or the connection's error
            return True
        return False
    finally:
        stopping.cancel()
        if not taking.done():
            # asyncpg cancels the statement in PostgreSQL: this process leaves the line.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_cancel(taking), CHECK_SECONDS)


async def _hold(conn: Any, stop: asyncio.Event, work: Work) -> None:
    """Run `work` while the lock's connection answers, until `stop`."""
    working = asyncio.create_task(work())
    stopping = asyncio.create_task(stop.wait())
    try:
        while True:
            await asyncio.wait({working, stopping}, timeout=CHECK_SECONDS)
            if stop.is_set():
                return
            if working.done():
                try:
                    working.result()
                except Exception:
                    log.exception("poll_failed")  # the lock goes, and is taken again
                return
            await asyncio.wait_for(conn.fetchval("SELECT 1"), CHECK_SECONDS)
    finally:
        stopping.cancel()
        await _cancel(working)
