"""Shared fixtures: a fresh PostgreSQL database per test session, a private Redis namespace.

Tests talk to the real PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379). The session
creates `herald_test_<random>`, migrates it with Alembic, and drops it at the end; each test
starts from empty tables.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest

from herald.config import Settings
from herald.db import migrate
from tests.support.databases import drop_database

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

    asyncio.run(drop_database(url))


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url)
