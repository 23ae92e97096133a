"""The schema migrates up from nothing, down to nothing, and up again."""

from __future__ import annotations

import asyncio
import secrets

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from alembic import command
from herald.db import migrate
from tests.conftest import PG_SERVER


async def _tables(url: str) -> set[str]:
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        )
        names = {r[0] for r in rows}
    await engine.dispose()
    return names


def test_migrate_creates_database_and_round_trips() -> None:
    url = f"{PG_SERVER}/herald_mig_{secrets.token_hex(6)}"
    try:
        migrate.upgrade(url)  # the database does not exist yet
        assert {"tasks", "task_events", "alembic_version"} <= asyncio.run(_tables(url))
        command.downgrade(migrate.alembic_config(url), "base")
        assert asyncio.run(_tables(url)) == {"alembic_version"}
        migrate.upgrade(url)  # the database exists now: only the schema is created
        assert {"tasks", "task_events"} <= asyncio.run(_tables(url))
    finally:
        asyncio.run(migrate.drop_database(url))
