"""Shared fixtures: a fresh PostgreSQL database per test session, a private Redis namespace.

Tests talk to the real PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379). The session
creates `herald_test_<random>`, migrates it with Alembic, and drops it at the end; each test
starts from empty tables.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from herald.config import Settings
from herald.db import migrate
from herald.db.session import create_engine, create_sessionmaker

pytest_plugins = ["herald.emulator.pytest_plugin"]

PG_SERVER = os.environ.get("HERALD_TEST_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("HERALD_TEST_REDIS", "redis://127.0.0.1:6379/0")
TEST_JWT_SECRET = "test-secret-" + "x" * 32


def make_settings(database_url: str, **overrides: object) -> Settings:
    """Settings for tests: nothing read from the environment or a .env file."""
    base: dict[str, object] = {
        "database_url": database_url,
        "redis_url": REDIS_URL,
        "queue_name": f"herald:test:{secrets.token_hex(4)}",
        "jwt_secret": TEST_JWT_SECRET,
        "bot_token": "123456:TEST-token",
        "log_json": False,
    }
    base.update(overrides)
    return Settings(_env_file=None, **base)  # type: ignore[call-arg, arg-type]


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    url = f"{PG_SERVER}/herald_test_{secrets.token_hex(6)}"
    migrate.upgrade(url)
    yield url
    import asyncio

    asyncio.run(migrate.drop_database(url))


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(make_settings(database_url))
    yield eng
    await eng.dispose()


@pytest.fixture
async def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """A session factory over empty tables."""
    async with engine.begin() as conn:
        await conn.execute(text("TRUNCATE task_events, tasks RESTART IDENTITY CASCADE"))
    return create_sessionmaker(engine)
