"""Throwaway databases on a PostgreSQL server (the migrations create them: `herald.db.migrate`)."""

from __future__ import annotations

import asyncpg
from sqlalchemy.engine import make_url

from herald.db.pool import asyncpg_dsn


async def drop_database(database_url: str) -> None:
    """DROP DATABASE ... WITH (FORCE): connections still open to it are ended."""
    name = make_url(database_url).database
    conn = await asyncpg.connect(asyncpg_dsn(database_url, "postgres"))
    try:
        quoted = '"' + str(name).replace('"', '""') + '"'
        await conn.execute(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)")
    finally:
        await conn.close()


# Every table a test writes, emptied and its ids restarted: a status callback row left
# behind would otherwise belong to the next test's task of the same id.
EMPTY_TABLES = (
    "TRUNCATE task_events, tasks, callback_events, callback_attempts, callback_endpoints,"
    " callback_audit, chats, recipients, recipient_links, telegram_updates, telegram_offsets"
    " RESTART IDENTITY CASCADE"
)
