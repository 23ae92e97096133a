"""The asyncpg pool used by the hot paths (intake, claim, record).

Those paths are a few hand-written SQL statements each; going through asyncpg directly
instead of an ORM session costs a third of the CPU per request (see docs/benchmarks.md).
The SQLAlchemy engine (`herald.db.session`) stays for Alembic and the cooler paths.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from herald.config import Settings


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


async def create_pool(settings: Settings, *, min_size: int = 1, max_size: int | None = None) -> Any:
    """An asyncpg pool for `settings.database_url` (returns `asyncpg.Pool`)."""
    return await asyncpg.create_pool(
        asyncpg_dsn(settings.database_url),
        min_size=min_size,
        max_size=max_size or settings.db_pool_size,
        init=_init_connection,
        reset=_keep_session,
    )
