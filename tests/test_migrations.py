"""The schema migrates up from nothing, down to nothing, and up again, and is what the
models describe."""

from __future__ import annotations

import asyncio
import secrets

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
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


async def _sql(url: str, *statements: str) -> list[list[tuple[object, ...]]]:
    engine = create_async_engine(url)
    results = []
    try:
        async with engine.begin() as conn:
            for statement in statements:
                result = await conn.execute(text(statement))
                results.append([tuple(r) for r in result] if result.returns_rows else [])
    finally:
        await engine.dispose()
    return results


def test_recipient_events_migrate_up_and_down() -> None:
    """0008 keeps the task events written before it, takes recipients' events beside them,
    and going back to 0007 drops those (and their attempts) and keeps the rest."""
    url = f"{PG_SERVER}/herald_mig_{secrets.token_hex(6)}"
    config = migrate.alembic_config(url)
    endpoint = (
        "INSERT INTO callback_endpoints (client, url, hosts, secret, source)"
        " VALUES ('shop', 'http://x/h', '{x}', 'whsec_x', 'api')"
    )
    task_event = (
        "INSERT INTO callback_events (task_id, client, seq, type, payload)"
        " VALUES (7, 'shop', 1, 'task.delivered', '{}')"
    )
    try:
        migrate.upgrade(url)
        command.downgrade(config, "0007")
        asyncio.run(_sql(url, endpoint, task_event))
        command.upgrade(config, "0008")
        [[updates], _, _, [(events,)]] = asyncio.run(
            _sql(
                url,
                "SELECT updates FROM callback_endpoints",
                "INSERT INTO callback_events (recipient, client, seq, type, payload)"
                " VALUES ('ann', 'shop', 3000000000, 'message.received', '{}')",
                "INSERT INTO callback_attempts (event_id, attempt, worker, latency_ms)"
                " SELECT id, 1, 'w', 1 FROM callback_events",
                "SELECT count(*) FROM callback_events",
            )
        )
        assert updates == (False,)  # an endpoint from before: no recipient events
        assert events == 2
        with pytest.raises(IntegrityError, match="one_stream"):
            asyncio.run(  # a task's and a recipient's at once
                _sql(
                    url,
                    "INSERT INTO callback_events (task_id, recipient, client, seq, type, payload)"
                    " VALUES (8, 'ann', 'shop', 1, 'task.delivered', '{}')",
                )
            )
        with pytest.raises(IntegrityError, match="uq_callback_events_recipient_seq"):
            asyncio.run(  # one event per update and recipient
                _sql(
                    url,
                    "INSERT INTO callback_events (recipient, client, seq, type, payload)"
                    " VALUES ('ann', 'shop', 3000000000, 'recipient.blocked', '{}')",
                )
            )

        command.downgrade(config, "0007")
        [left, attempts] = asyncio.run(
            _sql(
                url,
                "SELECT task_id, seq, type FROM callback_events",
                "SELECT count(*) FROM callback_attempts",
            )
        )
        assert left == [(7, 1, "task.delivered")]
        assert attempts == [(1,)]
        command.upgrade(config, "head")
        assert _schema_diff(url) == []
    finally:
        asyncio.run(drop_database(url))
