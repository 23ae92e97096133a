"""The asyncpg pool every query goes through, and the types Herald sees it by.

The hot paths are a few hand-written SQL statements each; going through asyncpg directly
instead of an ORM session costs a third of the CPU per request (see docs/benchmarks.md).
SQLAlchemy stays for the table definitions and Alembic.

asyncpg ships no type information, so `Pool`, `Connection` and `Row` describe the part
of its API Herald uses; `create_pool` returns the real pool under that type. Rows are
turned into typed records (`herald.db.models`) by the module that ran the statement.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

import asyncpg
from sqlalchemy.engine import make_url

from herald.config import Settings


class Row(Protocol):
    """An asyncpg Record: values by column name or position, iterated in column order."""

    def __getitem__(self, key: str | int, /) -> Any: ...
    def __iter__(self) -> Iterator[Any]: ...
    def __len__(self) -> int: ...
    def get(self, key: str, default: Any = None, /) -> Any: ...


class Executor(Protocol):
    """What a pool and a connection both run: one statement, in its own transaction on a
    pool, in the current one on a connection. (Time limits: `asyncio.wait_for` around.)"""

    async def execute(self, query: str, *args: Any) -> str: ...
    async def fetch(self, query: str, *args: Any) -> list[Row]: ...
    async def fetchrow(self, query: str, *args: Any) -> Row | None: ...
    async def fetchval(self, query: str, *args: Any, column: int = 0) -> Any: ...


class Connection(Executor, Protocol):
    def transaction(
        self, *, isolation: str | None = None, readonly: bool = False, deferrable: bool = False
    ) -> AbstractAsyncContextManager[Any]: ...
    def is_in_transaction(self) -> bool: ...


class Pool(Executor, Protocol):
    def acquire(self, *, timeout: float | None = None) -> AbstractAsyncContextManager[Connection]:
        """A connection of its own, for a transaction of several statements."""
        ...

    async def close(self) -> None: ...


async def ping(db: Executor) -> None:
    """One round trip: raises when PostgreSQL does not answer."""
    await db.fetchval("SELECT 1")


def asyncpg_dsn(database_url: str, database: str | None = None) -> str:
    """The SQLAlchemy URL (`postgresql+asyncpg://...`) as a plain libpq DSN for asyncpg."""
    url = make_url(database_url).set(drivername="postgresql")
    if database is not None:
        url = url.set(database=database)
    return url.render_as_string(hide_password=False)


async def _init_connection(conn: Any) -> None:
    # JSONB columns in and out as Python objects.
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(
            type_name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )


async def _keep_session(conn: Any) -> None:
    """Release without asyncpg's reset query (`RESET ALL; UNLISTEN *; ...`).

    That query is one more round trip on every release, i.e. per request on the hot paths,
    and Herald's SQL leaves no session state behind (no SET, LISTEN, advisory locks or
    cursors). asyncpg still rolls back a transaction left open before calling this.
    """


async def create_pool(
    settings: Settings, *, min_size: int = 1, max_size: int | None = None
) -> Pool:
    """An asyncpg pool for `settings.database_url`."""
    pool: Pool = await asyncpg.create_pool(
        asyncpg_dsn(settings.database_url),
        min_size=min_size,
        max_size=max_size or settings.db_pool_size,
        init=_init_connection,
        reset=_keep_session,
    )
    return pool
