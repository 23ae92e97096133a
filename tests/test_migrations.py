"""The schema migrates up from nothing, down to nothing, and up again, and is what the
models describe."""

from __future__ import annotations

import asyncio
import secrets

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from alembic import command
from herald.db import migrate
from herald.db.models import Base
from tests.conftest import PG_SERVER
from tests.support.databases import drop_database


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
        asyncio.run(drop_database(url))


def _schema_diff(url: str) -> list[object]:
    async def diff() -> list[object]:
        engine = create_async_engine(url)
        async with engine.connect() as conn:
            found: list[object] = await conn.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata)
            )
        await engine.dispose()
        return found

    return asyncio.run(diff())


def test_migrations_build_the_schema_the_models_describe() -> None:
    url = f"{PG_SERVER}/herald_mig_{secrets.token_hex(6)}"
    try:
        migrate.upgrade(url)
        assert _schema_diff(url) == []
    finally:
        asyncio.run(drop_database(url))
